"""The printer through the daemon, on the simulated ESC/POS printer: jobs print exactly once."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc
from hwd.rpc.pb.hwd.v1 import common_pb2, printer_pb2, printer_pb2_grpc
from tests.helpers import DaemonProcess, error_info

VOUCHER = printer_pb2.Voucher(code="KIOSK-2026-0042", amount_cents=2500, expires="2026-12-31", store=["Carrefour"])


@pytest.fixture
def kiosk(tmp_path: Path) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(tmp_path, "--simulated")
    daemon.start()
    yield daemon
    daemon.kill()


def _sim(daemon: DaemonProcess) -> simulator_pb2_grpc.SimulatorStub:
    control = json.loads((daemon.socket_dir / "sim" / "endpoints.json").read_text())["control"]
    return simulator_pb2_grpc.SimulatorStub(grpc.insecure_channel(control))


def _fault(daemon: DaemonProcess, fault: str, **params: str) -> None:
    _sim(daemon).Fault(simulator_pb2.FaultRequest(device="printer", fault=fault, params=params), timeout=10)


def _receipts(daemon: DaemonProcess) -> list[str]:
    devices = _sim(daemon).GetStatus(simulator_pb2.GetStatusRequest(), timeout=10).devices
    return list(next(d for d in devices if d.name == "printer").artifacts)


def _eventually(
    read: Callable[[], common_pb2.DeviceStatus], reason: str, deadline: float = 15
) -> common_pb2.DeviceStatus:
    end = time.monotonic() + deadline
    while (status := read()).reason != reason and time.monotonic() < end:
        time.sleep(0.05)  # the daemon polls the printer; so does this
    return status


def test_a_voucher_prints_once_per_request_id(kiosk: DaemonProcess) -> None:
    with kiosk.channel("ui") as ui:
        printer = printer_pb2_grpc.PrinterStub(ui)
        first = printer.Print(printer_pb2.PrintRequest(request_id="v1", voucher=VOUCHER), timeout=30).job
        again = printer.Print(printer_pb2.PrintRequest(request_id="v1", voucher=VOUCHER), timeout=30).job
        assert (first.state, first.job_id) == (printer_pb2.JOB_STATE_DONE, "v1")
        assert again == first
        assert printer.GetJob(printer_pb2.GetJobRequest(job_id="v1")).job == first
        other = printer_pb2.Voucher(code="KIOSK-2026-0043", amount_cents=2500, expires="2026-12-31")
        with pytest.raises(grpc.RpcError) as reused:
            printer.Print(printer_pb2.PrintRequest(request_id="v1", voucher=other), timeout=30)
        assert error_info(reused.value).reason == "REQUEST_ID_REUSED"
    assert len(_receipts(kiosk)) == 1


def test_unprintable_text_is_refused_naming_the_character(kiosk: DaemonProcess) -> None:
    text = printer_pb2.ReceiptElement(text=printer_pb2.TextLine(text="Merci → à bientôt"))
    with kiosk.channel("ui") as ui, pytest.raises(grpc.RpcError) as bad:
        printer_pb2_grpc.PrinterStub(ui).Print(
            printer_pb2.PrintRequest(request_id="r1", receipt=printer_pb2.Receipt(elements=[text])), timeout=30
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'→'" in bad.value.details()
    assert error_info(bad.value).metadata["field"] == "elements[0].text"
    assert _receipts(kiosk) == []


def test_paper_out_mid_job_fails_it_and_clears_when_paper_is_loaded(kiosk: DaemonProcess) -> None:
    with kiosk.channel("ui") as ui:
        printer = printer_pb2_grpc.PrinterStub(ui)
        _fault(kiosk, "paper-out", after_mm="20")
        job = printer.Print(printer_pb2.PrintRequest(request_id="v2", voucher=VOUCHER), timeout=30).job
        assert job.state == printer_pb2.JOB_STATE_FAILED
        assert job.reason == "PAPER_OUT"
        read = lambda: printer.GetStatus(printer_pb2.GetPrinterStatusRequest(), timeout=5).status  # noqa: E731
        out = _eventually(read, "PAPER_OUT")
        assert out.state == common_pb2.DEVICE_STATE_USER_ERROR
        assert "paper" in out.recovery_hint.lower()
        assert printer.Print(printer_pb2.PrintRequest(request_id="v2", voucher=VOUCHER), timeout=30).job == job
        _fault(kiosk, "load-paper")
        assert _eventually(read, "OK").state == common_pb2.DEVICE_STATE_ONLINE


@pytest.mark.parametrize(
    ("fault", "state", "reason"),
    [
        ("cover-open", common_pb2.DEVICE_STATE_USER_ERROR, "COVER_OPEN"),
        ("offline", common_pb2.DEVICE_STATE_OFFLINE, "OFFLINE"),
    ],
)
def test_each_condition_has_its_state_and_hint_and_refuses_jobs(
    kiosk: DaemonProcess, fault: str, state: int, reason: str
) -> None:
    with kiosk.channel("ui") as ui:
        printer = printer_pb2_grpc.PrinterStub(ui)
        _fault(kiosk, fault)
        status = _eventually(lambda: printer.GetStatus(printer_pb2.GetPrinterStatusRequest(), timeout=5).status, reason)
        assert (status.state, status.reason) == (state, reason)
        assert status.recovery_hint
        with pytest.raises(grpc.RpcError) as refused:
            printer.Print(printer_pb2.PrintRequest(request_id=f"x-{fault}", voucher=VOUCHER), timeout=30)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _receipts(kiosk) == []


def test_a_cutter_jam_is_a_hardware_error(kiosk: DaemonProcess) -> None:
    with kiosk.channel("ui") as ui:
        printer = printer_pb2_grpc.PrinterStub(ui)
        _fault(kiosk, "cutter-jam")
        job = printer.Print(printer_pb2.PrintRequest(request_id="c1", voucher=VOUCHER), timeout=30).job
        assert (job.state, job.reason) == (printer_pb2.JOB_STATE_FAILED, "CUTTER_ERROR")
        read = lambda: printer.GetStatus(printer_pb2.GetPrinterStatusRequest(), timeout=5).status  # noqa: E731
        status = _eventually(read, "CUTTER_ERROR")
        assert status.state == common_pb2.DEVICE_STATE_HARDWARE_ERROR
        assert "cutter" in status.recovery_hint.lower()


def test_sigkill_mid_job_is_outcome_unknown_and_never_printed_again(kiosk: DaemonProcess) -> None:
    _fault(kiosk, "slow", ms="100")  # a busy printer: the job takes seconds, the kill lands in the middle
    with kiosk.channel("ui") as ui:
        printer = printer_pb2_grpc.PrinterStub(ui)

        def print_until_killed() -> None:
            with pytest.raises(grpc.RpcError):
                printer.Print(printer_pb2.PrintRequest(request_id="k1", voucher=VOUCHER), timeout=60)

        call = threading.Thread(target=print_until_killed)
        call.start()
        time.sleep(0.5)
        assert kiosk.stop(signal.SIGKILL) == -signal.SIGKILL
        call.join(30)
    kiosk.start()
    _fault(kiosk, "fast")
    with kiosk.channel("ui") as ui:
        printer = printer_pb2_grpc.PrinterStub(ui)
        assert printer.GetJob(printer_pb2.GetJobRequest(job_id="k1")).job.state == printer_pb2.JOB_STATE_OUTCOME_UNKNOWN
        with pytest.raises(grpc.RpcError) as unknown:
            printer.Print(printer_pb2.PrintRequest(request_id="k1", voucher=VOUCHER), timeout=30)
        assert unknown.value.code() == grpc.StatusCode.ABORTED
        assert error_info(unknown.value).reason == "OUTCOME_UNKNOWN"
        done = printer.Print(printer_pb2.PrintRequest(request_id="k2", voucher=VOUCHER), timeout=30).job
        assert done.state == printer_pb2.JOB_STATE_DONE
    assert len(_receipts(kiosk)) == 1, "the cut job was not printed again; only the new one was"


def test_watch_jobs_sees_every_state_and_an_unknown_job_is_not_found(kiosk: DaemonProcess) -> None:
    with kiosk.channel("ui") as ui:
        printer = printer_pb2_grpc.PrinterStub(ui)
        stream = printer.WatchJobs(printer_pb2.WatchJobsRequest(), timeout=30)
        printer.Print(printer_pb2.PrintRequest(request_id="w1", voucher=VOUCHER), timeout=30)
        states = []
        for job in stream:
            states.append((job.job_id, job.state))
            if job.state == printer_pb2.JOB_STATE_DONE:
                stream.cancel()
                break
        assert states == [
            ("w1", printer_pb2.JOB_STATE_QUEUED),
            ("w1", printer_pb2.JOB_STATE_PRINTING),
            ("w1", printer_pb2.JOB_STATE_DONE),
        ]
        with pytest.raises(grpc.RpcError) as missing:
            printer.GetJob(printer_pb2.GetJobRequest(job_id="never"), timeout=10)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_info(missing.value).reason == "UNKNOWN_JOB"
