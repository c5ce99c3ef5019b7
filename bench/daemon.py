"""Server processes under test: a real ``hwd serve`` (or the bare gRPC floor server) as a subprocess.

A server announces that it serves with a first line on stdout; it is read with a deadline
(``select`` on the pipe), never by polling. Logs go to a file so a full pipe can never stall it.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
SERVING = health_pb2.HealthCheckResponse.SERVING


class BenchError(Exception):
    """The benchmark itself broke (a server did not start, a call failed): not a missed goal."""


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child: ours without any HWD_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HWD_")}
    env.update(extra or {})
    return env


def read_line(stream: IO[bytes], deadline: float, what: str) -> str:
    """The first line of ``stream``, waiting on the pipe until ``deadline`` (a perf_counter time).

    :raises BenchError: when the stream ends or the deadline passes first.
    """
    fd = stream.fileno()
    data = b""
    while b"\n" not in data:
        left = deadline - time.perf_counter()
        if left <= 0:
            raise BenchError(f"{what}: no line within the deadline (read so far: {data[:200]!r})")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise BenchError(f"{what}: output ended before a first line (read: {data[:200]!r})")
            data += chunk
    return data.split(b"\n", 1)[0].decode(errors="replace")


def proc_status_kib(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/PID/status, e.g. VmRSS or VmHWM."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise BenchError(f"no {field} in /proc/{pid}/status")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # After the command name: state is field 3, utime field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class ServerProcess:
    """A server subprocess that prints one line starting with ``ready_prefix`` once it serves.

    :param argv: the command line.
    :param ready_prefix: how the ready line starts.
    :param log_path: where its stderr goes.
    :param env: its environment.
    :param name: how messages name it.
    """

    argv: Sequence[str]
    ready_prefix: str
    log_path: Path
    env: Mapping[str, str]
    name: str = "server"
    proc: subprocess.Popen[bytes] | None = None
    spawned_ns: int = 0
    ready_ns: int = 0
    ready_line: str = ""

    @property
    def pid(self) -> int:
        """The server's process id. :raises BenchError: when it is not running."""
        if self.proc is None:
            raise BenchError(f"{self.name} is not running")
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> float:
        """Spawns the server and waits for its ready line. :returns: seconds from spawn to the line."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.spawned_ns = time.perf_counter_ns()
            self.proc = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                env=dict(self.env),
                cwd=ROOT,
            )
        assert self.proc.stdout is not None
        try:
            line = read_line(self.proc.stdout, time.perf_counter() + timeout, self.name)
        except BenchError as exc:
            self.kill()
            raise BenchError(f"{exc}; log tail: {self.log_tail()}") from None
        self.ready_ns = time.perf_counter_ns()
        if not line.startswith(self.ready_prefix):
            self.kill()
            raise BenchError(f"{self.name}: unexpected first line {line!r}; log tail: {self.log_tail()}")
        self.ready_line = line
        return (self.ready_ns - self.spawned_ns) / 1e9

    def stop(self, timeout: float = 15.0) -> float:
        """SIGTERM, then wait for the exit. :returns: seconds it took to exit.

        :raises BenchError: when it does not exit in time (it is killed) or exits non-zero.
        """
        if self.proc is None:
            return 0.0
        proc, self.proc = self.proc, None
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise BenchError(f"{self.name} did not stop within {timeout} s of SIGTERM") from None
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
        if code != 0:
            raise BenchError(f"{self.name} exited with {code}; log tail: {self.log_tail()}")
        return time.perf_counter() - t0

    def kill(self) -> None:
        """Kills the server at once (after a failure)."""
        if self.proc is not None:
            proc, self.proc = self.proc, None
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()

    def log_tail(self, lines: int = 15) -> str:
        """The end of the server's log."""
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def rss_mb(self) -> float:
        """Resident memory now, in MiB."""
        return proc_status_kib(self.pid, "VmRSS") / 1024

    def peak_rss_mb(self) -> float:
        """Peak resident memory so far, in MiB."""
        return proc_status_kib(self.pid, "VmHWM") / 1024

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.stop()
        else:
            self.kill()


class HwdDaemon(ServerProcess):
    """``hwd serve`` with its sockets in ``root``/run and its journal in ``root``/state.

    :param root: a directory of its own.
    :param env: extra environment (e.g. ``HWD_EVENTS__SUBSCRIBER_QUEUE``).
    :param simulated: serve the simulated kiosk (``--simulated``), its simulator in ``root``/run/sim.
    """

    def __init__(self, root: Path, env: Mapping[str, str] | None = None, *, simulated: bool = False) -> None:
        self.root = root
        self.socket_dir = root / "run"
        self.state_dir = root / "state"
        argv = [sys.executable, "-m", "hwd", "serve", "--socket-dir", str(self.socket_dir)]
        argv += ["--state-dir", str(self.state_dir)]
        if simulated:
            argv.append("--simulated")
        super().__init__(argv, "hwd ", root / "hwd.log", clean_env(env), "hwd serve")

    def target(self, role: str) -> str:
        """The gRPC target of ``role``.sock ("ui" or "tech")."""
        return f"unix:{self.socket_dir / (role + '.sock')}"

    def __enter__(self) -> HwdDaemon:
        return self


class FloorServer(ServerProcess):
    """The bare grpc.aio server of :mod:`bench.floor` (Health.Check only) on ``socket``."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket
        argv = [sys.executable, "-m", "bench.floor", str(socket)]
        super().__init__(argv, "floor ", socket.parent / "floor.log", clean_env(), "floor server")

    @property
    def target(self) -> str:
        """Its gRPC target."""
        return f"unix:{self.socket}"

    def __enter__(self) -> FloorServer:
        return self


def health_check(target: str, timeout: float = 5.0) -> int:
    """One Health.Check on a fresh channel. :returns: the serving status."""
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return int(stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout).status)
