"""The simulated kiosk process end to end, and the device extension point in-process."""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import grpc
import pytest

from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc
from simulators import SimDevice, SimKiosk
from simulators.errors import SimDeviceError
from simulators.runtime import SimulatorRuntime

REPO = Path(__file__).resolve().parents[2]
DEADLINE_S = 20.0
RPC_TIMEOUT_S = 10.0


class SimProcess:
    """One ``python -m simulators`` child, with its pipes."""

    def __init__(self, directory: Path, *extra: str) -> None:
        self.directory = directory
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "simulators", "--dir", str(directory), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO,
        )
        self.stderr = ""

    @property
    def socket_path(self) -> Path:
        return self.directory / "control.sock"

    def ready(self) -> dict[str, Any]:
        """Read the ready line within the deadline and parse it."""
        assert self.proc.stdout is not None
        fd, line = self.proc.stdout.fileno(), b""
        deadline = time.monotonic() + DEADLINE_S
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            readable = select.select([fd], [], [], max(remaining, 0))[0] if remaining > 0 else []
            chunk = os.read(fd, 1) if readable else b""
            if not chunk:
                rc, _ = self.finish(kill=True)
                pytest.fail(f"no ready line (rc={rc}); stderr:\n{self.stderr}")
            line += chunk
        document: dict[str, Any] = json.loads(line)
        return document

    def finish(self, kill: bool = False) -> tuple[int, bytes]:
        """Wait for the exit (killing first if asked), close the pipes; returns (rc, rest of stdout)."""
        if kill and self.proc.poll() is None:
            self.proc.kill()
        try:
            out, err = self.proc.communicate(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            self.stderr = err.decode(errors="replace")
            pytest.fail(f"simulator did not exit in time; stderr:\n{self.stderr}")
        self.stderr = err.decode(errors="replace")
        return self.proc.returncode, out


class Launch(Protocol):
    def __call__(self, directory: Path, *extra: str) -> SimProcess: ...


@pytest.fixture
def launch() -> Iterator[Launch]:
    """Start simulator processes; any still running at the end is killed and reaped."""
    started: list[SimProcess] = []

    def start(directory: Path, *extra: str) -> SimProcess:
        sim = SimProcess(directory, *extra)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        if sim.proc.returncode is None:
            sim.finish(kill=True)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A short-lived process to act as the simulator's parent."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def control_stub(channel: grpc.Channel) -> simulator_pb2_grpc.SimulatorStub:
    return simulator_pb2_grpc.SimulatorStub(channel)


def get_status(target: str) -> simulator_pb2.GetStatusResponse:
    with grpc.insecure_channel(target) as channel:
        return control_stub(channel).GetStatus(simulator_pb2.GetStatusRequest(), timeout=RPC_TIMEOUT_S)


def assert_clean_exit(sim: SimProcess) -> None:
    rc, rest = sim.finish()
    assert rc == 0, sim.stderr
    assert rest == b"", "nothing but the ready line may reach stdout"
    assert not sim.socket_path.exists()
    assert not (sim.directory / "endpoints.json").exists()


def test_ready_status_reset_shutdown(tmp_path: Path, launch: Launch) -> None:
    sim = launch(tmp_path / "sim")
    document = sim.ready()
    endpoints_file = tmp_path / "sim" / "endpoints.json"
    assert document == json.loads(endpoints_file.read_text())
    assert document["version"] == 1
    assert document["pid"] == sim.proc.pid
    assert document["control"] == f"unix:{sim.socket_path}"
    assert list(document["devices"]) == ["carousel", "binlock", "rs485", "printer", "usbmuxd", "phones", "camera"]
    started = datetime.fromisoformat(document["started"])
    assert started.utcoffset() is not None
    assert stat.S_IMODE((tmp_path / "sim").stat().st_mode) == 0o700

    with grpc.insecure_channel(document["control"]) as channel:
        stub = control_stub(channel)
        status = stub.GetStatus(simulator_pb2.GetStatusRequest(), timeout=RPC_TIMEOUT_S)
        assert status.pid == sim.proc.pid
        assert status.endpoints_file == str(endpoints_file)
        assert status.resets == 0
        assert [device.name for device in status.devices] == list(document["devices"])
        assert status.started.ToDatetime(tzinfo=UTC) == started
        for _ in range(2):
            stub.Reset(simulator_pb2.ResetRequest(), timeout=RPC_TIMEOUT_S)
        assert stub.GetStatus(simulator_pb2.GetStatusRequest(), timeout=RPC_TIMEOUT_S).resets == 2
        stub.Shutdown(simulator_pb2.ShutdownRequest(), timeout=RPC_TIMEOUT_S)
    assert_clean_exit(sim)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops(tmp_path: Path, launch: Launch, signum: signal.Signals) -> None:
    sim = launch(tmp_path / "sim")
    sim.ready()
    sim.proc.send_signal(signum)
    assert_clean_exit(sim)


def test_endpoints_option(tmp_path: Path, launch: Launch) -> None:
    endpoints_file = tmp_path / "elsewhere.json"
    sim = launch(tmp_path / "sim", "--endpoints", str(endpoints_file))
    document = sim.ready()
    assert json.loads(endpoints_file.read_text()) == document
    assert get_status(document["control"]).endpoints_file == str(endpoints_file)
    sim.proc.terminate()
    assert_clean_exit(sim)
    assert not endpoints_file.exists()


def test_second_simulator_refused(tmp_path: Path, launch: Launch) -> None:
    first = launch(tmp_path / "sim")
    document = first.ready()
    second = launch(tmp_path / "sim")
    rc, out = second.finish()
    assert rc == 1
    assert out == b""
    assert "in use" in second.stderr
    assert get_status(document["control"]).pid == first.proc.pid
    assert json.loads((tmp_path / "sim" / "endpoints.json").read_text()) == document
    first.proc.terminate()
    assert_clean_exit(first)


def test_stale_socket_replaced(tmp_path: Path, launch: Launch) -> None:
    directory = tmp_path / "sim"
    directory.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
        stale.bind(str(directory / "control.sock"))  # bound, never listening: what a crash leaves
    sim = launch(directory)
    document = sim.ready()
    assert get_status(document["control"]).pid == sim.proc.pid
    sim.proc.terminate()
    assert_clean_exit(sim)
    assert "stale" in sim.stderr


def test_not_a_socket_refused(tmp_path: Path, launch: Launch) -> None:
    directory = tmp_path / "sim"
    directory.mkdir(mode=0o700)
    (directory / "control.sock").write_text("not a socket")
    sim = launch(directory)
    rc, _ = sim.finish()
    assert rc == 1
    assert "not a socket" in sim.stderr


def test_unwritable_endpoints_file_refused(tmp_path: Path, launch: Launch) -> None:
    sim = launch(tmp_path / "sim", "--endpoints", str(tmp_path / "missing" / "endpoints.json"))
    rc, out = sim.finish()
    assert (rc, out) == (1, b"")
    assert "endpoints file" in sim.stderr
    assert not (tmp_path / "sim" / "control.sock").exists()


def test_exits_when_parent_gone(tmp_path: Path, launch: Launch, sleeper: subprocess.Popen[bytes]) -> None:
    sim = launch(tmp_path / "sim", "--parent-pid", str(sleeper.pid))
    sim.ready()
    sleeper.kill()
    sleeper.wait()
    assert_clean_exit(sim)
    assert "parent process" in sim.stderr


def test_missing_parent_refused(tmp_path: Path, launch: Launch, sleeper: subprocess.Popen[bytes]) -> None:
    sleeper.kill()
    sleeper.wait()
    sim = launch(tmp_path / "sim", "--parent-pid", str(sleeper.pid))
    rc, _ = sim.finish()
    assert rc == 1
    assert "no such process" in sim.stderr
    assert not (tmp_path / "sim" / "control.sock").exists()


class FakeDevice:
    """A test-only simulated device that records what the kiosk asks of it."""

    def __init__(self, name: str, kind: str, calls: list[str], fail_on: str = "") -> None:
        self.name = name
        self.kind = kind
        self.endpoint = ""
        self.state = "new"
        self.faults = ["jam"]
        self._calls = calls
        self._fail_on = fail_on

    def _record(self, action: str) -> None:
        self._calls.append(f"{action} {self.name}")
        if action == self._fail_on:
            raise OSError(f"{self.name} cannot {action}")

    async def start(self) -> None:
        self._record("start")
        self.endpoint = f"tcp:127.0.0.1:{9100 + len(self._calls)}"
        self.state = "idle"

    async def stop(self) -> None:
        self._record("stop")
        self.state = "stopped"

    async def reset(self) -> None:
        self._record("reset")
        self.state = "idle"

    async def fault(self, name: str, params: dict[str, str]) -> None:
        if name not in self.faults:
            raise ValueError(f"unknown fault {name!r}")
        self._record(name)
        self.state = "fault: jam"


async def test_fake_devices_in_status_and_endpoints(tmp_path: Path) -> None:
    calls: list[str] = []
    devices = [FakeDevice("printer", "printer", calls), FakeDevice("carousel", "modbus-carousel", calls)]
    assert all(isinstance(device, SimDevice) for device in devices)
    stop_requested = asyncio.Event()
    runtime = SimulatorRuntime(
        SimKiosk(devices), tmp_path / "control.sock", tmp_path / "endpoints.json", stop_requested.set
    )
    try:
        document = await runtime.start()
        assert calls == ["start printer", "start carousel"]
        assert document["devices"] == {
            "printer": {"kind": "printer", "endpoint": devices[0].endpoint},
            "carousel": {"kind": "modbus-carousel", "endpoint": devices[1].endpoint},
        }
        assert json.loads((tmp_path / "endpoints.json").read_text()) == document
        devices[1].state = "fault: jam"
        async with grpc.aio.insecure_channel(runtime.control_target) as channel:
            stub = simulator_pb2_grpc.SimulatorStub(channel)
            status = await stub.GetStatus(simulator_pb2.GetStatusRequest(), timeout=RPC_TIMEOUT_S)
            assert [(d.name, d.kind, d.endpoint, d.state) for d in status.devices] == [
                ("printer", "printer", devices[0].endpoint, "idle"),
                ("carousel", "modbus-carousel", devices[1].endpoint, "fault: jam"),
            ]
            await stub.Reset(simulator_pb2.ResetRequest(), timeout=RPC_TIMEOUT_S)
            status = await stub.GetStatus(simulator_pb2.GetStatusRequest(), timeout=RPC_TIMEOUT_S)
            assert (status.resets, status.devices[1].state) == (1, "idle")
            await stub.Shutdown(simulator_pb2.ShutdownRequest(), timeout=RPC_TIMEOUT_S)
        assert stop_requested.is_set()
    finally:
        await runtime.stop()
    assert calls[-2:] == ["stop carousel", "stop printer"]
    assert not (tmp_path / "control.sock").exists()
    assert not (tmp_path / "endpoints.json").exists()


async def test_failed_reset_is_internal_and_resets_the_rest(tmp_path: Path) -> None:
    calls: list[str] = []
    devices = [FakeDevice("printer", "printer", calls, fail_on="reset"), FakeDevice("camera", "camera", calls)]
    runtime = SimulatorRuntime(SimKiosk(devices), tmp_path / "control.sock", tmp_path / "endpoints.json", lambda: None)
    try:
        await runtime.start()
        async with grpc.aio.insecure_channel(runtime.control_target) as channel:
            stub = simulator_pb2_grpc.SimulatorStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await stub.Reset(simulator_pb2.ResetRequest(), timeout=RPC_TIMEOUT_S)
            assert failure.value.code() == grpc.StatusCode.INTERNAL
            assert "printer" in (failure.value.details() or "")
    finally:
        await runtime.stop()
    assert "reset camera" in calls


async def test_failed_start_stops_the_started_devices() -> None:
    calls: list[str] = []
    kiosk = SimKiosk(
        [
            FakeDevice("printer", "printer", calls),
            FakeDevice("camera", "camera", calls, fail_on="start"),
            FakeDevice("lock", "binlock", calls),
        ]
    )
    with pytest.raises(SimDeviceError, match="camera"):
        await kiosk.start()
    assert calls == ["start printer", "start camera", "stop printer"]
    await kiosk.stop()  # nothing is left running, so nothing is stopped twice
    assert calls == ["start printer", "start camera", "stop printer"]


def test_duplicate_device_names_rejected() -> None:
    with pytest.raises(ValueError, match="printer"):
        SimKiosk([FakeDevice("printer", "printer", []), FakeDevice("printer", "printer", [])])


def simulator_fixtures(name: str) -> tuple[Any, Any]:
    """A module's ``kiosk`` (one simulator process for the module: its ready document) and
    ``control`` (its control service; every device is reset after each test) fixtures."""

    @pytest.fixture(scope="module")
    def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
        sim = SimProcess(tmp_path_factory.mktemp(name) / "sim")
        document = sim.ready()
        yield document
        sim.proc.terminate()
        rc, _ = sim.finish()
        assert rc == 0, sim.stderr

    @pytest.fixture
    def control(kiosk: dict[str, Any]) -> Iterator[simulator_pb2_grpc.SimulatorStub]:
        with grpc.insecure_channel(kiosk["control"]) as channel:
            stub = simulator_pb2_grpc.SimulatorStub(channel)
            yield stub
            stub.Reset(simulator_pb2.ResetRequest(), timeout=RPC_TIMEOUT_S)

    return kiosk, control
