"""`hwd printer ...` against an in-process fake Printer service."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2

from hwd.cli.events import summary
from hwd.cli.printer import TEST_CODE128, TEST_EAN13, TEST_FRENCH, TEST_QR
from hwd.rpc.pb.hwd.v1 import common_pb2, printer_pb2, printer_pb2_grpc
from hwd.rpc.pb.hwd.v1.printer_pb2 import ALIGN_CENTER, ALIGN_RIGHT, ALIGN_UNSPECIFIED
from tests.unit.test_cli import Failure
from tests.unit.test_cli_peripherals import Calls, header_fields, hwd

DONE, FAILED = printer_pb2.JOB_STATE_DONE, printer_pb2.JOB_STATE_FAILED
T0 = timestamp_pb2.Timestamp(seconds=1_767_000_000, nanos=123_000_000)
PAPER_HINT = "Load a new 80 mm thermal paper roll and close the cover."


def job(job_id: str, state: printer_pb2.JobState.ValueType = DONE, **extra: Any) -> printer_pb2.Job:
    return printer_pb2.Job(job_id=job_id, state=state, bytes=1234, created=T0, finished=T0, **extra)


class FakePrinter(printer_pb2_grpc.PrinterServicer):
    """Canned answers; `job_state` and `job_reason` shape the job Print returns."""

    def __init__(self, calls: Calls) -> None:
        self.calls = calls
        self.job_state: printer_pb2.JobState.ValueType = DONE
        self.job_extra: dict[str, Any] = {}

    def GetStatus(self, request: Any, context: Any) -> printer_pb2.GetPrinterStatusResponse:
        status = common_pb2.DeviceStatus(
            device="printer",
            state=common_pb2.DEVICE_STATE_USER_ERROR,
            reason="PAPER_OUT",
            detail="the paper roll is empty",
            recovery_hint=PAPER_HINT,
        )
        response = printer_pb2.GetPrinterStatusResponse(
            status=status, online=True, paper_near_end=True, paper_out=True, feed_button=True
        )
        return self.calls.answer("GetStatus", request, context, response)

    def Print(self, request: printer_pb2.PrintRequest, context: Any) -> printer_pb2.PrintResponse:
        response = printer_pb2.PrintResponse(job=job(request.request_id, self.job_state, **self.job_extra))
        return self.calls.answer("Print", request, context, response)

    def GetJob(self, request: printer_pb2.GetJobRequest, context: Any) -> printer_pb2.GetJobResponse:
        return self.calls.answer("GetJob", request, context, printer_pb2.GetJobResponse(job=job(request.job_id)))

    def WatchJobs(self, request: Any, context: Any) -> Iterator[printer_pb2.Job]:
        raise NotImplementedError


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakePrinter]:
    printer = FakePrinter(Calls())
    with ThreadPoolExecutor(max_workers=4) as pool:
        server = grpc.server(pool)
        printer_pb2_grpc.add_PrinterServicer_to_server(printer, server)
        server.add_insecure_port(f"unix:{tmp_path / 'tech.sock'}")
        server.start()
        try:
            yield printer
        finally:
            server.stop(None).wait()


def print_request(fake: FakePrinter) -> tuple[printer_pb2.PrintRequest, float]:
    method, request, _, remaining = fake.calls.seen[-1]
    assert method == "Print"
    assert isinstance(request, printer_pb2.PrintRequest)
    return request, remaining


# --- status ----------------------------------------------------------------------------------------


def test_status_prints_the_device_header_and_every_flag(
    fake: FakePrinter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert hwd(tmp_path, "printer", "status") == 0

    assert header_fields(capsys.readouterr().out) == {
        "state": "USER_ERROR", "reason": "PAPER_OUT", "detail": "the paper roll is empty", "hint": PAPER_HINT,
        "online": "yes", "cover open": "no", "paper near end": "yes", "paper out": "yes", "cutter error": "no",
        "unrecoverable error": "no", "feed button": "yes",
    }  # fmt: skip


def test_status_json_uses_proto_field_names(
    fake: FakePrinter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert hwd(tmp_path, "printer", "status", "--json") == 0

    data = json.loads(capsys.readouterr().out)
    assert (data["paper_near_end"], data["feed_button"]) == (True, True)
    assert data["status"]["recovery_hint"] == PAPER_HINT
    assert data["status"]["state"] == "DEVICE_STATE_USER_ERROR"


# --- test page -------------------------------------------------------------------------------------


def test_test_page_sends_every_element_kind_and_text_style(
    fake: FakePrinter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert hwd(tmp_path, "printer", "test-page") == 0

    request, remaining = print_request(fake)
    assert re.fullmatch(r"[0-9a-f]{32}", request.request_id)
    assert remaining > 30
    elements = request.receipt.elements
    assert {e.WhichOneof("element") for e in elements} == {"text", "separator", "barcode", "qr", "logo", "feed"}
    texts = [e.text for e in elements if e.HasField("text")]
    title = texts[0]
    assert (title.text, title.bold, title.double_width, title.double_height) == ("hwd test page", True, True, True)
    assert title.align == ALIGN_CENTER
    for style in ("bold", "underline", "double_width", "double_height"):
        assert any(getattr(t, style) and t.text == style.replace("_", " ") for t in texts), style
    assert {t.align for t in texts} == {ALIGN_UNSPECIFIED, ALIGN_CENTER, ALIGN_RIGHT}
    assert TEST_FRENCH in [t.text for t in texts]
    assert "€" in TEST_FRENCH
    TEST_FRENCH.encode("cp858")  # every character is printable in the printer's code page
    barcodes = [(e.barcode.kind, e.barcode.data) for e in elements if e.HasField("barcode")]
    assert barcodes == [(printer_pb2.BARCODE_KIND_CODE128, TEST_CODE128), (printer_pb2.BARCODE_KIND_EAN13, TEST_EAN13)]
    assert [e.qr.data for e in elements if e.HasField("qr")] == [TEST_QR]
    assert [e.feed for e in elements if e.HasField("feed")] == [2]
    assert [e.logo for e in elements if e.HasField("logo")] == [True]

    out = capsys.readouterr().out
    assert out.startswith(f"test page: DONE (request id {request.request_id})\n\n")
    shown = header_fields(out.split("\n\n", 1)[1])
    assert (shown["job"], shown["state"], shown["reason"], shown["bytes"]) == (request.request_id, "DONE", "-", "1234")


def test_failed_job_prints_its_reason_and_exits_6(
    fake: FakePrinter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.job_state, fake.job_extra = FAILED, {"reason": "PAPER_OUT", "detail": "the paper roll is empty"}

    assert hwd(tmp_path, "printer", "test-page", "--request-id", "t1") == 6

    captured = capsys.readouterr()
    assert captured.out.startswith("test page: FAILED (request id t1)\n")
    assert header_fields(captured.out.split("\n\n", 1)[1])["reason"] == "PAPER_OUT"
    assert captured.err == "hwd: job t1 FAILED PAPER_OUT: the paper roll is empty\n"


def test_failed_job_with_json_still_exits_6(
    fake: FakePrinter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.job_state, fake.job_extra = FAILED, {"reason": "COVER_OPEN"}

    assert hwd(tmp_path, "--json", "printer", "test-page", "--request-id", "t2") == 6

    captured = capsys.readouterr()
    assert json.loads(captured.out)["job"]["reason"] == "COVER_OPEN"
    assert captured.err == "hwd: job t2 FAILED COVER_OPEN\n"


def test_print_error_uses_the_exit_code_table(
    fake: FakePrinter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.calls.failure = Failure(grpc.StatusCode.INVALID_ARGUMENT, "text: '—' is not in code page PC858", "BAD_TEXT")

    assert hwd(tmp_path, "printer", "test-page") == 5

    assert capsys.readouterr().err.startswith("hwd: INVALID_ARGUMENT BAD_TEXT: text:")


# --- voucher ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "cents"), [("25,00", 2500), ("25.5", 2550), ("25", 2500), ("0.05", 5), (" 1234.56 ", 123456)]
)
def test_voucher_amount_in_euros_becomes_cents(fake: FakePrinter, tmp_path: Path, amount: str, cents: int) -> None:
    args = ("printer", "voucher", "--code", "ABCD-1234", "--amount", amount, "--expires", "2026-12-31")

    assert hwd(tmp_path, *args) == 0

    request, _ = print_request(fake)
    assert request.voucher.amount_cents == cents


def test_voucher_sends_code_expiry_store_lines_and_request_id(
    fake: FakePrinter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("printer", "voucher", "--code", "ABCD-1234", "--amount", "25,00", "--expires", "2026-12-31")
    store = ("--store", "Phone Shop", "--store", "1 rue de la Paix", "75002 Paris")

    assert hwd(tmp_path, *args, *store, "--request-id", "v1") == 0

    request, remaining = print_request(fake)
    voucher = request.voucher
    assert (request.request_id, voucher.code, voucher.expires, voucher.currency) == (
        "v1",
        "ABCD-1234",
        "2026-12-31",
        "",
    )
    assert list(voucher.store) == ["Phone Shop", "1 rue de la Paix", "75002 Paris"]
    assert remaining > 30
    assert capsys.readouterr().out.startswith("voucher: DONE (request id v1)\n")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--amount", "abc"),
        ("--amount", "25.001"),
        ("--amount", "-5"),
        ("--amount", "0,00"),
        ("--amount", "1,000.00"),
        ("--expires", "31/12/2026"),
        ("--expires", "2026-02-30"),
        ("--expires", "20261231"),
    ],
)
def test_invalid_voucher_amount_or_date_is_a_usage_error(
    fake: FakePrinter, tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    values = {"--code": "ABCD-1234", "--amount": "25.00", "--expires": "2026-12-31", option: value}
    args = [part for pair in values.items() for part in pair]

    assert hwd(tmp_path, "printer", "voucher", *args) == 2

    assert option in capsys.readouterr().err
    assert fake.calls.seen == []


@pytest.mark.parametrize("argv", [["printer"], ["printer", "voucher", "--code", "ABCD"], ["printer", "job"]])
def test_missing_arguments_are_usage_errors(fake: FakePrinter, tmp_path: Path, argv: list[str]) -> None:
    assert hwd(tmp_path, *argv) == 2

    assert fake.calls.seen == []


# --- job -------------------------------------------------------------------------------------------


def test_job_prints_the_job(fake: FakePrinter, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert hwd(tmp_path, "printer", "job", "j1") == 0

    method, request, _, _ = fake.calls.seen[0]
    assert method == "GetJob"
    assert isinstance(request, printer_pb2.GetJobRequest)
    assert request.job_id == "j1"
    shown = header_fields(capsys.readouterr().out)
    assert {key: shown[key] for key in ("job", "state", "reason", "detail", "bytes")} == {
        "job": "j1", "state": "DONE", "reason": "-", "detail": "-", "bytes": "1234",
    }  # fmt: skip
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+[+-]\d\d:\d\d", shown["finished"])


def test_job_json_uses_proto_field_names(fake: FakePrinter, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert hwd(tmp_path, "printer", "job", "j1", "--json") == 0

    data = json.loads(capsys.readouterr().out)["job"]
    assert (data["job_id"], data["state"], data["bytes"]) == ("j1", "JOB_STATE_DONE", "1234")
    assert data["finished"].endswith("Z")


def test_unknown_job_exits_5(fake: FakePrinter, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake.calls.failure = Failure(grpc.StatusCode.NOT_FOUND, "no job nope", "UNKNOWN_JOB")

    assert hwd(tmp_path, "printer", "job", "nope") == 5

    assert capsys.readouterr().err == "hwd: NOT_FOUND UNKNOWN_JOB: no job nope\n"


# --- event summary ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (common_pb2.PrintJobChanged(job_id="J", state="DONE", bytes=1234), "job J DONE (1234 bytes)"),
        (common_pb2.PrintJobChanged(job_id="J", state="FAILED", reason="PAPER_OUT", bytes=512),
         "job J FAILED: PAPER_OUT (512 bytes)"),
    ],
)  # fmt: skip
def test_event_summary_of_print_job_changed(payload: common_pb2.PrintJobChanged, expected: str) -> None:
    assert summary(common_pb2.Event(print_job_changed=payload)) == expected
