"""`hwd carousel ...` and `hwd lock ...` against in-process fake Carousel and BinLock services."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf.message import Message

from hwd.cli.events import summary
from hwd.cli.main import run
from hwd.rpc.pb.hwd.v1 import binlock_pb2, binlock_pb2_grpc, carousel_pb2, carousel_pb2_grpc, common_pb2
from hwd.rpc.pb.hwd.v1.carousel_pb2 import CABLE_TEST_RESULT_PASS, CONNECTOR_LIGHTNING, CONNECTOR_MICRO_USB
from hwd.rpc.pb.hwd.v1.carousel_pb2 import CABLE_TEST_RESULT_SHORT as SHORT
from hwd.rpc.pb.hwd.v1.carousel_pb2 import CONNECTOR_USB_C as USB_C
from tests.unit.test_cli import Failure

_R = TypeVar("_R")
HINT = "Wait for the holder to release it or for it to expire."
LEASE_HELD = Failure(grpc.StatusCode.FAILED_PRECONDITION, "held by kiosk-ui", "LEASE_HELD", {"recovery_hint": HINT})
ARRIVED, STARTED = common_pb2.MOTION_PHASE_ARRIVED, common_pb2.MOTION_PHASE_STARTED


@dataclass
class Calls:
    """What the fakes received: (method, request, metadata, seconds left before the deadline)."""

    seen: list[tuple[str, Message, dict[str, str], float]] = field(default_factory=list)
    failure: Failure | None = None

    def answer(self, method: str, request: Message, context: Any, response: _R) -> _R:
        """Records the call, then fails with `failure` or returns `response`."""
        metadata = {key: str(value) for key, value in context.invocation_metadata()}
        self.seen.append((method, request, metadata, context.time_remaining() or 0.0))
        if self.failure is not None:
            self.failure.raise_in(context)
        return response


def carousel_status() -> carousel_pb2.GetCarouselStatusResponse:
    slots = [
        carousel_pb2.Slot(index=0, connector=USB_C, reported_connector=USB_C, cable_test=CABLE_TEST_RESULT_PASS),
        carousel_pb2.Slot(index=1, connector=CONNECTOR_LIGHTNING, reported_connector=CONNECTOR_MICRO_USB),
    ]
    status = common_pb2.DeviceStatus(device="carousel", state=common_pb2.DEVICE_STATE_ONLINE, reason="OK")
    return carousel_pb2.GetCarouselStatusResponse(
        status=status, homed=True, current_slot=0, slots=slots, controller="HW 0x0C01 firmware 1.2"
    )


def lock_status() -> binlock_pb2.GetLockStatusResponse:
    status = common_pb2.DeviceStatus(device="lock", state=common_pb2.DEVICE_STATE_ONLINE, reason="OK")
    return binlock_pb2.GetLockStatusResponse(
        status=status, door_closed=True, unlocked=True, relock_remaining_s=30, controller="HW 0x0B01 firmware 1.3"
    )


class FakeCarousel(carousel_pb2_grpc.CarouselServicer):
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    def GetStatus(self, request: Any, context: Any) -> carousel_pb2.GetCarouselStatusResponse:
        return self.calls.answer("GetStatus", request, context, carousel_status())

    def Home(self, request: carousel_pb2.HomeRequest, context: Any) -> carousel_pb2.HomeResponse:
        return self.calls.answer("Home", request, context, carousel_pb2.HomeResponse(carousel=carousel_status()))

    def Select(self, request: carousel_pb2.SelectRequest, context: Any) -> carousel_pb2.SelectResponse:
        return self.calls.answer("Select", request, context, carousel_pb2.SelectResponse(slot=2, connector=USB_C))

    def TestCable(self, request: carousel_pb2.TestCableRequest, context: Any) -> carousel_pb2.TestCableResponse:
        return self.calls.answer("TestCable", request, context, carousel_pb2.TestCableResponse(result=SHORT))

    def WatchStatus(self, request: Any, context: Any) -> Iterator[carousel_pb2.GetCarouselStatusResponse]:
        raise NotImplementedError


class FakeBinLock(binlock_pb2_grpc.BinLockServicer):
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    def GetStatus(self, request: Any, context: Any) -> binlock_pb2.GetLockStatusResponse:
        return self.calls.answer("GetStatus", request, context, lock_status())

    def Unlock(self, request: binlock_pb2.UnlockRequest, context: Any) -> binlock_pb2.UnlockResponse:
        return self.calls.answer("Unlock", request, context, binlock_pb2.UnlockResponse(lock=lock_status()))

    def Lock(self, request: binlock_pb2.LockRequest, context: Any) -> binlock_pb2.LockResponse:
        return self.calls.answer("Lock", request, context, binlock_pb2.LockResponse(lock=lock_status()))

    def WatchStatus(self, request: Any, context: Any) -> Iterator[binlock_pb2.GetLockStatusResponse]:
        raise NotImplementedError


@pytest.fixture
def calls(tmp_path: Path) -> Iterator[Calls]:
    recorded = Calls()
    with ThreadPoolExecutor(max_workers=4) as pool:
        server = grpc.server(pool)
        carousel_pb2_grpc.add_CarouselServicer_to_server(FakeCarousel(recorded), server)
        binlock_pb2_grpc.add_BinLockServicer_to_server(FakeBinLock(recorded), server)
        server.add_insecure_port(f"unix:{tmp_path / 'tech.sock'}")
        server.start()
        try:
            yield recorded
        finally:
            server.stop(None).wait()


def hwd(tmp_path: Path, *args: str) -> int:
    return run(["--socket-dir", str(tmp_path), *args])


def header_fields(text: str) -> dict[str, str]:
    pairs = [line.split(":", 1) for line in text.splitlines()]
    return {name.strip(): value.strip() for name, value in pairs}


def cells(table_text: str) -> list[dict[str, str]]:
    """Parses an aligned table by its header's column offsets (headers may contain one space)."""
    header, *rows = table_text.splitlines()
    spans = [(m.group(), m.start()) for m in re.finditer(r"\S+(?: \S+)*", header)]
    ends = [start for _, start in spans[1:]] + [None]
    return [{name: row[start:end].strip() for (name, start), end in zip(spans, ends, strict=True)} for row in rows]


# --- carousel --------------------------------------------------------------------------------------


def test_carousel_status_prints_header_and_slot_table(
    calls: Calls, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert hwd(tmp_path, "carousel", "status") == 0

    header, slots = capsys.readouterr().out.split("\n\n")
    assert header_fields(header) == {
        "state": "ONLINE", "reason": "OK", "detail": "-", "hint": "-", "homed": "yes", "moving": "no",
        "current slot": "0", "target slot": "-", "controller": "HW 0x0C01 firmware 1.2",
    }  # fmt: skip
    assert cells(slots) == [
        {"SLOT": "0", "CONNECTOR": "usb-c", "REPORTED": "-", "CABLE TEST": "PASS"},
        {"SLOT": "1", "CONNECTOR": "lightning", "REPORTED": "micro-usb", "CABLE TEST": "untested"},
    ]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["carousel", "status", "--json"], {"current_slot": 0, "controller": "HW 0x0C01 firmware 1.2"}),
        (["--json", "lock", "status"], {"relock_remaining_s": 30, "door_closed": True}),
    ],
)
def test_status_json_uses_proto_field_names(
    calls: Calls, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: dict[str, Any]
) -> None:
    assert hwd(tmp_path, *argv) == 0

    data = json.loads(capsys.readouterr().out)
    assert {key: data[key] for key in expected} == expected
    assert data["status"]["state"] == "DEVICE_STATE_ONLINE"
    if "slots" in data:
        assert data["slots"][1]["reported_connector"] == "CONNECTOR_MICRO_USB"


def test_select_by_connector_sends_the_enum_with_a_fresh_request_id_and_a_long_deadline(
    calls: Calls, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert hwd(tmp_path, "carousel", "select", "USB-C") == 0

    method, request, metadata, remaining = calls.seen[0]
    assert method == "Select"
    assert isinstance(request, carousel_pb2.SelectRequest)
    assert (request.WhichOneof("target"), request.connector) == ("connector", USB_C)
    assert re.fullmatch(r"[0-9a-f]{32}", request.request_id)
    assert remaining > 30
    assert "hwd-lease-id" not in metadata
    assert capsys.readouterr().out == f"slot 2 (usb-c) in position (request id {request.request_id})\n"


def test_select_by_slot_sends_the_slot_and_the_lease(calls: Calls, tmp_path: Path) -> None:
    assert hwd(tmp_path, "carousel", "select", "--slot", "0", "--lease", "L1", "--request-id", "r1") == 0

    _, request, metadata, _ = calls.seen[0]
    assert isinstance(request, carousel_pb2.SelectRequest)
    assert (request.WhichOneof("target"), request.slot, request.request_id) == ("slot", 0, "r1")
    assert metadata["hwd-lease-id"] == "L1"


def test_select_unknown_connector_is_a_usage_error_naming_the_valid_ones(
    calls: Calls, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert hwd(tmp_path, "carousel", "select", "thunderbolt") == 2

    assert "usb-c, lightning, micro-usb, usb-a" in capsys.readouterr().err
    assert calls.seen == []


@pytest.mark.parametrize(
    "argv",
    [["carousel", "select"], ["carousel", "select", "usb-a", "--slot", "1"], ["lock", "unlock"], ["carousel", "test"]],
)
def test_missing_or_conflicting_arguments_are_usage_errors(calls: Calls, tmp_path: Path, argv: list[str]) -> None:
    assert hwd(tmp_path, *argv) == 2

    assert calls.seen == []


def test_home_and_test_print_the_result_and_request_id(
    calls: Calls, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert hwd(tmp_path, "carousel", "home", "--request-id", "h1") == 0
    assert hwd(tmp_path, "carousel", "test", "1", "--request-id", "t1") == 0

    out = capsys.readouterr().out
    assert out.startswith("carousel homed (request id h1)\n\nstate:")
    assert out.endswith("slot 1 cable test: SHORT (request id t1)\n")
    test_request = calls.seen[1][1]
    assert isinstance(test_request, carousel_pb2.TestCableRequest)
    assert test_request.slot == 1


def test_lease_held_prints_reason_and_hint_and_exits_6(
    calls: Calls, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls.failure = LEASE_HELD

    assert hwd(tmp_path, "carousel", "home") == 6

    captured = capsys.readouterr()
    assert captured.err.splitlines() == ["hwd: FAILED_PRECONDITION LEASE_HELD: held by kiosk-ui", f"  hint: {HINT}"]
    assert captured.out == ""


# --- lock ------------------------------------------------------------------------------------------


def test_lock_status_prints_the_sensors(calls: Calls, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert hwd(tmp_path, "lock", "status") == 0

    shown = header_fields(capsys.readouterr().out)
    keys = ("state", "bolt", "door", "unlocked", "tamper", "forced", "relock in", "door open for")
    assert [shown[key] for key in keys] == ["ONLINE", "in", "closed", "yes", "no", "no", "30 s", "-"]


def test_unlock_sends_reason_relock_after_and_lease(
    calls: Calls, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("lock", "unlock", "--reason", "emptying the bin", "--relock-after", "30", "--lease", "L9")

    assert hwd(tmp_path, *args, "--request-id", "u1") == 0

    method, request, metadata, _ = calls.seen[0]
    assert method == "Unlock"
    assert isinstance(request, binlock_pb2.UnlockRequest)
    assert (request.reason, request.relock_after.seconds, request.request_id) == ("emptying the bin", 30, "u1")
    assert metadata["hwd-lease-id"] == "L9"
    assert capsys.readouterr().out.startswith("unlocked (request id u1)\n")


def test_lock_sends_a_fresh_request_id_without_lease_metadata(
    calls: Calls, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert hwd(tmp_path, "lock", "lock") == 0

    method, request, metadata, _ = calls.seen[0]
    assert (method, "hwd-lease-id" in metadata) == ("Lock", False)
    assert isinstance(request, binlock_pb2.LockRequest)
    assert capsys.readouterr().out.startswith(f"lock commanded (request id {request.request_id})\n")


# --- event summaries -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"carousel_motion": common_pb2.CarouselMotion(phase=ARRIVED, target_slot=3, current_slot=3)},
         "carousel ARRIVED at slot 3 (target 3)"),
        ({"carousel_motion": common_pb2.CarouselMotion(phase=STARTED)}, "carousel STARTED (homing)"),
        ({"lock_sensors": common_pb2.LockSensors(bolt_extended=True, door_closed=True)},
         "lock bolt=out door=closed unlocked=no tamper=no forced=no"),
        ({"lock_commanded": common_pb2.LockCommanded(action="unlock", reason="emptying the bin", role="tech",
                                                     request_id="r1", relock_after_s=30)},
         "unlock by tech: emptying the bin (relock 30 s, request r1)"),
        ({"lock_commanded": common_pb2.LockCommanded(action="lock", role="ui", request_id="r2")},
         "lock by ui (request r2)"),
        ({"alarm": common_pb2.Alarm(code="DOOR_FORCED", detail="opened while locked")},
         "ALARM DOOR_FORCED: opened while locked"),
    ],
)  # fmt: skip
def test_event_summaries_of_carousel_and_lock_payloads(payload: dict[str, Any], expected: str) -> None:
    assert summary(common_pb2.Event(**payload)) == expected
