"""A small client of usbmuxd's plist protocol: list devices, wait for a UDID, connect, pair records.

pymobiledevice3 has a usbmuxd client too, but it believes any length a packet claims (and asks the
kernel for that many bytes at once), has no deadlines, no Listen-based wait and no
DeletePairRecord; this one reads with a size cap and a deadline on every exchange, and hands the
socket of a Connect to pymobiledevice3's lockdown code.

Framing: a 16-byte little-endian header (length including the header, version 1, message 8 =
plist, tag) then an XML plist.
"""

from __future__ import annotations

import asyncio
import plistlib
import socket
import struct
from typing import Any

from hwd.errors import PhoneError

#: usbmuxd's socket on a Linux kiosk.
DEFAULT_ADDRESS = "/var/run/usbmuxd"
#: lockdownd's port on the phone.
LOCKDOWN_PORT = 62078
#: The largest usbmuxd message accepted (a device list or a pair record is a few KiB).
MAX_MESSAGE_BYTES = 256 * 1024
_HEADER = struct.Struct("<IIII")
_PLIST_VERSION, _PLIST_MESSAGE = 1, 8
#: usbmuxd result numbers that say the device is gone or will not take the connection.
_GONE_RESULTS = {2: "BadDevice", 3: "ConnectionRefused"}
_CLIENT = {"ClientVersionString": "hwd", "ProgName": "hwd", "kLibUSBMuxVersion": 3}


def parse_address(address: str | None) -> tuple[int, Any]:
    """Reads a usbmuxd address: ``HOST:PORT`` or ``tcp:HOST:PORT``, ``unix:/path`` or ``/path``.

    :returns: the socket family and the address to connect to.
    :raises hwd.errors.PhoneError: ``USBMUXD_UNAVAILABLE`` for an address of another form.
    """
    text = address or DEFAULT_ADDRESS
    kind, _, rest = text.partition(":")
    if kind.lower() == "unix" and rest:
        return socket.AF_UNIX, rest
    if text.startswith("/"):
        return socket.AF_UNIX, text
    host, _, port = (rest if kind.lower() == "tcp" else text).rpartition(":")
    if not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise PhoneError(f"not a usbmuxd address: {text!r}", code="USBMUXD_UNAVAILABLE")
    return socket.AF_INET6 if ":" in host else socket.AF_INET, (host.strip("[]"), int(port))


def encode(message: dict[str, Any], tag: int) -> bytes:
    """One request packet."""
    body = plistlib.dumps({**_CLIENT, **message})
    return _HEADER.pack(_HEADER.size + len(body), _PLIST_VERSION, _PLIST_MESSAGE, tag) + body


def decode_header(header: bytes) -> int:
    """The body length a packet header announces.

    :raises hwd.errors.PhoneError: ``PHONE_PROTOCOL_ERROR`` when it is not a plist packet of a
        sane size.
    """
    length, version, message, _tag = _HEADER.unpack(header)
    if version != _PLIST_VERSION or message != _PLIST_MESSAGE:
        raise PhoneError(f"usbmuxd sent a packet of version {version}, type {message}", code="PHONE_PROTOCOL_ERROR")
    if not _HEADER.size <= length <= MAX_MESSAGE_BYTES + _HEADER.size:
        raise PhoneError(f"usbmuxd announced a {length}-byte packet", code="PHONE_PROTOCOL_ERROR")
    return int(length) - _HEADER.size


def decode_body(body: bytes) -> dict[str, Any]:
    """A packet's plist (total: garbage gives PHONE_PROTOCOL_ERROR, never another exception).

    :raises hwd.errors.PhoneError: ``PHONE_PROTOCOL_ERROR`` when it is not a dictionary plist.
    """
    try:
        value = plistlib.loads(body)
    except Exception as exc:  # plistlib raises assorted errors (expat, binascii, ValueError) on garbage
        raise PhoneError(f"usbmuxd sent a malformed plist: {type(exc).__name__}", code="PHONE_PROTOCOL_ERROR") from exc
    if not isinstance(value, dict):
        raise PhoneError("usbmuxd sent a plist that is not a dictionary", code="PHONE_PROTOCOL_ERROR")
    return value


def _result(reply: dict[str, Any], what: str) -> None:
    number = reply.get("Number")
    if reply.get("MessageType") != "Result" or not isinstance(number, int):
        raise PhoneError(f"usbmuxd answered {what} with {reply.get('MessageType')!r}", code="PHONE_PROTOCOL_ERROR")
    if number in _GONE_RESULTS:
        raise PhoneError(f"usbmuxd refused {what}: {_GONE_RESULTS[number]}", code="PHONE_DISCONNECTED")
    if number != 0:
        raise PhoneError(f"usbmuxd refused {what}: result {number}", code="USBMUXD_UNAVAILABLE")


def usb_devices(reply: dict[str, Any]) -> dict[str, int]:
    """The USB devices of a ListDevices reply: UDID (dashes removed) to DeviceID; malformed entries are skipped."""
    found: dict[str, int] = {}
    entries = reply.get("DeviceList")
    for entry in entries if isinstance(entries, list) else ():
        attached = _attached(entry)
        if attached is not None:
            found[attached[0]] = attached[1]
    return found


def _attached(message: object) -> tuple[str, int] | None:
    """(UDID, DeviceID) of an ``Attached`` message of a USB device, else None."""
    if not isinstance(message, dict) or message.get("MessageType") != "Attached":
        return None
    props, devid = message.get("Properties"), message.get("DeviceID")
    if not isinstance(props, dict) or not isinstance(devid, int) or isinstance(devid, bool):
        return None
    serial = props.get("SerialNumber")
    if not isinstance(serial, str) or props.get("ConnectionType", "USB") != "USB":
        return None
    return serial.replace("-", "").upper(), devid


class Usbmux:
    """Talks to one usbmuxd; every exchange opens its own socket, as libusbmuxd does.

    :param address: see :func:`parse_address`; None for the system's socket.
    :param timeout_s: the longest one exchange (connect, request, reply) may take.
    """

    def __init__(self, address: str | None, timeout_s: float) -> None:
        self._address = address
        self._timeout_s = timeout_s
        self._tag = 0

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Sends one request and returns its reply.

        :raises hwd.errors.PhoneError: USBMUXD_UNAVAILABLE, PHONE_PROTOCOL_ERROR.
        """
        sock = await self._open()
        try:
            return await self._exchange(sock, message)
        finally:
            sock.close()

    async def read_buid(self) -> str:
        """The host's SystemBUID, which pair records carry."""
        buid = (await self.request({"MessageType": "ReadBUID"})).get("BUID")
        if not isinstance(buid, str) or not buid:
            raise PhoneError("usbmuxd gave no SystemBUID", code="PHONE_PROTOCOL_ERROR")
        return buid

    async def devices(self) -> dict[str, int]:
        """The USB devices attached now: UDID (dashes removed, upper case) to DeviceID."""
        return usb_devices(await self.request({"MessageType": "ListDevices"}))

    async def wait_for(self, udid: str, *, stale: int | None, timeout_s: float) -> int:
        """Waits until ``udid`` is attached under a DeviceID other than ``stale``.

        Subscribes (Listen) before looking at the list, so an arrival between the two is not lost.

        :returns: its DeviceID.
        :raises hwd.errors.PhoneError: ``PHONE_DISCONNECTED`` when it does not show in time.
        """
        wanted = udid.replace("-", "").upper()
        sock = await self._open()
        try:
            async with asyncio.timeout(timeout_s):
                await self._exchange(sock, {"MessageType": "Listen"})
                devid = (await self.devices()).get(wanted)
                while devid is None or devid == stale:
                    devid = _matching(await _read_message(sock), wanted, stale)
                return devid
        except TimeoutError as exc:
            raise PhoneError(f"the phone {udid} is not attached to usbmuxd", code="PHONE_DISCONNECTED") from exc
        except OSError as exc:
            raise PhoneError(f"usbmuxd broke the Listen connection: {exc!r}", code="USBMUXD_UNAVAILABLE") from exc
        finally:
            sock.close()

    async def connect(self, devid: int, port: int) -> socket.socket:
        """Opens a connection to ``port`` on device ``devid``; the caller owns the socket.

        :raises hwd.errors.PhoneError: ``PHONE_DISCONNECTED`` when the device is gone.
        """
        sock = await self._open()
        try:
            # PortNumber goes in network byte order, read as a little-endian 16-bit number
            await self._exchange(sock, {"MessageType": "Connect", "DeviceID": devid, "PortNumber": socket.htons(port)})
        except BaseException:
            sock.close()
            raise
        return sock

    async def read_pair_record(self, udid: str) -> bytes | None:
        """The pair record usbmuxd keeps for ``udid`` (a plist), None when it has none."""
        data = (await self.request({"MessageType": "ReadPairRecord", "PairRecordID": udid})).get("PairRecordData")
        return data if isinstance(data, bytes) else None

    async def save_pair_record(self, udid: str, devid: int, record: bytes) -> None:
        """Gives usbmuxd the pair record of ``udid`` (as libimobiledevice does after pairing)."""
        message = {"MessageType": "SavePairRecord", "PairRecordID": udid, "PairRecordData": record, "DeviceID": devid}
        _result(await self.request(message), "SavePairRecord")

    async def delete_pair_record(self, udid: str) -> bool:
        """Deletes usbmuxd's pair record of ``udid``; False when it had none."""
        reply = await self.request({"MessageType": "DeletePairRecord", "PairRecordID": udid})
        try:
            _result(reply, "DeletePairRecord")
        except PhoneError:
            if reply.get("MessageType") == "Result":  # a non-zero result: there was no such record
                return False
            raise
        return True

    async def _open(self) -> socket.socket:
        family, where = parse_address(self._address)
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(self._timeout_s):
                await asyncio.get_running_loop().sock_connect(sock, where)
        except BaseException as exc:
            sock.close()
            if isinstance(exc, OSError | TimeoutError):
                raise PhoneError(
                    f"usbmuxd at {self._address or DEFAULT_ADDRESS} is unreachable: {exc!r}", code="USBMUXD_UNAVAILABLE"
                ) from exc
            raise
        return sock

    async def _exchange(self, sock: socket.socket, message: dict[str, Any]) -> dict[str, Any]:
        self._tag += 1
        what = str(message.get("MessageType"))
        try:
            async with asyncio.timeout(self._timeout_s):
                await asyncio.get_running_loop().sock_sendall(sock, encode(message, self._tag))
                reply = await _read_message(sock)
        except TimeoutError as exc:
            raise PhoneError(f"usbmuxd did not answer {what} in time", code="USBMUXD_UNAVAILABLE") from exc
        except OSError as exc:
            raise PhoneError(
                f"usbmuxd broke the connection during {what}: {exc!r}", code="USBMUXD_UNAVAILABLE"
            ) from exc
        if what in ("Listen", "Connect"):
            _result(reply, what)
        return reply


def _matching(message: dict[str, Any], wanted: str, stale: int | None) -> int | None:
    attached = _attached(message)
    if attached is None or attached[0] != wanted or attached[1] == stale:
        return None
    return attached[1]


async def _read_message(sock: socket.socket) -> dict[str, Any]:
    header = await _read_exactly(sock, _HEADER.size)
    return decode_body(await _read_exactly(sock, decode_header(header)))


async def _read_exactly(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    buffer = bytearray()
    while len(buffer) < size:
        chunk = await loop.sock_recv(sock, min(size - len(buffer), 65536))
        if not chunk:
            raise ConnectionResetError("usbmuxd closed the connection")
        buffer += chunk
    return bytes(buffer)
