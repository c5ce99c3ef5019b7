"""Framing of the two plist protocols a simulated iPhone speaks: usbmuxd's and lockdownd's.

- usbmuxd: a 16-byte little-endian header (total length including the header, version,
  message type, tag) then an XML plist; version 1 and message 8 (plist) is all that is spoken.
- lockdownd and its services: a 32-bit big-endian length then a plist (XML or binary).

Every parser here is total: bytes that are not a valid frame give a :class:`WireError` value,
never an exception, and a length above the cap is refused before anything is buffered.
"""

from __future__ import annotations

import plistlib
import struct
from dataclasses import dataclass
from typing import Any

#: The largest plist accepted in one frame (pair records and diagnostics are a few KiB).
MAX_PLIST = 1024 * 1024
MUX_HEADER = struct.Struct("<4I")
LOCKDOWN_HEADER = struct.Struct(">I")
MUX_VERSION_PLIST = 1
MUX_MESSAGE_PLIST = 8

#: usbmuxd result numbers.
RESULT_OK, RESULT_BADCOMMAND, RESULT_BADDEV, RESULT_CONNREFUSED, RESULT_BADVERSION = 0, 1, 2, 3, 6


@dataclass(frozen=True, slots=True)
class WireError:
    """Bytes that are not a valid frame; ``reason`` says why, for logs and tests."""

    reason: str


def decode_plist(data: bytes) -> dict[str, Any] | WireError:
    """Read a plist (XML or binary) whose top level is a dictionary.

    :returns: the dictionary, or a :class:`WireError` for anything else.
    """
    if len(data) > MAX_PLIST:
        return WireError(f"plist of {len(data)} bytes is above the cap of {MAX_PLIST}")
    try:
        value = plistlib.loads(data)
    except Exception as exc:  # plistlib raises many types on garbage; the parser must stay total
        return WireError(f"not a plist: {type(exc).__name__}")
    if not isinstance(value, dict):
        return WireError(f"plist top level is {type(value).__name__}, not a dictionary")
    return value


def encode_plist(body: dict[str, Any]) -> bytes:
    """The XML plist of ``body``."""
    return plistlib.dumps(body, fmt=plistlib.FMT_XML)


def mux_frame(tag: int, body: dict[str, Any]) -> bytes:
    """A usbmuxd plist message (header and plist) with ``tag``."""
    payload = encode_plist(body)
    return MUX_HEADER.pack(MUX_HEADER.size + len(payload), MUX_VERSION_PLIST, MUX_MESSAGE_PLIST, tag) + payload


def lockdown_frame(body: dict[str, Any]) -> bytes:
    """A lockdownd message: big-endian length and XML plist."""
    payload = encode_plist(body)
    return LOCKDOWN_HEADER.pack(len(payload)) + payload


def mux_header(data: bytes) -> tuple[int, int] | WireError:
    """Check a usbmuxd header.

    :param data: exactly :data:`MUX_HEADER` ``.size`` bytes.
    :returns: (plist length, tag), or why the header is refused.
    """
    if len(data) != MUX_HEADER.size:
        return WireError(f"usbmuxd header of {len(data)} bytes")
    length, version, message, tag = MUX_HEADER.unpack(data)
    if length < MUX_HEADER.size or length - MUX_HEADER.size > MAX_PLIST:
        return WireError(f"usbmuxd length {length} outside {MUX_HEADER.size}..{MUX_HEADER.size + MAX_PLIST}")
    if version != MUX_VERSION_PLIST or message != MUX_MESSAGE_PLIST:
        return WireError(f"usbmuxd version {version} message {message}: only plist messages are spoken")
    return length - MUX_HEADER.size, tag


def lockdown_header(data: bytes) -> int | WireError:
    """Check a lockdownd length prefix.

    :param data: exactly 4 bytes.
    :returns: the plist length, or why it is refused.
    """
    if len(data) != LOCKDOWN_HEADER.size:
        return WireError(f"length prefix of {len(data)} bytes")
    (length,) = LOCKDOWN_HEADER.unpack(data)
    if length == 0 or length > MAX_PLIST:
        return WireError(f"plist length {length} outside 1..{MAX_PLIST}")
    return int(length)
