"""One ADB connection to a simulated phone: handshake, authentication, then streams.

The phone's side of the protocol, as adbd does it: the host's CNXN is answered with AUTH
TOKEN; a valid signature by a trusted key, or a public key the customer allows on the prompt,
is answered with the phone's CNXN (its version, the negotiated maximum payload and its banner);
then every OPEN gets a stream of its own, several at once. Every WRTE the phone sends waits for
the host's OKAY before the next one (flow control).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Coroutine
from typing import Any

from simulators.adb import wire
from simulators.adb.auth import HostKey, new_token, parse_host_key
from simulators.adb.faults import PhoneFaults
from simulators.adb.profile import AdbProfile, device_banner
from simulators.adb.streams import ShellStream
from simulators.adb.trust import TrustStore
from simulators.adb.wire import Packet, PacketParser, WireError

log = logging.getLogger(__name__)

#: The smallest maximum payload a host may ask for (the first protocol's).
MIN_PAYLOAD = 4096
#: How many bytes one read takes from the socket.
READ_CHUNK = 65536
#: How long the rest of a packet may take once its first byte arrived.
PACKET_DEADLINE_S = 30.0
#: How long a packet may wait for the host to make room in the socket.
SEND_DEADLINE_S = 30.0
#: How many streams one connection may have open at once; more are refused.
MAX_STREAMS = 64


class AdbConnection:
    """Serves one TCP connection from an ADB host; :meth:`serve` runs until it ends."""

    def __init__(
        self,
        profile: AdbProfile,
        trust: TrustStore,
        faults: PhoneFaults,
        max_payload: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        """:param max_payload: the largest payload the phone offers (256 KiB or 1 MiB)."""
        self.profile = profile
        self.faults = faults
        self._trust = trust
        self._reader = reader
        self._writer = writer
        self._parser = PacketParser(max_payload)
        self._offer = max_payload
        self.max_payload = max_payload
        self._version = wire.VERSION_MIN
        self._greeted = False  # the host's CNXN arrived
        self.online = False  # the phone's CNXN has been sent
        self._token = b""
        self._prompt: asyncio.Task[None] | None = None
        self._streams: dict[int, ShellStream] = {}
        self._next_id = 1
        self._send_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def checksums(self) -> bool:
        """Whether payload checksums are sent and checked (below protocol 0x01000001)."""
        return self._version < wire.VERSION_SKIP_CHECKSUM

    async def serve(self) -> None:
        """Read and answer packets until the host leaves, sends garbage or the phone drops it."""
        sock = self._writer.get_extra_info("socket")
        if sock is not None:  # header and payload go in one write; no Nagle delay either
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await self._read_loop()
        except (ConnectionError, TimeoutError) as exc:
            log.info("adb connection ended: %r", exc)
        finally:
            self.close()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()

    def close(self) -> None:
        """Cut the connection at once, like a pulled cable; streams and the prompt end."""
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        self._streams.clear()
        self._writer.transport.abort()

    async def _read_loop(self) -> None:
        while True:
            deadline = PACKET_DEADLINE_S if self._parser.pending else None
            async with asyncio.timeout(deadline):
                data = await self._reader.read(READ_CHUNK)
            if not data:
                return
            for item in self._parser.feed(data):
                if isinstance(item, WireError):
                    log.warning("adb host sent an invalid packet: %s; closing", item.reason)
                    return
                if not await self._handle(item):
                    return

    async def _handle(self, packet: Packet) -> bool:
        """Answer one packet; False ends the connection."""
        if packet.command == wire.CNXN:
            return await self._on_connect(packet)
        if packet.command == wire.AUTH:
            await self._on_auth(packet)
        elif not self.online:
            log.debug("adb host sent %r before authenticating; ignored", packet)
        elif packet.command == wire.OPEN:
            await self._on_open(packet)
        elif (stream := self._streams.get(packet.arg1)) is None or stream.remote_id != packet.arg0:
            log.debug("adb packet for no open stream: %r", packet)
        elif packet.command == wire.OKAY:
            stream.acknowledged()
        elif packet.command == wire.WRTE:  # stdin: taken and acknowledged, not used
            await self.send(Packet(wire.OKAY, stream.local_id, stream.remote_id))
        elif packet.command == wire.CLSE:
            self.forget(stream)
        return True

    async def _on_connect(self, packet: Packet) -> bool:
        if packet.arg0 < wire.VERSION_MIN or packet.arg1 < MIN_PAYLOAD:
            log.warning("adb host offers version %#x, max payload %d: refused", packet.arg0, packet.arg1)
            return False
        for stream in list(self._streams.values()):  # a new CNXN starts the transport afresh
            self.forget(stream)
        self._greeted, self.online = True, False
        self._version = min(packet.arg0, wire.VERSION_SKIP_CHECKSUM)
        self.max_payload = min(packet.arg1, self._offer)
        self._parser.max_payload = self.max_payload
        self._parser.check_checksums = self.checksums
        log.info("adb host %r: version %#x, max payload %d", packet.data[:64], self._version, self.max_payload)
        await self._send_token()
        return True

    async def _on_auth(self, packet: Packet) -> None:
        if self.online or not self._greeted:
            return
        if packet.arg0 == wire.AUTH_SIGNATURE and self._token:
            if self._trust.signed(self._token, packet.data):
                await self._go_online()
            else:
                await self._send_token()
        elif packet.arg0 == wire.AUTH_RSAPUBLICKEY and self._prompt is None:
            key = parse_host_key(packet.data)
            if isinstance(key, str):
                log.warning("adb host sent a bad public key: %s", key)
            elif self._trust.trusts(key.key):
                await self._go_online()
            else:
                self._prompt = self.spawn(self._ask(key), "adb-prompt")

    async def _ask(self, key: HostKey) -> None:
        try:
            if await self._trust.prompt(key, self.faults.take("prompt-never-answered")):
                await self._go_online()
            else:
                self.close()  # refused: adbd drops the host
        except (ConnectionError, TimeoutError) as exc:
            log.info("adb connection ended after the prompt: %r", exc)
            self.close()
        finally:
            self._prompt = None

    async def _send_token(self) -> None:
        self._token = new_token()
        await self.send(Packet(wire.AUTH, wire.AUTH_TOKEN, 0, self._token))

    async def _go_online(self) -> None:
        self._token = b""
        await self.send(Packet(wire.CNXN, wire.VERSION_SKIP_CHECKSUM, self.max_payload, device_banner(self.profile)))
        self.online = True

    async def _on_open(self, packet: Packet) -> None:
        local_id = self._next_id
        self._next_id += 1
        stream: ShellStream | str = f"{MAX_STREAMS} streams are open already"
        if len(self._streams) < MAX_STREAMS:
            stream = ShellStream.open(self, local_id, packet.arg0, packet.data)
        if isinstance(stream, str):
            log.info("adb OPEN %r refused: %s", packet.data[:80], stream)
            await self.send(Packet(wire.CLSE, 0, packet.arg0))
            return
        self._streams[local_id] = stream

    def forget(self, stream: ShellStream) -> None:
        """Drop ``stream``; its task is cancelled unless it is the caller."""
        self._streams.pop(stream.local_id, None)
        if stream.task is not None and stream.task is not asyncio.current_task():
            stream.task.cancel()

    def spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run ``coroutine`` as a task of this connection (cancelled when it closes)."""
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def send(self, packet: Packet) -> None:
        """Send one packet, after any stall or delay the phone suffers, in order with the others.

        :raises ConnectionError: the connection is gone.
        :raises TimeoutError: the host did not make room within :data:`SEND_DEADLINE_S`.
        """
        async with self._send_lock:
            await self.faults.wait_running()
            if self.faults.delay_s:
                await asyncio.sleep(self.faults.delay_s)  # the "slow" fault
                await self.faults.wait_running()
            if self._writer.is_closing():
                raise ConnectionResetError("the adb connection is closed")
            self._writer.write(self._encode(packet))
            async with asyncio.timeout(SEND_DEADLINE_S):
                await self._writer.drain()

    def _encode(self, packet: Packet) -> bytes:
        """The bytes for ``packet``, or what a fault sends instead."""
        if self.faults.take("garbage"):
            return b"GARBAGE!" + os.urandom(16)
        if self.faults.take("oversized"):
            big = self.max_payload + 1
            return wire.HEADER.pack(wire.WRTE, 1, 1, big, 0, wire.WRTE ^ 0xFFFFFFFF)
        checksums = self.checksums or not self.online  # the host learns the version from our CNXN
        data = packet.encode(with_checksum=checksums)
        if packet.command == wire.WRTE and self.faults.take("bad-checksum"):
            wrong = (wire.checksum(packet.data) + 1) & 0xFFFFFFFF
            data = data[:16] + wrong.to_bytes(4, "little") + data[20:]
        return data
