"""usbmuxd's wire format, pure: frames of a 16-byte little-endian header and an XML plist, and what
the Listen stream says (a device attached or detached).

Header fields, all u32 little-endian: the frame's length including the header, the protocol
version (1), the message type (8: a plist) and a tag the daemon echoes in its reply. Every parser
here is total: bytes from usbmuxd (or from whatever answers on its socket) give a value or a
:class:`Garbage`, never an exception.
"""

from __future__ import annotations

import plistlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

HEADER = struct.Struct("<IIII")
VERSION = 1
PLIST = 8
# A Listen message is a few hundred bytes; a device list for a full kiosk a few KiB.
MAX_FRAME = 256 * 1024
MAX_TEXT = 128
PROG_NAME = "hwd"


@dataclass(frozen=True)
class Garbage:
    """What usbmuxd sent could not be understood; ``why`` says how."""

    why: str


@dataclass(frozen=True)
class Attached:
    """A device usbmuxd reaches over USB arrived.

    :ivar location: usbmuxd's LocationID: on Linux ``(bus << 16) | address``; 0 when not given.
    """

    device_id: int
    udid: str
    location: int
    product_id: int


@dataclass(frozen=True)
class Detached:
    """A device usbmuxd knew by ``device_id`` left."""

    device_id: int


Message = dict[str, Any]


def encode(message: Mapping[str, Any], tag: int) -> bytes:
    """One frame carrying ``message`` as an XML plist."""
    body = plistlib.dumps(dict(message), fmt=plistlib.FMT_XML)
    return HEADER.pack(HEADER.size + len(body), VERSION, PLIST, tag & 0xFFFFFFFF) + body


def listen_request(tag: int) -> bytes:
    """The frame that turns a connection into a Listen stream."""
    return encode({"MessageType": "Listen", "ProgName": PROG_NAME, "ClientVersionString": PROG_NAME,
                   "kLibUSBMuxVersion": 3}, tag)  # fmt: skip


def body_length(header: bytes) -> int | Garbage:
    """How many body bytes follow ``header`` (16 bytes), or Garbage for a frame not to be read."""
    if len(header) != HEADER.size:
        return Garbage(f"a header of {len(header)} bytes")
    length, version, kind, _tag = HEADER.unpack(header)
    if version != VERSION or kind != PLIST:
        return Garbage(f"version {version}, message type {kind}: not a plist frame")
    if length < HEADER.size or length > MAX_FRAME:
        return Garbage(f"a frame of {length} bytes (at most {MAX_FRAME})")
    return int(length) - HEADER.size


def decode(body: bytes) -> Message | Garbage:
    """The plist dictionary of a frame's body."""
    try:
        value = plistlib.loads(body, fmt=plistlib.FMT_XML)
    except Exception as exc:  # expat, base64, date and integer errors alike: all mean garbage
        return Garbage(f"not an XML plist: {type(exc).__name__}")
    if not isinstance(value, dict):
        return Garbage(f"a plist {type(value).__name__}, not a dictionary")
    return value


def result_code(message: Message) -> int | Garbage:
    """The Number of a Result message (0 is success)."""
    number = _int(message.get("Number"))
    if message.get("MessageType") != "Result" or number is None:
        return Garbage("not a Result message")
    return number


def device_change(message: Message) -> Attached | Detached | Garbage | None:
    """What a Listen message says; None for one that changes nothing here (Paired, a network device)."""
    kind = message.get("MessageType")
    device_id = _int(message.get("DeviceID"))
    if kind not in ("Attached", "Detached", "Paired"):
        return Garbage(f"an unknown message {str(kind)[:MAX_TEXT]!r}")
    if device_id is None:
        return Garbage(f"a {kind} message without a DeviceID")
    if kind == "Detached":
        return Detached(device_id)
    return _attached(device_id, message.get("Properties")) if kind == "Attached" else None


def _attached(device_id: int, props: object) -> Attached | Garbage | None:
    if not isinstance(props, dict):
        return Garbage("an Attached message without Properties")
    if props.get("ConnectionType", "USB") != "USB":
        return None  # a phone paired over Wi-Fi is on no port
    udid = props.get("SerialNumber")
    if not isinstance(udid, str) or not udid or len(udid) > MAX_TEXT or not udid.isprintable():
        return Garbage("an Attached message without a usable SerialNumber")
    return Attached(device_id, udid, _int(props.get("LocationID")) or 0, _int(props.get("ProductID")) or 0)


def _int(value: object) -> int | None:
    """A u32 from a plist, or None (a plist bool is an int to Python, not to usbmuxd)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFFFFFFFF:
        return value
    return None
