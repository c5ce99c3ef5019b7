"""One open stream of an ADB connection: a shell command and its output, with flow control."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from simulators.adb import wire
from simulators.adb.services import ShellRequest, endless_chunks, output_chunks, parse_service
from simulators.adb.wire import Packet

if TYPE_CHECKING:
    from simulators.adb.connection import AdbConnection

log = logging.getLogger(__name__)


class ShellStream:
    """A stream that runs one shell command: OKAY, the output in WRTEs, then CLSE.

    Each WRTE waits for the host's OKAY before the next one is sent, as adb requires.
    """

    def __init__(self, connection: AdbConnection, local_id: int, remote_id: int, request: ShellRequest) -> None:
        """Use :meth:`open`, which also starts the stream's task."""
        self.connection = connection
        self.local_id = local_id
        self.remote_id = remote_id
        self.request = request
        self._okay = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    @classmethod
    def open(cls, connection: AdbConnection, local_id: int, remote_id: int, destination: bytes) -> ShellStream | str:
        """Open the stream the host asked for with OPEN ``destination`` and start serving it.

        :returns: the stream, or why the service is refused (then send CLSE).
        """
        request = parse_service(destination, connection.profile.features)
        if isinstance(request, str):
            return request
        stream = cls(connection, local_id, remote_id, request)
        stream.task = connection.spawn(stream._serve(), f"adb-stream-{local_id}")
        return stream

    def acknowledged(self) -> None:
        """The host sent OKAY for our last WRTE."""
        self._okay.set()

    async def _serve(self) -> None:
        try:
            await self._send(wire.OKAY)
            await self._run()
        except (ConnectionError, TimeoutError) as exc:
            log.info("adb stream %d ended with its connection: %r", self.local_id, exc)
            self.connection.close()
        finally:
            self.connection.forget(self)

    async def _run(self) -> None:
        faults = self.connection.faults
        size = self.connection.max_payload
        chunks: Iterable[bytes]
        if faults.take("endless"):
            chunks = endless_chunks(self.request, size)
        else:
            result = self.connection.profile.run(self.request.command)
            chunks = output_chunks(self.request, result, size)
        for chunk in chunks:
            self._okay.clear()
            await self._send(wire.WRTE, chunk)
            if faults.take("drop"):  # part of the output is out, the rest never comes
                self._drop()
                return
            await self._okay.wait()
        if faults.take("drop"):
            self._drop()
            return
        await self._send(wire.CLSE)

    def _drop(self) -> None:
        log.info("adb stream %d: the connection is dropped mid-command (fault)", self.local_id)
        self.connection.close()

    async def _send(self, command: int, data: bytes = b"") -> None:
        await self.connection.send(Packet(command, self.local_id, self.remote_id, data))
