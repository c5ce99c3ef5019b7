"""The simulated usbmuxd: the plist protocol over TCP, in front of the plugged iPhones.

Messages: ReadBUID, ListDevices, Listen (then Attached and Detached as phones come and go),
Connect (the socket then belongs to the phone's lockdownd or service), ReadPairRecord,
SavePairRecord, DeletePairRecord. Pair records are files ``usbmuxd/pair_records/UDID.plist``
in the simulator's workdir, so a test can see them come and go.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from pathlib import Path
from typing import Any, Protocol

from simulators.ios.pairrecords import PairRecords
from simulators.ios.plist_wire import (
    MUX_HEADER,
    RESULT_BADCOMMAND,
    RESULT_BADDEV,
    RESULT_CONNREFUSED,
    RESULT_OK,
    WireError,
    decode_plist,
    mux_frame,
    mux_header,
)

log = logging.getLogger(__name__)

#: How long a client may sit between requests (a Listen connection has no such limit).
IDLE_DEADLINE_S = 60.0
#: How many events a listener may fall behind before it is disconnected.
LISTEN_CAPACITY = 256
IPHONE_PRODUCT_ID = 0x12A8
USB2_SPEED = 480_000_000


class MuxPhone(Protocol):
    """A phone as usbmuxd sees it (see :class:`simulators.ios.iphone.IPhone`)."""

    @property
    def serial(self) -> str:
        """The UDID."""
        ...

    @property
    def location_id(self) -> int:
        """Where it is plugged, as usbmuxd reports it."""
        ...

    def accepts(self, device_port: int) -> bool:
        """Whether something listens on ``device_port``."""
        ...

    async def serve(self, device_port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve the connected socket."""
        ...


def properties(device_id: int, phone: MuxPhone) -> dict[str, Any]:
    """The ``Properties`` usbmuxd gives for one attached phone."""
    return {
        "ConnectionSpeed": USB2_SPEED,
        "ConnectionType": "USB",
        "DeviceID": device_id,
        "LocationID": phone.location_id,
        "ProductID": IPHONE_PRODUCT_ID,
        "SerialNumber": phone.serial,
        "USBSerialNumber": phone.serial.replace("-", ""),
    }


def attached(device_id: int, phone: MuxPhone) -> dict[str, Any]:
    """The ``Attached`` message of one phone (a Listen event, or an entry of ListDevices' DeviceList)."""
    return {"MessageType": "Attached", "DeviceID": device_id, "Properties": properties(device_id, phone)}


class UsbmuxdSim:
    """The ``usbmuxd`` device; iPhones attach to it through :meth:`attach` when plugged."""

    name = "usbmuxd"
    kind = "usbmuxd"

    def __init__(self, workdir: Path) -> None:
        """:param workdir: the simulator's directory; pair records go under ``workdir/usbmuxd``."""
        self.records = PairRecords(workdir / "usbmuxd")
        self._server: asyncio.Server | None = None
        self._port = 0
        self._buid = ""
        self._devices: dict[int, MuxPhone] = {}
        self._last_id = 0
        self._listeners: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._clients: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    @property
    def endpoint(self) -> str:
        """``tcp:127.0.0.1:PORT``; libimobiledevice and pymobiledevice3 take ``127.0.0.1:PORT``."""
        return f"tcp:127.0.0.1:{self._port}"

    @property
    def state(self) -> str:
        """E.g. ``"1 device, 2 listeners"``."""
        devices, listeners = len(self._devices), len(self._listeners)
        return f"{devices} device{'' if devices == 1 else 's'}, {listeners} listener{'' if listeners == 1 else 's'}"

    @property
    def faults(self) -> list[str]:
        """None: faults go to each phone through the ``phones`` device."""
        return []

    async def start(self) -> None:
        """Read (or make) the stable SystemBUID and listen.

        :raises OSError: the directory or the TCP port cannot be had.
        """
        self._buid = await asyncio.to_thread(self.records.buid, lambda: str(uuid.uuid4()).upper())
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self._port = self._server.sockets[0].getsockname()[1]
        log.info("usbmuxd at %s, SystemBUID %s", self.endpoint, self._buid)

    async def stop(self) -> None:
        """Stop listening and close every client."""
        if self._server is not None:
            self._server.close()
        await self._close_clients()
        if self._server is not None:
            await self._server.wait_closed()

    async def reset(self) -> None:
        """Forget every pair record and disconnect every client (phones are unplugged by ``phones``)."""
        await self._close_clients()
        await asyncio.to_thread(self.records.clear)

    async def fault(self, name: str, params: dict[str, str]) -> None:
        """usbmuxd takes no faults.

        :raises ValueError: always.
        """
        raise ValueError(f"usbmuxd takes no faults (not {name!r}); phone faults go to device 'phones'")

    def attach(self, phone: MuxPhone) -> int:
        """Announce a phone to listeners; returns its new DeviceID."""
        self._last_id += 1
        self._devices[self._last_id] = phone
        self._publish(attached(self._last_id, phone))
        return self._last_id

    def detach(self, device_id: int) -> None:
        """Announce that a phone is gone (nothing when it was not attached)."""
        if self._devices.pop(device_id, None) is not None:
            self._publish({"MessageType": "Detached", "DeviceID": device_id})

    def _publish(self, event: dict[str, Any]) -> None:
        for queue in list(self._listeners):
            if queue.qsize() >= LISTEN_CAPACITY:
                self._listeners.discard(queue)
                queue.put_nowait(None)  # the queue holds one slot more for this end marker
            else:
                queue.put_nowait(event)

    async def _close_clients(self) -> None:
        tasks = list(self._clients)
        for task in tasks:
            self._clients[task].close()
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._serve(reader, writer), name="usbmuxd-client")
        self._clients[task] = writer
        try:
            # Its own task, so closing clients never cancels asyncio's handler task.
            await asyncio.wait([task])
        finally:
            if not task.done():
                writer.close()
                task.cancel()
            self._clients.pop(task, None)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (request := await self._read(reader)) is not None:
                tag, body = request
                if not await self._handle(tag, body, reader, writer):
                    break
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            log.debug("usbmuxd client ends: %r", exc)
        finally:
            writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]] | None:
        """The next request; None at a clean end of stream or after garbage (logged)."""
        async with asyncio.timeout(IDLE_DEADLINE_S):
            head = await reader.read(MUX_HEADER.size)
            if not head:
                return None
            head += await reader.readexactly(MUX_HEADER.size - len(head))
            header = mux_header(head)
            if isinstance(header, WireError):
                log.info("usbmuxd refuses a message: %s", header.reason)
                return None
            length, tag = header
            body = decode_plist(await reader.readexactly(length))
        if isinstance(body, WireError):
            log.info("usbmuxd refuses a message: %s", body.reason)
            return None
        return tag, body

    async def _handle(
        self, tag: int, body: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; False when the connection is done with usbmuxd (closed, listening, connected)."""
        kind = body.get("MessageType")
        if kind == "Connect":
            return await self._connect(tag, body, reader, writer)
        if kind == "Listen":
            await self._listen(tag, reader, writer)
            return False
        reply = await self._answer(kind, body)
        writer.write(mux_frame(tag, reply))
        await writer.drain()
        return True

    async def _answer(self, kind: object, body: dict[str, Any]) -> dict[str, Any]:
        if kind == "ReadBUID":
            return {"BUID": self._buid}
        if kind == "ListDevices":
            return {"DeviceList": [attached(device_id, phone) for device_id, phone in self._devices.items()]}
        if kind in ("ReadPairRecord", "SavePairRecord", "DeletePairRecord"):
            return await self._pair_record(kind, body)
        return result(RESULT_BADCOMMAND)

    async def _pair_record(self, kind: object, body: dict[str, Any]) -> dict[str, Any]:
        udid = body.get("PairRecordID")
        if not isinstance(udid, str) or not re.fullmatch(r"[A-Za-z0-9-]{1,64}", udid):
            return result(RESULT_BADCOMMAND)
        if kind == "ReadPairRecord":
            data = await asyncio.to_thread(self.records.read, udid)
            return {"PairRecordData": data} if data is not None else result(RESULT_BADDEV)
        if kind == "SavePairRecord":
            data = body.get("PairRecordData")
            if not isinstance(data, bytes) or isinstance(decode_plist(data), WireError):
                return result(RESULT_BADCOMMAND)
            await asyncio.to_thread(self.records.save, udid, data)
            log.info("usbmuxd saved the pair record of %s", udid)
            return result(RESULT_OK)
        deleted = await asyncio.to_thread(self.records.delete, udid)
        log.info("usbmuxd deleted the pair record of %s: %s", udid, deleted)
        return result(RESULT_OK if deleted else RESULT_BADDEV)

    async def _connect(
        self, tag: int, body: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        target = self._target(body)
        writer.write(mux_frame(tag, result(target if isinstance(target, int) else RESULT_OK)))
        await writer.drain()
        if isinstance(target, int):
            return True
        phone, device_port = target
        await phone.serve(device_port, reader, writer)
        return False

    def _target(self, body: dict[str, Any]) -> tuple[MuxPhone, int] | int:
        """The phone and device port a Connect asks for, or the result number that refuses it."""
        device_id, port = body.get("DeviceID"), body.get("PortNumber")
        phone = self._devices.get(device_id) if isinstance(device_id, int) else None
        if phone is None or not isinstance(port, int) or not 0 <= port <= 0xFFFF:
            return RESULT_BADDEV
        device_port = int.from_bytes(port.to_bytes(2, "little"), "big")  # sent in network byte order
        return (phone, device_port) if phone.accepts(device_port) else RESULT_CONNREFUSED

    async def _listen(self, tag: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(LISTEN_CAPACITY + 1)
        writer.write(mux_frame(tag, result(RESULT_OK)))
        for device_id, phone in self._devices.items():
            queue.put_nowait(attached(device_id, phone))
        self._listeners.add(queue)
        sender = asyncio.create_task(self._send_events(queue, writer), name="usbmuxd-listener")
        try:
            # A listener sends nothing more; reading only notices when it leaves.
            while await reader.read(4096) and not sender.done():
                pass
        finally:
            self._listeners.discard(queue)
            sender.cancel()
            await asyncio.wait([sender])

    @staticmethod
    async def _send_events(queue: asyncio.Queue[dict[str, Any] | None], writer: asyncio.StreamWriter) -> None:
        try:
            while (event := await queue.get()) is not None:
                writer.write(mux_frame(0, event))
                await writer.drain()
        except OSError as exc:
            log.debug("usbmuxd listener gone: %r", exc)
        writer.close()


def result(number: int) -> dict[str, Any]:
    """A ``Result`` reply."""
    return {"MessageType": "Result", "Number": number}
