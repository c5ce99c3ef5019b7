"""The daemon as a process: sockets, roles, health, reflection, the simulated kiosk, signals."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from hwd.rpc.pb.hwd.v1 import common_pb2, kiosk_pb2, kiosk_pb2_grpc
from tests.helpers import DaemonProcess, error_info


@pytest.fixture
def simulated(tmp_path: Path) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(tmp_path, "--simulated")
    daemon.start()
    yield daemon
    daemon.kill()


def _health(channel: grpc.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status)


def _services(channel: grpc.Channel) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    responses = stub.ServerReflectionInfo(iter([request]), timeout=5)
    return [s.name for r in responses for s in r.list_services_response.service]


def test_both_sockets_serve_with_their_own_allow_lists(simulated: DaemonProcess) -> None:
    with simulated.channel("ui") as ui, simulated.channel("tech") as tech:
        for channel in (ui, tech):
            for service in ("", "hwd.v1.Kiosk"):
                assert _health(channel, service) == health_pb2.HealthCheckResponse.SERVING
        assert "hwd.v1.Kiosk" in _services(tech)
        with pytest.raises(grpc.RpcError) as refused:
            _services(ui)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as denied:
            kiosk_pb2_grpc.KioskStub(ui).AddNote(kiosk_pb2.AddNoteRequest(request_id="n1", text="hello"), timeout=5)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_info(denied.value).reason == "METHOD_NOT_ALLOWED"
        status = kiosk_pb2_grpc.KioskStub(ui).GetStatus(kiosk_pb2.GetStatusRequest(), timeout=5)
        assert status.simulated
        assert status.daemon.state == common_pb2.DEVICE_STATE_ONLINE
    assert (simulated.socket_dir / "ui.sock").stat().st_mode & 0o777 == 0o660


def test_sigterm_stops_cleanly_with_the_simulator(simulated: DaemonProcess) -> None:
    endpoints = json.loads((simulated.socket_dir / "sim" / "endpoints.json").read_text())
    sim_pid = endpoints["pid"]
    assert simulated.stop(signal.SIGTERM) == 0
    assert not (simulated.socket_dir / "ui.sock").exists()
    assert not (simulated.socket_dir / "tech.sock").exists()
    assert not (simulated.socket_dir / "sim" / "endpoints.json").exists()
    assert not Path(f"/proc/{sim_pid}").exists() or "zombie" in Path(f"/proc/{sim_pid}/status").read_text()
    with sqlite3.connect(simulated.state_dir / "journal.sqlite3") as db:
        kinds = [k for (k,) in db.execute("SELECT kind FROM events ORDER BY sequence")]
        last = json.loads(db.execute("SELECT payload FROM events ORDER BY sequence DESC LIMIT 1").fetchone()[0])
    db.close()
    assert kinds[-1] == "DaemonLifecycle"
    assert last["phase"] == "STOPPING"


def test_sd_notify_ready_and_stopping(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        listener.settimeout(30)
        daemon = DaemonProcess(tmp_path, env={"NOTIFY_SOCKET": str(path)})
        try:
            daemon.start()
            assert b"READY=1" in listener.recv(4096).split(b"\n")
            daemon.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            assert b"STOPPING=1" in listener.recv(4096).split(b"\n")
        finally:
            daemon.kill()


def test_a_bad_config_stops_the_daemon_at_start_naming_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "hwd.toml"
    bad.write_text("[events]\nsubscriber_queue = 'many'\n")
    daemon = DaemonProcess(tmp_path, "--config", str(bad))
    with pytest.raises(AssertionError, match="did not start"):
        daemon.start()
    assert daemon.proc is not None
    assert daemon.proc.returncode == 9
    err = daemon.stderr()
    assert str(bad) in err
    assert "events.subscriber_queue" in err


def test_a_second_daemon_on_the_same_directories_is_refused(simulated: DaemonProcess, tmp_path: Path) -> None:
    second = DaemonProcess(tmp_path)
    second.log = tmp_path / "second.log"
    with pytest.raises(AssertionError, match="did not start"):
        second.start()
    assert second.proc is not None
    assert second.proc.returncode == 1
    assert "another hwd is running" in second.stderr()
    with simulated.channel("ui") as ui:  # the first one still serves
        assert _health(ui, "") == health_pb2.HealthCheckResponse.SERVING


def test_after_sigkill_the_simulated_kiosk_goes_too_and_a_restart_serves(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, "--simulated")
    daemon.start()
    sim_pid = json.loads((daemon.socket_dir / "sim" / "endpoints.json").read_text())["pid"]
    try:
        assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
        daemon.start()  # stale sockets, locks and the old simulator do not stand in the way
        new_pid = json.loads((daemon.socket_dir / "sim" / "endpoints.json").read_text())["pid"]
        assert new_pid != sim_pid
        assert "parent process" in daemon.stderr()  # the orphaned simulator noticed and stopped
        with daemon.channel("ui") as ui:
            assert _health(ui, "") == health_pb2.HealthCheckResponse.SERVING
    finally:
        daemon.kill()
