"""The kiosk as a whole: status, events, leases and notes, as the Kiosk gRPC service offers them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from hwd import __version__
from hwd.errors import InvalidArgument
from hwd.model import DeviceStatus, Event, Lease, NoteAdded
from hwd.services.commands import CommandRunner
from hwd.services.events import EventBus
from hwd.services.leases import LeaseTable
from hwd.services.registry import DAEMON, DeviceRegistry

MAX_NOTE = 4096
MAX_AUTHOR = 64


@dataclass(frozen=True)
class KioskStatus:
    """A snapshot of the whole kiosk."""

    daemon: DeviceStatus
    devices: list[DeviceStatus]
    version: str
    started_ns: int
    last_sequence: int
    simulated: bool
    leases: list[Lease]


class KioskService:
    """What the Kiosk service needs, in one place; built by the daemon, used by the rpc layer."""

    def __init__(
        self,
        bus: EventBus,
        registry: DeviceRegistry,
        leases: LeaseTable,
        commands: CommandRunner,
        simulated: bool,
    ) -> None:
        self.bus = bus
        self.registry = registry
        self.leases = leases
        self.commands = commands
        self.simulated = simulated
        self.started_ns = time.time_ns()

    def status(self) -> KioskStatus:
        """The daemon's and every device's status, and the newest event sequence."""
        return KioskStatus(
            daemon=self.registry.get(DAEMON),
            devices=self.registry.devices(),
            version=__version__,
            started_ns=self.started_ns,
            last_sequence=self.bus.last_sequence,
            simulated=self.simulated,
            leases=self.leases.held(),
        )

    def watch(self, after: int) -> AsyncIterator[Event]:
        """Events after ``after``, replayed then live (see :meth:`EventBus.watch`)."""
        return self.bus.watch(after)

    async def add_note(self, request_id: str, text: str, author: str, role: str) -> int:
        """Journals a technician's note once per request id.

        :returns: the sequence of its NoteAdded event.
        :raises InvalidArgument: for an empty or oversized note or author.
        """
        if not text.strip() or len(text) > MAX_NOTE:
            raise InvalidArgument(f"text must be 1 to {MAX_NOTE} characters and not blank")
        if len(author) > MAX_AUTHOR:
            raise InvalidArgument(f"author must be at most {MAX_AUTHOR} characters")

        async def write() -> dict[str, int]:
            event = await self.bus.publish("notes", NoteAdded(text, author))
            return {"sequence": event.sequence}

        outcome = await self.commands.run(
            request_id, "/hwd.v1.Kiosk/AddNote", {"text": text, "author": author}, role, write
        )
        return int(outcome["sequence"])
