"""Test helpers: an in-process daemon, gRPC stubs and ErrorInfo reading."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.rpc.error_details_pb2 import ErrorInfo
from grpc_status import rpc_status

from hwd.config import load_config
from hwd.daemon import Daemon
from hwd.rpc.pb.hwd.v1 import kiosk_pb2_grpc


def error_info(err: grpc.RpcError) -> ErrorInfo:
    """The ErrorInfo detail of a failed call."""
    status = rpc_status.from_call(err)
    assert status is not None, f"no status details in {err}"
    info = ErrorInfo()
    assert status.details[0].Unpack(info)
    return info


@dataclass
class Running:
    """A daemon running in the test's event loop."""

    daemon: Daemon
    socket_dir: Path
    state_dir: Path

    def channel(self, role: str) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(f"unix:{self.socket_dir / (role + '.sock')}")

    def kiosk(self, channel: grpc.aio.Channel) -> kiosk_pb2_grpc.KioskStub:
        return kiosk_pb2_grpc.KioskStub(channel)


@contextlib.asynccontextmanager
async def running_daemon(tmp: Path, **sections: dict[str, Any]) -> AsyncIterator[Running]:
    """Starts a daemon on sockets and a journal under ``tmp``; stops it on exit."""
    socket_dir, state_dir = tmp / "run", tmp / "state"
    cfg = load_config(
        None, env={}, overrides={"daemon": {"socket_dir": socket_dir, "state_dir": state_dir}, **sections}
    )
    daemon = Daemon(cfg, simulated=False)
    task = asyncio.create_task(daemon.run(handle_signals=False))
    ready = asyncio.create_task(daemon.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()
    try:
        yield Running(daemon, socket_dir, state_dir)
    finally:
        daemon.stopping.set()
        await task


class DaemonProcess:
    """``hwd serve`` as a real child process; ``start`` returns once it printed that it serves."""

    def __init__(self, tmp: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.socket_dir, self.state_dir = tmp / "run", tmp / "state"
        self.args = ["--socket-dir", str(self.socket_dir), "--state-dir", str(self.state_dir), *args]
        self.env = {**os.environ, **(env or {})}
        self.log = tmp / "daemon.log"
        self.proc: subprocess.Popen[str] | None = None

    def start(self, deadline: float = 30) -> str:
        """Starts the daemon and returns its first line of output. :raises AssertionError: if it fails."""
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hwd", "serve", *self.args],
                stdout=subprocess.PIPE, stderr=log, text=True, env=self.env,
            )  # fmt: skip
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], deadline)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("hwd "):
            self.kill()
            raise AssertionError(f"daemon did not start: {line!r} {self.stderr()}")
        return line

    def stderr(self) -> str:
        """What the daemon logged so far."""
        return self.log.read_text() if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, deadline: float = 30) -> int:
        """Sends ``sig`` and waits for the exit code."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(deadline)
        self.close()
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.close()

    def close(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def channel(self, role: str) -> grpc.Channel:
        return grpc.insecure_channel(f"unix:{self.socket_dir / (role + '.sock')}")
