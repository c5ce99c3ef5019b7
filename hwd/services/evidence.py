"""Stills kept as evidence of a phone's session: the file on disk, its row in the journal, an event.

The file is written first (temp file, fsync, rename, fsync of the directory), then journaled,
then announced: a journal row always points at a complete file. A crash between the two leaves
at most an unreferenced file, never a row without its image. Past the retention limit the
oldest stills go, file first, then row (a row whose file is gone is still the oldest and goes
on the next round).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import uuid
from pathlib import Path

from hwd.errors import JournalUnavailable
from hwd.journal import Journal
from hwd.model import EvidenceCaptured, ImageFormat, Still
from hwd.model.camera import EvidenceRecord
from hwd.services.events import EventBus

log = logging.getLogger(__name__)

SUFFIX = {ImageFormat.JPEG: ".jpg", ImageFormat.PNG: ".png"}
TEMP_PREFIX = ".incoming-"
FILE_MODE = 0o640  # evidence shows customers' phones: not world-readable


def write_atomic(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` so that ``path`` is either absent or complete, even after a crash.

    :raises OSError: the directory is not writable or the disk is full (nothing is left behind).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f"{TEMP_PREFIX}{path.name}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself must survive a power cut
    finally:
        os.close(directory)


class EvidenceKeeper:
    """Keeps stills as evidence under ``directory``, at most ``max_files`` of them.

    :param directory: where image files go (``state_dir/evidence``).
    :param source: the device named as the source of EvidenceCaptured events.
    """

    def __init__(self, directory: Path, journal: Journal, bus: EventBus, max_files: int, source: str) -> None:
        self.directory = directory
        self.journal = journal
        self.bus = bus
        self.max_files = max_files
        self.source = source
        self.count = 0  # evidence rows now; read at start, then kept up to date

    async def start(self) -> None:
        """Reads how many stills are kept, applies the limit, and removes temp files left by a crash."""
        await asyncio.to_thread(self._remove_leftovers)
        await self._enforce()

    def _remove_leftovers(self) -> None:
        if self.directory.is_dir():
            for temp in self.directory.glob(f"{TEMP_PREFIX}*"):
                temp.unlink(missing_ok=True)

    async def keep(self, still: Still, port: str, session_id: str) -> Still:
        """Writes the still, journals it, publishes EvidenceCaptured, then applies the retention limit.

        :returns: the still with its ``evidence_id``.
        :raises JournalUnavailable: the file or its row could not be written (then it is not evidence).
        """
        evidence_id = uuid.uuid4().hex
        file = evidence_id + SUFFIX[still.format]
        try:
            await asyncio.to_thread(write_atomic, self.directory / file, still.data)
        except OSError as exc:
            raise JournalUnavailable(f"cannot write evidence file {file}: {exc}", device=self.source) from exc
        record = EvidenceRecord(
            evidence_id, session_id, port, still.format, file, still.sha256, still.width, still.height,
            still.captured_ns,
        )  # fmt: skip
        await self.journal.add_evidence(record)
        await self.bus.publish(
            self.source,
            EvidenceCaptured(
                evidence_id, port, session_id, still.sha256, still.format.value, still.width, still.height
            ),
        )
        await self._enforce()
        return dataclasses.replace(still, evidence_id=evidence_id)

    async def _enforce(self) -> None:
        old = await self.journal.evidence_beyond(self.max_files)
        if old:
            await asyncio.to_thread(self._unlink, [r.file for r in old])
            await self.journal.delete_evidence([r.evidence_id for r in old])
            log.info("evidence retention: removed %s oldest stills", len(old))
        self.count = await self.journal.evidence_count()

    def _unlink(self, files: list[str]) -> None:
        for name in files:
            if Path(name).name == name:  # a name from the journal never leaves the evidence directory
                (self.directory / name).unlink(missing_ok=True)
