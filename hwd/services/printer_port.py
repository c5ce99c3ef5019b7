"""What the printer service needs from the printer, a fake of it, and the receipt checks.

The driver (hwd/drivers/printer.py) implements PrinterPort over TCP, serial or USB; FakePrinter
records bytes in memory for service tests. ``validate`` turns the model's pure checks into the
InvalidArgument a caller sees (the model sits below hwd.errors and cannot raise it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

from hwd.errors import DeviceNotReady, DeviceUnavailable, InvalidArgument
from hwd.model import PrinterStatus, Receipt, ReceiptProblem, Voucher, receipt_problem, voucher_problem

STOP_HINTS = {"PAPER_OUT": "Load a new paper roll and close the cover.", "COVER_OPEN": "Close the printer cover."}


class PrinterPort(Protocol):
    """A receipt printer: raw ESC/POS bytes out, its real-time status in."""

    async def open(self) -> None:
        """Connects; a second call does nothing. :raises DeviceUnavailable: not reachable."""

    async def close(self) -> None:
        """Disconnects; safe to call twice."""

    async def status(self) -> PrinterStatus:
        """:returns: the printer's status. :raises DeviceUnavailable: no answer."""

    async def send(self, segments: Sequence[bytes]) -> int:
        """Writes a job segment by segment, checking paper and cover before each one.

        :returns: the bytes sent (all of them).
        :raises DeviceNotReady: paper out or cover open; metadata ``reason`` and ``bytes`` (sent so far).
        :raises DeviceUnavailable: the printer is gone (metadata ``bytes``).
        """


def validate(document: Receipt | Voucher) -> None:
    """Checks that a receipt or a voucher can be printed exactly as given.

    :param document: the receipt, or the voucher (its fields, then its layout).
    :raises InvalidArgument: naming the field (metadata ``field``) and, for text, the character.
    """
    problem: ReceiptProblem | None
    problem = voucher_problem(document) if isinstance(document, Voucher) else receipt_problem(document)
    if problem is not None:
        raise InvalidArgument(problem.message, metadata={"field": problem.field})


class FakePrinter:
    """An in-memory printer: it records the bytes it is sent.

    :param status: what status() answers (an idle, ready printer by default); settable.
    :param paper_after: the paper runs out once this many bytes were received (None: never).
    """

    def __init__(self, status: PrinterStatus | None = None, *, paper_after: int | None = None) -> None:
        self.opened = False
        self.data = bytearray()
        self.current = status or PrinterStatus.ready()
        self.paper_after = paper_after

    async def open(self) -> None:
        """Marks the fake open."""
        self.opened = True

    async def close(self) -> None:
        """Marks the fake closed."""
        self.opened = False

    async def status(self) -> PrinterStatus:
        """:returns: the current status. :raises DeviceUnavailable: not open."""
        self._check_open()
        return self.current

    async def send(self, segments: Sequence[bytes]) -> int:
        """Records the segments, stopping like the real printer when paper or cover stop it.

        :param segments: the job's bytes, cut at command boundaries.
        :returns: the bytes recorded.
        :raises DeviceNotReady: paper out or cover open before a chunk (metadata ``reason``, ``bytes``).
        :raises DeviceUnavailable: not open.
        """
        self._check_open()
        sent = 0
        for piece in segments:
            self._check_can_continue(sent)
            self.data += piece
            sent += len(piece)
            if self.paper_after is not None and len(self.data) >= self.paper_after:
                self.current = dataclasses.replace(self.current, paper_out=True)
        return sent

    def _check_can_continue(self, sent: int) -> None:
        reason = "PAPER_OUT" if self.current.paper_out else "COVER_OPEN" if self.current.cover_open else ""
        if reason:
            raise DeviceNotReady(
                f"printer stopped after {sent} bytes: {reason}",
                device="fake",
                hint=STOP_HINTS[reason],
                metadata={"reason": reason, "bytes": str(sent)},
            )

    def _check_open(self) -> None:
        if not self.opened:
            raise DeviceUnavailable("fake printer is not open", device="fake")
