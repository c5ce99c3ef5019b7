"""The ADB wire format: 24-byte packet headers, their payloads, and a total incremental parser.

A packet is a little-endian header of six u32 (command, arg0, arg1, payload length, payload
checksum, magic) followed by the payload. The checksum is the byte sum of the payload; from
protocol version 0x01000001 on, both sides may leave it 0 and neither checks it. The magic is
the command with every bit flipped.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER = struct.Struct("<6I")
HEADER_SIZE = HEADER.size

CNXN = 0x4E584E43
AUTH = 0x48545541
OPEN = 0x4E45504F
OKAY = 0x59414B4F
WRTE = 0x45545257
CLSE = 0x45534C43
STLS = 0x534C5453
COMMANDS = frozenset({CNXN, AUTH, OPEN, OKAY, WRTE, CLSE, STLS})

#: The first protocol version, still spoken by adb-shell: payload checksums are required.
VERSION_MIN = 0x01000000
#: From this version on, checksums may be zero and are not checked (Android 9's adb and later).
VERSION_SKIP_CHECKSUM = 0x01000001

#: AUTH arg0 values.
AUTH_TOKEN, AUTH_SIGNATURE, AUTH_RSAPUBLICKEY = 1, 2, 3

_MASK = 0xFFFFFFFF


def command_name(command: int) -> str:
    """``"CNXN"`` for CNXN and so on; a hex number for anything else."""
    raw = command.to_bytes(4, "little")
    return raw.decode("ascii") if command in COMMANDS else f"0x{command:08x}"


def checksum(data: bytes) -> int:
    """The ADB payload checksum: the sum of the bytes, modulo 2**32."""
    return sum(data) & _MASK


@dataclass(frozen=True, slots=True)
class Packet:
    """One ADB packet."""

    command: int
    arg0: int
    arg1: int
    data: bytes = b""

    def encode(self, with_checksum: bool = True) -> bytes:
        """Header and payload as sent on the wire.

        :param with_checksum: fill in the payload checksum; False leaves it 0, as peers at
            :data:`VERSION_SKIP_CHECKSUM` do.
        """
        check = checksum(self.data) if with_checksum else 0
        header = HEADER.pack(self.command, self.arg0, self.arg1, len(self.data), check, self.command ^ _MASK)
        return header + self.data

    def __repr__(self) -> str:
        return f"Packet({command_name(self.command)}, {self.arg0:#x}, {self.arg1:#x}, {len(self.data)} bytes)"


@dataclass(frozen=True, slots=True)
class WireError:
    """Why a byte stream is not a valid ADB packet stream; the stream cannot be resynchronised."""

    reason: str


class PacketParser:
    """Turns received bytes into packets, whatever the bytes are.

    Total: :meth:`feed` never raises. The first invalid header (unknown command, wrong magic, a
    length above the limit) or payload checksum ends the stream with a :class:`WireError`; the
    parser then stays failed and ignores further input. It never buffers more than one header
    plus ``max_payload`` bytes beyond what it was fed.
    """

    def __init__(self, max_payload: int, check_checksums: bool = True) -> None:
        """:param max_payload: the largest payload accepted (the negotiated maximum).

        :param check_checksums: whether payload checksums are verified.
        """
        self.max_payload = max_payload
        self.check_checksums = check_checksums
        self._buffer = bytearray()
        self._header: tuple[int, int, int, int, int] | None = None
        self.error: WireError | None = None

    @property
    def pending(self) -> int:
        """How many bytes of an incomplete packet are buffered."""
        return len(self._buffer) + (HEADER_SIZE if self._header is not None else 0)

    def feed(self, data: bytes) -> list[Packet | WireError]:
        """Parse ``data`` after what came before.

        :returns: the complete packets, in order; the last item is a :class:`WireError` if the
            stream turned invalid (then nothing more is ever returned).
        """
        if self.error is not None:
            return []
        self._buffer += data
        out: list[Packet | WireError] = []
        while (item := self._next()) is not None:
            out.append(item)
            if isinstance(item, WireError):
                self.error = item
                self._buffer.clear()
                break
        return out

    def _next(self) -> Packet | WireError | None:
        if self._header is None:
            if len(self._buffer) < HEADER_SIZE:
                return None
            header = self._check_header(*HEADER.unpack_from(self._buffer))
            del self._buffer[:HEADER_SIZE]
            if isinstance(header, WireError):
                return header
            self._header = header
        command, arg0, arg1, length, check = self._header
        if len(self._buffer) < length:
            return None
        data = bytes(self._buffer[:length])
        del self._buffer[:length]
        self._header = None
        if self.check_checksums and checksum(data) != check:
            return WireError(f"{command_name(command)} payload checksum {check:#x}, computed {checksum(data):#x}")
        return Packet(command, arg0, arg1, data)

    def _check_header(
        self, command: int, arg0: int, arg1: int, length: int, check: int, magic: int
    ) -> tuple[int, int, int, int, int] | WireError:
        if command not in COMMANDS:
            return WireError(f"unknown command 0x{command:08x}")
        if magic != command ^ _MASK:
            return WireError(f"bad magic 0x{magic:08x} for {command_name(command)}")
        if length > self.max_payload:
            return WireError(f"{command_name(command)} claims {length} bytes, above the maximum {self.max_payload}")
        return command, arg0, arg1, length, check
