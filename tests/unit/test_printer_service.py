"""PrinterService with the in-memory printer: exactly-once jobs, failures with their reason, status mapping."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hwd.errors import DeviceNotReady, InvalidArgument, OutcomeUnknown, UnknownJob
from hwd.journal import Journal, JournalStore
from hwd.model import (
    CommandRecord,
    CommandState,
    DeviceState,
    PrinterStatus,
    PrintJobChanged,
    QrCode,
    Receipt,
    TextLine,
)
from hwd.services.commands import CommandRunner, params_hash
from hwd.services.events import EventBus
from hwd.services.printer import METHOD, PrinterService, status_of
from hwd.services.printer_port import FakePrinter
from hwd.services.registry import DeviceRegistry

RECEIPT = Receipt((TextLine("Reçu 25,00 €"), QrCode("KIOSK-1")))


def _segments(receipt: Receipt) -> list[bytes]:
    return [e.__class__.__name__.encode() + b":" + repr(e).encode() for e in receipt.elements]


async def _service(journal: Journal, fake: FakePrinter) -> tuple[PrinterService, EventBus]:
    bus = EventBus(journal, queue_size=256, replay_page=64)
    await bus.start()
    service = PrinterService(
        fake, _segments, DeviceRegistry(bus), bus, CommandRunner(journal, bus), journal, poll_s=0.1
    )
    return service, bus


async def _job_states(journal: Journal, job_id: str) -> list[str]:
    events = await journal.events_after(0, 1000)
    return [e.payload.state for e in events if isinstance(e.payload, PrintJobChanged) and e.payload.job_id == job_id]


async def test_a_job_prints_once_per_request_id(journal: Journal) -> None:
    fake = FakePrinter()
    service, _ = await _service(journal, fake)
    first = await service.print("j1", "ui", RECEIPT, {"doc": 1})
    again = await service.print("j1", "ui", RECEIPT, {"doc": 1})
    assert first == again
    assert (first.state, first.bytes) == ("DONE", len(fake.data))
    assert bytes(fake.data) == b"".join(_segments(RECEIPT)), "printed exactly once"
    assert await _job_states(journal, "j1") == ["QUEUED", "PRINTING", "DONE"]
    assert await service.job("j1") == first


async def test_paper_out_mid_job_fails_the_job_with_what_it_printed(journal: Journal) -> None:
    fake = FakePrinter(paper_after=5)
    service, _ = await _service(journal, fake)
    job = await service.print("j2", "ui", RECEIPT, {"doc": 2})
    assert (job.state, job.reason) == ("FAILED", "PAPER_OUT")
    assert 0 < job.bytes < len(b"".join(_segments(RECEIPT)))
    assert await service.print("j2", "ui", RECEIPT, {"doc": 2}) == job, "a failed job is never redone"
    assert service.registry.get("printer").reason == "PAPER_OUT"


async def test_a_printer_that_cannot_print_refuses_before_sending_anything(journal: Journal) -> None:
    fake = FakePrinter(dataclasses.replace(PrinterStatus.ready(), cover_open=True, online=False))
    service, _ = await _service(journal, fake)
    with pytest.raises(DeviceNotReady, match="cover") as refused:
        await service.print("j3", "ui", RECEIPT, {"doc": 3})
    assert refused.value.hint
    assert fake.data == bytearray()
    assert (await service.job("j3")).state == "FAILED"


async def test_unprintable_text_is_refused_before_journaling(journal: Journal) -> None:
    service, _ = await _service(journal, FakePrinter())
    with pytest.raises(InvalidArgument, match="'→'"):
        await service.print("j4", "ui", Receipt((TextLine("a → b"),)), {})
    with pytest.raises(UnknownJob):
        await service.job("j4")


async def test_a_job_cut_by_a_crash_is_outcome_unknown_and_not_printed(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    store = JournalStore(path)
    store.open()
    store.begin_command(CommandRecord("j5", METHOD, params_hash(METHOD, {"doc": 5}), CommandState.PENDING, "ui", 1))
    store.close()
    journal = Journal(path)
    await journal.open()
    try:
        fake = FakePrinter()
        service, _ = await _service(journal, fake)
        await service.commands.recover()
        assert (await service.job("j5")).state == "OUTCOME_UNKNOWN"
        with pytest.raises(OutcomeUnknown):
            await service.print("j5", "ui", RECEIPT, {"doc": 5})
        assert fake.data == bytearray()
    finally:
        await journal.close()


@pytest.mark.parametrize(
    ("change", "state", "reason"),
    [
        ({}, DeviceState.ONLINE, "OK"),
        ({"paper_near_end": True}, DeviceState.ONLINE, "PAPER_NEAR_END"),
        ({"paper_out": True}, DeviceState.USER_ERROR, "PAPER_OUT"),
        ({"cover_open": True}, DeviceState.USER_ERROR, "COVER_OPEN"),
        ({"online": False}, DeviceState.OFFLINE, "OFFLINE"),
        ({"cutter_error": True}, DeviceState.HARDWARE_ERROR, "CUTTER_ERROR"),
        ({"unrecoverable_error": True, "paper_out": True}, DeviceState.HARDWARE_ERROR, "UNRECOVERABLE_ERROR"),
    ],
)
def test_status_mapping(change: dict[str, bool], state: DeviceState, reason: str) -> None:
    got = status_of(dataclasses.replace(PrinterStatus.ready(), **change))
    assert got[:2] == (state, reason)
    assert bool(got[3]) == (reason != "OK"), "every condition but OK tells what to do"
