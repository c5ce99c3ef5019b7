"""What the thermal printer reports in its real-time status replies: a pure value type, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

IDLE_REPLY = 0x12  # bits 1 and 4 are fixed to 1 in every DLE EOT reply; nothing else set


@dataclass(frozen=True)
class PrinterStatus:
    """One reading of DLE EOT 1 to 4 (printer, offline cause, error cause, paper roll sensor).

    ``raw`` holds the four reply bytes as received, for a technician.
    """

    online: bool
    cover_open: bool
    feed_button: bool
    paper_near_end: bool
    paper_out: bool
    cutter_error: bool
    unrecoverable_error: bool
    recoverable_error: bool
    raw: tuple[int, int, int, int]

    @classmethod
    def ready(cls) -> PrinterStatus:
        """:returns: the status of an idle printer with paper and the cover shut."""
        return cls(
            online=True, cover_open=False, feed_button=False, paper_near_end=False, paper_out=False,
            cutter_error=False, unrecoverable_error=False, recoverable_error=False, raw=(IDLE_REPLY,) * 4,
        )  # fmt: skip

    @property
    def can_print(self) -> bool:
        """True when a job can start: online, paper in, cover shut, no error."""
        return self.online and not (
            self.paper_out or self.cover_open or self.cutter_error or self.unrecoverable_error or self.recoverable_error
        )
