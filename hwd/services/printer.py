"""The printer service: exactly-once print jobs, journaled, with the printer's true status."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hwd.errors import DeviceNotReady, HwdError, UnknownJob
from hwd.journal import Journal
from hwd.model import CommandState, DeviceState, PrinterStatus, PrintJobChanged, Receipt
from hwd.services.commands import CommandRunner
from hwd.services.events import EventBus
from hwd.services.polled import PolledDevice
from hwd.services.printer_port import PrinterPort, validate
from hwd.services.registry import DeviceRegistry

NAME = "printer"
METHOD = "/hwd.v1.Printer/Print"
PAPER_HINT = "Load a new 80 mm thermal paper roll and close the cover."
Status = tuple[DeviceState, str, str, str]


@dataclass(frozen=True)
class Job:
    """A print job as the API shows it; ``job_id`` is the request id it was printed under."""

    job_id: str
    state: str
    reason: str = ""
    detail: str = ""
    bytes: int = 0
    created_ns: int = 0
    finished_ns: int = 0


# The printer's conditions, most serious first; the first that holds gives the DeviceStatus.
_CONDITIONS: tuple[tuple[Callable[[PrinterStatus], bool], Status], ...] = (
    (lambda s: s.unrecoverable_error, (
        DeviceState.HARDWARE_ERROR, "UNRECOVERABLE_ERROR", "the printer reports an unrecoverable error",
        "Power-cycle the printer; call for service if it persists.",
    )),
    (lambda s: s.cutter_error, (
        DeviceState.HARDWARE_ERROR, "CUTTER_ERROR", "the autocutter failed",
        "Open the cover, clear the paper at the cutter, close the cover.",
    )),
    (lambda s: s.paper_out, (DeviceState.USER_ERROR, "PAPER_OUT", "the paper roll is empty", PAPER_HINT)),
    (lambda s: s.cover_open, (
        DeviceState.USER_ERROR, "COVER_OPEN", "the printer cover is open", "Close the printer cover."
    )),
    (lambda s: not s.online, (
        DeviceState.OFFLINE, "OFFLINE", "the printer is offline", "Check the printer's power and its online state."
    )),
    (lambda s: s.paper_near_end, (
        DeviceState.ONLINE, "PAPER_NEAR_END", "the paper roll is nearly empty", "Replace the paper roll soon."
    )),
)  # fmt: skip


def status_of(st: PrinterStatus) -> Status:
    """The DeviceStatus fields (state, reason, detail, hint) for the printer's status replies."""
    return next((status for holds, status in _CONDITIONS if holds(st)), (DeviceState.ONLINE, "OK", "ready", ""))


class PrinterService(PolledDevice[PrinterStatus]):
    """Prints receipts exactly once per request id and reports the printer's status.

    :param render: turns a validated receipt into the printer's bytes (ESC/POS), in segments.
    """

    def __init__(
        self,
        port: PrinterPort,
        render: Callable[[Receipt], Sequence[bytes]],
        registry: DeviceRegistry,
        bus: EventBus,
        commands: CommandRunner,
        journal: Journal,
        *,
        poll_s: float = 1.0,
    ) -> None:
        super().__init__(NAME, registry, poll_s)
        self.port = port
        self.render = render
        self.bus = bus
        self.commands = commands
        self.journal = journal

    async def read(self) -> PrinterStatus:
        await self.port.open()
        return await self.port.status()

    async def observe(self, state: PrinterStatus) -> None:
        await self.registry.set(NAME, *status_of(state))

    async def print(self, request_id: str, role: str, receipt: Receipt, params: dict[str, Any]) -> Job:
        """Prints ``receipt`` once for ``request_id``; a repeat returns the first job.

        :param params: the request's document as plain data (what makes two requests the same).
        :raises InvalidArgument: the receipt cannot be printed (the field and character are named).
        :raises DeviceNotReady: the printer cannot print now (nothing was sent).
        """
        validate(receipt)
        created = time.time_ns()

        async def job() -> dict[str, Any]:
            await self._changed_to(request_id, "QUEUED")
            return await self.one_at_a_time(lambda: self._print(request_id, receipt, created))

        return Job(**await self.commands.run(request_id, METHOD, params, role, job))

    async def _print(self, job_id: str, receipt: Receipt, created: int) -> dict[str, Any]:
        st = await self.refresh()
        state, reason, detail, hint = status_of(st)
        if state not in (DeviceState.ONLINE,):
            await self._changed_to(job_id, "FAILED", reason)
            raise DeviceNotReady(
                f"the printer cannot print: {detail}", device=NAME, hint=hint, metadata={"reason": reason}
            )
        data = await asyncio.to_thread(self.render, receipt)  # ~10 ms of CPU (images): off the event loop
        await self._changed_to(job_id, "PRINTING")
        try:
            sent = await self.port.send(data)
        except HwdError as exc:
            # Part of the receipt may be out: the job failed, with what it printed, and is never redone.
            why = exc.metadata.get("reason", exc.reason)
            sent = int(exc.metadata.get("bytes", "0"))
            await self._changed_to(job_id, "FAILED", why, sent)
            await self._refresh_quietly()
            return vars(Job(job_id, "FAILED", why, exc.message, sent, created, time.time_ns()))
        await self._changed_to(job_id, "DONE", "", sent)
        return vars(Job(job_id, "DONE", "", "", sent, created, time.time_ns()))

    async def _refresh_quietly(self) -> None:
        with contextlib.suppress(HwdError):  # the status poll will report it
            await self.refresh()

    async def _changed_to(self, job_id: str, state: str, reason: str = "", sent: int = 0) -> None:
        await self.bus.publish(NAME, PrintJobChanged(job_id, state, reason, sent))

    async def job(self, job_id: str) -> Job:
        """The job printed under ``job_id``, as the journal has it. :raises UnknownJob:"""
        record = await self.journal.get_command(job_id)
        if record is None or record.method != METHOD:
            raise UnknownJob(f"no print job {job_id!r}", device=NAME)
        if record.state is CommandState.SUCCEEDED and record.outcome:
            return Job(**record.outcome)
        finished = record.finished_ns or 0
        if record.state is CommandState.FAILED and record.error:
            err = record.error
            return Job(job_id, "FAILED", err.get("metadata", {}).get("reason", err["reason"]), err["message"], 0,
                       record.started_ns, finished)  # fmt: skip
        if record.state is CommandState.OUTCOME_UNKNOWN:
            return Job(
                job_id, "OUTCOME_UNKNOWN", "OUTCOME_UNKNOWN", "interrupted by a restart", 0, record.started_ns, finished
            )
        return Job(job_id, "PRINTING", created_ns=record.started_ns)

    async def watch_jobs(self) -> AsyncIterator[PrintJobChanged]:
        """Every job change from now on."""
        async for event in self.bus.watch(self.bus.last_sequence):
            if isinstance(event.payload, PrintJobChanged):
                yield event.payload
