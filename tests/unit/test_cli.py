"""The technician CLI against an in-process fake Kiosk service on tech.sock."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import types
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2, timestamp_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from hwd.__main__ import main as hwd_main
from hwd.cli import events as events_module
from hwd.cli.main import run
from hwd.cli.render import table
from hwd.rpc.pb.hwd.v1 import common_pb2, kiosk_pb2, kiosk_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
ISO_LOCAL_MS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d"
T0 = timestamp_pb2.Timestamp(seconds=1_767_000_000, nanos=123_000_000)


def abort(context: grpc.ServicerContext, code: grpc.StatusCode, reason: str, message: str, **meta: str) -> None:
    """Ends the call with `code` and an ErrorInfo (domain hwd.dev), as the daemon does."""
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="hwd.dev", metadata=meta))
    status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    context.abort_with_status(rpc_status.to_status(status))


@dataclass
class Failure:
    """An error the fake returns: a status code plus optional ErrorInfo."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    meta: dict[str, str] = field(default_factory=dict)

    def raise_in(self, context: grpc.ServicerContext) -> None:
        if self.reason:
            abort(context, self.code, self.reason, self.message, **self.meta)
        context.abort(self.code, self.message)


def event(seq: int, text: str = "", author: str = "alice") -> common_pb2.Event:
    return common_pb2.Event(
        sequence=seq,
        time=T0,
        source="notes",
        note_added=common_pb2.NoteAdded(text=text or f"note {seq}", author=author),
    )


class FakeKiosk(kiosk_pb2_grpc.KioskServicer):
    """Canned answers; every request is recorded."""

    def __init__(self) -> None:
        self.status = kiosk_pb2.GetStatusResponse()
        self.status_failure: Failure | None = None
        self.slow = False  # GetStatus waits for `release`
        self.note_failure: Failure | None = None
        # One entry per WatchEvents call: the events to send, then the failure to end with (or None).
        self.watch_script: list[tuple[list[common_pb2.Event], Failure | None]] = []
        self.watch_requests: list[kiosk_pb2.WatchEventsRequest] = []
        self.notes: list[kiosk_pb2.AddNoteRequest] = []
        self.release = threading.Event()  # lets a blocked call finish at teardown

    def GetStatus(self, request: kiosk_pb2.GetStatusRequest, context: Any) -> kiosk_pb2.GetStatusResponse:
        if self.slow:
            self.release.wait(10)
        if self.status_failure is not None:
            self.status_failure.raise_in(context)
        return self.status

    def WatchEvents(self, request: kiosk_pb2.WatchEventsRequest, context: Any) -> Iterator[common_pb2.Event]:
        self.watch_requests.append(request)
        events, failure = self.watch_script.pop(0) if self.watch_script else ([], None)
        yield from (e for e in events if e.sequence > request.after_sequence)
        if failure is not None:
            failure.raise_in(context)

    def AddNote(self, request: kiosk_pb2.AddNoteRequest, context: Any) -> kiosk_pb2.AddNoteResponse:
        self.notes.append(request)
        if self.note_failure is not None:
            self.note_failure.raise_in(context)
        return kiosk_pb2.AddNoteResponse(sequence=43)

    def AcquireLease(self, request: kiosk_pb2.AcquireLeaseRequest, context: Any) -> kiosk_pb2.AcquireLeaseResponse:
        raise NotImplementedError

    def RenewLease(self, request: kiosk_pb2.RenewLeaseRequest, context: Any) -> kiosk_pb2.RenewLeaseResponse:
        raise NotImplementedError

    def ReleaseLease(self, request: kiosk_pb2.ReleaseLeaseRequest, context: Any) -> kiosk_pb2.ReleaseLeaseResponse:
        raise NotImplementedError


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeKiosk]:
    servicer = FakeKiosk()
    with ThreadPoolExecutor(max_workers=4) as pool:
        server = grpc.server(pool)
        kiosk_pb2_grpc.add_KioskServicer_to_server(servicer, server)
        server.add_insecure_port(f"unix:{tmp_path / 'tech.sock'}")
        server.start()
        try:
            yield servicer
        finally:
            servicer.release.set()
            server.stop(None).wait()


def hwd(tmp_path: Path, *args: str) -> int:
    return run(["--socket-dir", str(tmp_path), *args])


def status_of(
    device: str, state: common_pb2.DeviceState.ValueType, reason: str = "OK", detail: str = "", hint: str = ""
) -> common_pb2.DeviceStatus:
    return common_pb2.DeviceStatus(
        device=device, state=state, reason=reason, detail=detail, recovery_hint=hint, since=T0
    )


def kiosk_status() -> kiosk_pb2.GetStatusResponse:
    return kiosk_pb2.GetStatusResponse(
        daemon=status_of("daemon", common_pb2.DEVICE_STATE_ONLINE),
        devices=[
            status_of("carousel", common_pb2.DEVICE_STATE_HARDWARE_ERROR, "JAM", "slot 3 blocked", "Open and clear"),
            status_of("port:1-4.2", common_pb2.DEVICE_STATE_ONLINE),
            status_of("printer", common_pb2.DEVICE_STATE_USER_ERROR, "PAPER_OUT", "", "Load paper"),
        ],
        version="0.1.0",
        started=T0,
        last_sequence=42,
        simulated=True,
        leases=[common_pb2.Lease(device="carousel", holder="kiosk-ui", expires=T0)],
    )


def cells(table_text: str) -> list[dict[str, str]]:
    """Parses an aligned table by the header's column offsets (so misalignment shows as wrong cells)."""
    header, *rows = table_text.splitlines()
    names = header.split()
    starts = [header.index(name) for name in names]
    ends = [*starts[1:], None]
    return [{n: row[s:e].strip() for n, s, e in zip(names, starts, ends, strict=True)} for row in rows]


# --- probe -----------------------------------------------------------------------------------------


def test_probe_prints_header_then_aligned_device_table_daemon_first(
    fake: FakeKiosk, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.status = kiosk_status()

    assert hwd(tmp_path, "probe") == 0

    header, devices, leases = capsys.readouterr().out.split("\n\n")
    assert re.fullmatch(r"version: +0\.1\.0\nsimulated: +yes\nstarted: +" + ISO_LOCAL_MS + r"\nlast event: +42", header)
    rows = cells(devices)
    assert [r["DEVICE"] for r in rows] == ["daemon", "carousel", "port:1-4.2", "printer"]
    assert rows[1] == {
        "DEVICE": "carousel",
        "STATE": "HARDWARE_ERROR",
        "REASON": "JAM",
        "SINCE": rows[1]["SINCE"],
        "DETAIL": "slot 3 blocked",
        "HINT": "Open and clear",
    }
    assert re.fullmatch(ISO_LOCAL_MS, rows[1]["SINCE"])
    assert rows[3]["STATE"] == "USER_ERROR"
    assert rows[3]["DETAIL"] == "-"
    assert cells(leases)[0]["HOLDER"] == "kiosk-ui"


@pytest.mark.parametrize(
    ("target", "expected"),
    [("phones", ["daemon", "port:1-4.2"]), ("carousel", ["daemon", "carousel"]), ("daemon", ["daemon"])],
)
def test_probe_target_narrows_the_device_rows(
    fake: FakeKiosk, tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, expected: list[str]
) -> None:
    fake.status = kiosk_status()

    assert hwd(tmp_path, "probe", target) == 0

    devices = capsys.readouterr().out.split("\n\n")[1]
    assert [r["DEVICE"] for r in cells(devices)] == expected


def test_probe_unknown_target_is_a_usage_error(fake: FakeKiosk, tmp_path: Path) -> None:
    assert hwd(tmp_path, "probe", "toaster") == 2


def test_probe_json_uses_proto_field_names(fake: FakeKiosk, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake.status = kiosk_status()

    assert run(["probe", "--socket-dir", str(tmp_path), "--json"]) == 0

    data = json.loads(capsys.readouterr().out)
    assert data["last_sequence"] == "42"
    assert data["devices"][0]["recovery_hint"] == "Open and clear"
    assert data["devices"][0]["state"] == "DEVICE_STATE_HARDWARE_ERROR"


def test_table_escapes_control_characters_from_devices() -> None:
    text = table(("A", "B"), [("x\x1b[2J", "")])

    assert text.splitlines()[1] == "x\\u001b[2J  -"


# --- errors and exit codes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "exit_code", "lines"),
    [
        (
            Failure(grpc.StatusCode.PERMISSION_DENIED, "GetStatus is not allowed here", "METHOD_NOT_ALLOWED",
                    {"recovery_hint": "Use tech.sock"}),
            4,
            ["hwd: PERMISSION_DENIED METHOD_NOT_ALLOWED: GetStatus is not allowed here", "  hint: Use tech.sock"],
        ),
        (
            Failure(grpc.StatusCode.NOT_FOUND, "no such device", "UNKNOWN_DEVICE",
                    {"device": "printer", "recovery_hint": "List the devices with `hwd probe`."}),
            5,
            ["hwd: NOT_FOUND UNKNOWN_DEVICE: no such device", "  device: printer",
             "  hint: List the devices with `hwd probe`."],
        ),
        (
            Failure(grpc.StatusCode.FAILED_PRECONDITION, "held by kiosk-ui", "LEASE_HELD",
                    {"device": "carousel", "holder": "kiosk-ui"}),
            6,
            ["hwd: FAILED_PRECONDITION LEASE_HELD: held by kiosk-ui", "  device: carousel", "  holder: kiosk-ui"],
        ),
        (Failure(grpc.StatusCode.INTERNAL, "boom"), 1, ["hwd: INTERNAL: boom"]),
    ],
)  # fmt: skip
def test_rpc_errors_print_code_reason_device_hint_and_map_to_exit_codes(
    fake: FakeKiosk,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    failure: Failure,
    exit_code: int,
    lines: list[str],
) -> None:
    fake.status_failure = failure

    assert hwd(tmp_path, "probe") == exit_code

    captured = capsys.readouterr()
    assert captured.err.splitlines() == lines
    assert captured.out == ""


def test_missing_socket_is_unreachable_without_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_channel(*args: object, **kwargs: object) -> None:
        raise AssertionError("must not try to connect")

    monkeypatch.setattr(grpc, "insecure_channel", no_channel)

    assert hwd(tmp_path, "probe") == 3

    sock = tmp_path / "tech.sock"
    assert capsys.readouterr().err == (
        f"hwd: cannot reach the daemon at {sock}: no socket (is hwd running? try `make run`)\n"
    )


def test_socket_nobody_listens_on_is_unreachable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(tmp_path / "tech.sock"))

        assert hwd(tmp_path, "--timeout", "30", "probe") == 3

    assert "connection refused" in capsys.readouterr().err


def test_socket_dir_comes_from_the_environment(
    fake: FakeKiosk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HWD_SOCKET_DIR", str(tmp_path))
    fake.status = kiosk_status()

    assert run(["probe", "--json"]) == 0

    assert json.loads(capsys.readouterr().out)["version"] == "0.1.0"


def test_slow_call_is_deadline_exceeded_not_unreachable(
    fake: FakeKiosk, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.slow = True

    assert hwd(tmp_path, "--timeout", "0.3", "probe") == 8

    assert capsys.readouterr().err.startswith("hwd: DEADLINE_EXCEEDED")


# --- events ----------------------------------------------------------------------------------------


def printed_sequences(out: str) -> list[int]:
    return [int(line.split()[0]) for line in out.splitlines()]


def test_events_without_follow_stop_at_the_newest_sequence(
    fake: FakeKiosk, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.status = kiosk_pb2.GetStatusResponse(last_sequence=3)
    fake.watch_script = [([event(n) for n in range(1, 6)], None)]

    assert hwd(tmp_path, "events", "--after", "1") == 0

    out = capsys.readouterr().out
    assert printed_sequences(out) == [2, 3]
    assert fake.watch_requests[0].after_sequence == 1
    line = out.splitlines()[0]
    assert re.fullmatch(r" +2  " + ISO_LOCAL_MS + r"  notes +note_added +alice: note 2", line)


def test_events_after_the_newest_prints_nothing_and_does_not_watch(
    fake: FakeKiosk, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.status = kiosk_pb2.GetStatusResponse(last_sequence=3)

    assert hwd(tmp_path, "events", "--after", "3") == 0

    assert capsys.readouterr().out == ""
    assert fake.watch_requests == []


def test_events_json_is_one_object_per_line(
    fake: FakeKiosk, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.status = kiosk_pb2.GetStatusResponse(last_sequence=2)
    fake.watch_script = [([event(1), event(2, "hi")], None)]

    assert hwd(tmp_path, "events", "--json") == 0

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["sequence"] for line in lines] == ["1", "2"]
    assert lines[1]["note_added"] == {"text": "hi", "author": "alice"}


def test_events_follow_resumes_after_subscriber_too_slow_then_stops_on_unavailable(
    fake: FakeKiosk, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    too_slow = Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, "too slow", "SUBSCRIBER_TOO_SLOW", {"last_sequence": "2"})
    restarting = Failure(grpc.StatusCode.UNAVAILABLE, "stopping", "SHUTTING_DOWN")
    fake.watch_script = [([event(1), event(2)], too_slow), ([event(2), event(3)], restarting)]

    assert hwd(tmp_path, "events", "--follow") == 3

    captured = capsys.readouterr()
    assert [r.after_sequence for r in fake.watch_requests] == [0, 2]
    assert printed_sequences(captured.out) == [1, 2, 3]
    assert "resuming after event 2" in captured.err
    assert "hwd: UNAVAILABLE SHUTTING_DOWN: stopping" in captured.err


def test_events_follow_ends_cleanly_on_ctrl_c(fake: FakeKiosk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(ev: common_pb2.Event) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(events_module, "event_line", interrupted)
    fake.watch_script = [([event(1)], None)]

    assert hwd(tmp_path, "events", "--follow") == 0


# --- note ------------------------------------------------------------------------------------------


def test_note_sends_text_author_and_a_fresh_request_id(
    fake: FakeKiosk, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUDO_USER", "tech7")

    assert hwd(tmp_path, "note", "replaced the paper roll") == 0
    assert hwd(tmp_path, "note", "again", "--author", "bob", "--request-id", "r-1") == 0

    first, second = fake.notes
    assert (first.text, first.author) == ("replaced the paper roll", "tech7")
    assert re.fullmatch(r"[0-9a-f]{32}", first.request_id)
    assert (second.text, second.author, second.request_id) == ("again", "bob", "r-1")
    assert "43" in capsys.readouterr().out


def test_note_json_prints_the_response(fake: FakeKiosk, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert hwd(tmp_path, "--json", "note", "x") == 0

    assert json.loads(capsys.readouterr().out) == {"sequence": "43"}


def test_note_rejected_for_reused_request_id_is_a_bad_request(
    fake: FakeKiosk, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.note_failure = Failure(grpc.StatusCode.INVALID_ARGUMENT, "other text", "REQUEST_ID_REUSED")

    assert hwd(tmp_path, "note", "x", "--request-id", "r-1") == 5

    assert capsys.readouterr().err.startswith("hwd: INVALID_ARGUMENT REQUEST_ID_REUSED: other text")


# --- entry point -----------------------------------------------------------------------------------


def test_serve_is_handed_to_the_daemon_with_its_own_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    daemon = types.ModuleType("hwd.daemon")

    def serve_main(argv: list[str]) -> int:
        seen.append(argv)
        return 0

    daemon.main = serve_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "hwd.daemon", daemon)

    assert hwd_main(["serve", "--simulated", "--socket-dir", "/x"]) == 0

    assert seen == [["--simulated", "--socket-dir", "/x"]]


def test_help_lists_serve_and_does_not_import_the_daemon_or_device_libraries() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "hwd", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )

    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time")}
    assert "hwd.cli.main" in imported
    assert not {"hwd.daemon", "hwd.services", "cv2"} & imported
    assert "serve" in proc.stdout
