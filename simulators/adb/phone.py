"""One simulated Android phone with USB debugging on, reached over ADB on its own TCP port."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from simulators.adb.connection import AdbConnection
from simulators.adb.faults import PhoneFaults
from simulators.adb.profile import AdbProfile
from simulators.adb.trust import TrustStore

log = logging.getLogger(__name__)

#: Maximum payloads a phone may offer: 256 KiB (Android 7 to 8) or 1 MiB (Android 9 and later).
PAYLOADS = (256 * 1024, 1024 * 1024)


class AdbPhone:
    """A phone plugged into one port: listens on 127.0.0.1 (a port the OS picks) and speaks ADB.

    Each TCP connection is one ADB transport, like adbd's (several at once are allowed). The
    constructor does no I/O; :meth:`start` listens, :meth:`stop` is the unplug: the listener
    and every connection close at once.
    """

    def __init__(self, profile: AdbProfile, port: str, trust: TrustStore, max_payload: int = PAYLOADS[1]) -> None:
        """:param port: the USB port path it is plugged into, e.g. ``"1-1.3"``.

        :param trust: the keys it trusts and its customer's answer to the prompt.
        :param max_payload: the largest payload it offers, one of :data:`PAYLOADS`.
        :raises ValueError: ``max_payload`` is not one of :data:`PAYLOADS`.
        """
        if max_payload not in PAYLOADS:
            raise ValueError(f"max payload must be one of {PAYLOADS}, not {max_payload}")
        self.profile = profile
        self.port = port
        self.trust = trust
        self.faults = PhoneFaults()
        self._max_payload = max_payload
        self._server: asyncio.Server | None = None
        self._tcp_port = 0
        self._connections: dict[asyncio.Task[None], AdbConnection] = {}
        self._handlers: set[asyncio.Task[Any]] = set()

    @property
    def endpoint(self) -> str:
        """``tcp:127.0.0.1:PORT``; valid after :meth:`start`."""
        return f"tcp:127.0.0.1:{self._tcp_port}"

    @property
    def address(self) -> tuple[str, int]:
        """``("127.0.0.1", PORT)``; valid after :meth:`start`."""
        return "127.0.0.1", self._tcp_port

    @property
    def state(self) -> str:
        """E.g. ``"awaiting trust"``, ``"connected"``, ``"idle"``, ``"connected, fault: stall"``."""
        if self.trust.prompts_open:
            state = "awaiting trust"
        elif any(connection.online for connection in self._connections.values()):
            state = "connected"
        elif self._connections:
            state = "unauthorized"
        else:
            state = "idle"
        faults = self.faults.active()
        return f"{state}, fault: {', '.join(faults)}" if faults else state

    async def start(self) -> None:
        """Listen for ADB hosts.

        :raises OSError: no TCP port could be bound.
        """
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self._tcp_port = self._server.sockets[0].getsockname()[1]
        log.info("phone %s (%s) on %s at %s", self.profile.serial, self.profile.name, self.port, self.endpoint)

    async def stop(self) -> None:
        """Unplug: stop listening and cut every connection now."""
        if self._server is not None:
            self._server.close()
        for task, connection in list(self._connections.items()):
            connection.close()
            task.cancel()
        if self._handlers:
            await asyncio.wait(list(self._handlers))
        if self._server is not None:
            await self._server.wait_closed()
        log.info("phone %s unplugged from %s", self.profile.serial, self.port)

    def fault(self, name: str, params: Mapping[str, str]) -> None:
        """Inject a fault; see :class:`simulators.adb.faults.PhoneFaults`.

        :raises ValueError: an unknown fault or a bad parameter.
        """
        self.faults.apply(name, params)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        connection = AdbConnection(self.profile, self.trust, self.faults, self._max_payload, reader, writer)
        task = asyncio.create_task(connection.serve(), name=f"adb-connection-{self.port}")
        self._connections[task] = connection
        if handler is not None:
            self._handlers.add(handler)
        try:
            # The connection runs in a task of its own so that cutting it (unplug) never cancels
            # asyncio's handler task, which Python 3.11 reports as an error in a callback.
            await asyncio.wait([task])
        finally:
            if not task.done():  # the handler itself was cancelled: the loop is going down
                connection.close()
                task.cancel()
            del self._connections[task]
            if handler is not None:
                self._handlers.discard(handler)
