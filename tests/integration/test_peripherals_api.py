"""The carousel and the bin lock through the daemon, on the simulated RS-485 line."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc
from hwd.rpc.pb.hwd.v1 import binlock_pb2, binlock_pb2_grpc, carousel_pb2, carousel_pb2_grpc, common_pb2
from tests.helpers import DaemonProcess, error_info

CONNECTORS = {
    carousel_pb2.CONNECTOR_USB_C: {0, 3},
    carousel_pb2.CONNECTOR_LIGHTNING: {1, 4},
    carousel_pb2.CONNECTOR_MICRO_USB: {2, 5},
    carousel_pb2.CONNECTOR_USB_A: {6},
}


@pytest.fixture
def kiosk(tmp_path: Path) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(tmp_path, "--simulated")
    daemon.start()
    yield daemon
    daemon.kill()


def _fault(daemon: DaemonProcess, device: str, fault: str, **params: str) -> None:
    control = json.loads((daemon.socket_dir / "sim" / "endpoints.json").read_text())["control"]
    with grpc.insecure_channel(control) as channel:
        request = simulator_pb2.FaultRequest(device=device, fault=fault, params=params)
        simulator_pb2_grpc.SimulatorStub(channel).Fault(request, timeout=10)


def _eventually(
    read: Callable[[], common_pb2.DeviceStatus], state: int, deadline: float = 15
) -> common_pb2.DeviceStatus:
    """Reads a status until it reaches ``state`` (the daemon polls the line; so does this)."""
    end = time.monotonic() + deadline
    while (status := read()).state != state and time.monotonic() < end:
        time.sleep(0.05)
    return status


def test_select_every_connector_and_a_repeat_moves_once(kiosk: DaemonProcess) -> None:
    with kiosk.channel("ui") as ui:
        carousel = carousel_pb2_grpc.CarouselStub(ui)
        carousel.Home(carousel_pb2.HomeRequest(request_id="home-1"), timeout=30)
        for connector, slots in CONNECTORS.items():
            reply = carousel.Select(
                carousel_pb2.SelectRequest(request_id=f"sel-{connector}", connector=connector), timeout=30
            )
            assert reply.slot in slots
            assert reply.connector == connector
            assert carousel.GetStatus(carousel_pb2.GetCarouselStatusRequest()).current_slot == reply.slot
        carousel.Select(carousel_pb2.SelectRequest(request_id="sel-slot-2", slot=2), timeout=30)
        usb_c = carousel_pb2.SelectRequest(
            request_id=f"sel-{carousel_pb2.CONNECTOR_USB_C}", connector=carousel_pb2.CONNECTOR_USB_C
        )
        again = carousel.Select(usb_c, timeout=30)
        assert again.slot in CONNECTORS[carousel_pb2.CONNECTOR_USB_C]
        assert carousel.GetStatus(carousel_pb2.GetCarouselStatusRequest()).current_slot == 2, "the repeat moved"


def test_bad_requests_name_the_field(kiosk: DaemonProcess) -> None:
    with kiosk.channel("tech") as tech:
        carousel, lock = carousel_pb2_grpc.CarouselStub(tech), binlock_pb2_grpc.BinLockStub(tech)
        carousel.Home(carousel_pb2.HomeRequest(request_id="h"), timeout=30)
        calls = [
            (lambda: carousel.Select(carousel_pb2.SelectRequest(request_id="a", slot=8), timeout=10), "slot"),
            (lambda: carousel.Select(carousel_pb2.SelectRequest(request_id="b"), timeout=10), "target"),
            (lambda: carousel.TestCable(carousel_pb2.TestCableRequest(request_id="c", slot=99), timeout=10), "slot"),
            (lambda: lock.Unlock(binlock_pb2.UnlockRequest(request_id="d", reason=" "), timeout=10), "reason"),
        ]
        for call, field in calls:
            with pytest.raises(grpc.RpcError) as bad:
                call()
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert error_info(bad.value).metadata["field"] == field
            assert bad.value.details().startswith(field)


def test_a_jam_is_a_hardware_error_with_a_hint_and_home_recovers(kiosk: DaemonProcess) -> None:
    with kiosk.channel("tech") as tech:
        carousel = carousel_pb2_grpc.CarouselStub(tech)
        carousel.Home(carousel_pb2.HomeRequest(request_id="h1"), timeout=30)
        _fault(kiosk, "carousel", "jam")
        with pytest.raises(grpc.RpcError) as jammed:
            carousel.Select(carousel_pb2.SelectRequest(request_id="s1", slot=4), timeout=30)
        assert jammed.value.code() == grpc.StatusCode.ABORTED
        assert error_info(jammed.value).reason == "HARDWARE_FAULT"
        status = carousel.GetStatus(carousel_pb2.GetCarouselStatusRequest()).status
        assert (status.state, status.reason) == (common_pb2.DEVICE_STATE_HARDWARE_ERROR, "JAM")
        assert "Home" in status.recovery_hint or "home" in status.recovery_hint
        _fault(kiosk, "carousel", "clear")
        assert carousel.Home(carousel_pb2.HomeRequest(request_id="h2"), timeout=30).carousel.homed
        assert carousel.Select(carousel_pb2.SelectRequest(request_id="s2", slot=4), timeout=30).slot == 4


def test_the_adapter_unplugged_is_offline_and_replugged_is_online_without_restart(kiosk: DaemonProcess) -> None:
    with kiosk.channel("tech") as tech:
        lock = binlock_pb2_grpc.BinLockStub(tech)
        read = lambda: lock.GetStatus(binlock_pb2.GetLockStatusRequest(), timeout=5).status  # noqa: E731
        assert _eventually(read, common_pb2.DEVICE_STATE_ONLINE).state == common_pb2.DEVICE_STATE_ONLINE
        _fault(kiosk, "rs485", "unplug")
        offline = _eventually(read, common_pb2.DEVICE_STATE_OFFLINE)
        assert offline.state == common_pb2.DEVICE_STATE_OFFLINE
        assert offline.recovery_hint
        _fault(kiosk, "rs485", "replug")
        assert _eventually(read, common_pb2.DEVICE_STATE_ONLINE).state == common_pb2.DEVICE_STATE_ONLINE


def test_unlock_is_journaled_with_role_and_reason_and_a_forced_door_is_tampered(kiosk: DaemonProcess) -> None:
    with kiosk.channel("tech") as tech, kiosk.channel("ui") as ui:
        with pytest.raises(grpc.RpcError) as refused:
            binlock_pb2_grpc.BinLockStub(ui).Unlock(binlock_pb2.UnlockRequest(request_id="u0", reason="x"), timeout=10)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        lock = binlock_pb2_grpc.BinLockStub(tech)
        first = lock.Unlock(binlock_pb2.UnlockRequest(request_id="u1", reason="emptying the bin"), timeout=30)
        assert not first.lock.bolt_extended
        lock.Unlock(binlock_pb2.UnlockRequest(request_id="u1", reason="emptying the bin"), timeout=30)
        lock.Lock(binlock_pb2.LockRequest(request_id="l1"), timeout=30)
        _fault(kiosk, "binlock", "force-door")
        read = lambda: lock.GetStatus(binlock_pb2.GetLockStatusRequest(), timeout=5).status  # noqa: E731
        assert _eventually(read, common_pb2.DEVICE_STATE_TAMPERED).reason == "DOOR_FORCED"
    with sqlite3.connect(kiosk.state_dir / "journal.sqlite3") as db:
        audit = [json.loads(p) for (p,) in db.execute("SELECT payload FROM events WHERE kind = 'LockCommanded'")]
        alarms = [json.loads(p)["code"] for (p,) in db.execute("SELECT payload FROM events WHERE kind = 'Alarm'")]
    db.close()
    unlocks = [a for a in audit if a["action"] == "unlock"]
    assert [(a["role"], a["reason"], a["request_id"]) for a in unlocks] == [("tech", "emptying the bin", "u1")]
    assert "DOOR_FORCED" in alarms


def test_sigkill_during_an_unlock_leaves_the_truth_in_the_journal_and_the_bin_locked(kiosk: DaemonProcess) -> None:
    # The line swallows replies for a while: the controller acts, the daemon waits, and dies waiting.
    _fault(kiosk, "rs485", "stall", seconds="3")
    unlock = binlock_pb2.UnlockRequest(request_id="cut", reason="emptying", relock_after=Duration(seconds=2))
    with kiosk.channel("tech") as tech:
        lock = binlock_pb2_grpc.BinLockStub(tech)

        def unlock_until_killed() -> None:
            with pytest.raises(grpc.RpcError):
                lock.Unlock(unlock, timeout=30)

        call = threading.Thread(target=unlock_until_killed)
        call.start()
        time.sleep(0.5)
        assert kiosk.stop(signal.SIGKILL) == -signal.SIGKILL
        call.join(30)
    kiosk.start()
    with kiosk.channel("tech") as tech:
        lock = binlock_pb2_grpc.BinLockStub(tech)
        with pytest.raises(grpc.RpcError) as unknown:
            lock.Unlock(unlock, timeout=30)
        assert error_info(unknown.value).reason == "OUTCOME_UNKNOWN"
        read = lambda: lock.GetStatus(binlock_pb2.GetLockStatusRequest(), timeout=5)  # noqa: E731
        end = time.monotonic() + 15
        while not (st := read()).bolt_extended and time.monotonic() < end:
            time.sleep(0.1)
        assert st.bolt_extended, "the bin ends locked"
        assert st.door_closed
    with sqlite3.connect(kiosk.state_dir / "journal.sqlite3") as db:
        kinds = [k for (k,) in db.execute("SELECT kind FROM events WHERE payload LIKE '%\"cut\"%' ORDER BY sequence")]
    db.close()
    assert kinds == ["LockCommanded", "CommandOutcomeUnknown"], "intent journaled before the output, then the crash"
