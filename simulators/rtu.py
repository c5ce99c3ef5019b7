"""Modbus RTU, slave side: CRC, frame splitting, request parsing and replies.

Pure code with no I/O, total over its input: bytes from the line never raise out of here. A
request frame (ADU) is ``unit, function, data..., crc_lo, crc_hi``; the reply has the same shape.
Only the function codes the kiosk's controllers implement are parsed (see
docs/hardware/modbus-line.md): 03 Read Holding Registers, 04 Read Input Registers, 06 Write Single
Register, 16 Write Multiple Registers.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping

from simulators.registers import ILLEGAL_DATA_ADDRESS, ILLEGAL_DATA_VALUE, ILLEGAL_FUNCTION, ModbusError, RegisterUnit

log = logging.getLogger(__name__)

READ_HOLDING = 0x03
READ_INPUT = 0x04
WRITE_SINGLE = 0x06
WRITE_MULTIPLE = 0x10
#: Exception code for a unit that failed in a way the protocol has no better word for.
SLAVE_DEVICE_FAILURE = 4
#: Largest quantities the spec allows in one request (the reply must fit in a 256-byte ADU).
MAX_READ = 125
MAX_WRITE = 123
#: Smallest ADU: unit, function, two CRC bytes.
MIN_FRAME = 4
#: Largest ADU the spec allows.
MAX_FRAME = 256
#: Register address space of one table.
ADDRESS_SPACE = 0x10000

_FIXED_LENGTH = {READ_HOLDING: 8, READ_INPUT: 8, WRITE_SINGLE: 8}
#: FC16 header: unit, function, address (2), quantity (2), byte count; then data and CRC.
_FC16_HEADER = 7


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS of ``data`` (polynomial 0x8005 reflected, initial value 0xFFFF); sent low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def with_crc(body: bytes) -> bytes:
    """``body`` followed by its CRC, low byte first: a complete ADU."""
    return body + struct.pack("<H", crc16(body))


def crc_ok(frame: bytes) -> bool:
    """Whether ``frame`` ends with the right CRC of what precedes it."""
    return len(frame) >= MIN_FRAME and struct.unpack("<H", frame[-2:])[0] == crc16(frame[:-2])


def expected_length(buffer: bytes) -> int | None:
    """Length of the request frame at the start of ``buffer``.

    :returns: the length in bytes (it may exceed ``len(buffer)``: more bytes are needed), 0 when
        the start of the buffer cannot tell yet, or None for a function code whose request length
        this slave does not know (only an inter-frame silence ends such a frame).
    """
    if len(buffer) < 2:
        return 0
    function = buffer[1]
    if function in _FIXED_LENGTH:
        return _FIXED_LENGTH[function]
    if function == WRITE_MULTIPLE:
        return _FC16_HEADER + buffer[6] + 2 if len(buffer) >= _FC16_HEADER else 0
    return None


class FrameSplitter:
    """Cuts a byte stream arriving in arbitrary chunks into CRC-checked request frames.

    Feed it what the line delivers; it returns each complete frame once. A candidate frame whose
    CRC does not match loses its first byte and the search goes on from the next one, so the
    splitter finds the next good frame after garbage. Frames of unknown function codes have no
    length to go by: they end at an inter-frame silence, which the caller reports with
    :meth:`flush` (3.5 character times on a real line).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> bool:
        """Whether bytes wait for more input or for a silence."""
        return bool(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; returns the frames it completes, in order."""
        self._buffer += data
        return self._split(silence=False)

    def flush(self) -> list[bytes]:
        """The line went quiet: end the frames in progress; what is left is not a frame and goes."""
        frames = self._split(silence=True)
        self._buffer.clear()
        return frames

    def clear(self) -> None:
        """Drop every buffered byte."""
        self._buffer.clear()

    def _split(self, *, silence: bool) -> list[bytes]:
        frames: list[bytes] = []
        while self._buffer:
            length = self._candidate_length(silence)
            if length == 0:
                break
            candidate = bytes(self._buffer[:length])
            if length <= min(len(self._buffer), MAX_FRAME) and crc_ok(candidate):
                frames.append(candidate)
                del self._buffer[:length]
            else:
                del self._buffer[0]  # not a frame start: resynchronise on the next byte
        return frames

    def _candidate_length(self, silence: bool) -> int:
        """Length of the frame that may start the buffer; 0 to wait for more bytes or a silence.

        A length past the buffer's end (only when ``silence``: a frame cut short) or past
        :data:`MAX_FRAME` means no frame starts here.
        """
        size = len(self._buffer)
        length = expected_length(bytes(self._buffer[:_FC16_HEADER]))
        if length is None:  # unknown function: the frame ends at the silence
            if size > MAX_FRAME:
                return MAX_FRAME + 1  # longer than any frame: cannot start one
            return size if silence else 0
        if length == 0:
            return size + 1 if silence else 0
        if length > size and not silence:
            return 0
        return length


def exception_pdu(function: int, code: int) -> bytes:
    """The PDU of an exception reply: function code with bit 7 set, then the exception code."""
    return bytes([(function | 0x80) & 0xFF, code & 0xFF])


def respond(frame: bytes, units: Mapping[int, RegisterUnit]) -> bytes | None:
    """The reply ADU to one request ADU, or None when nobody answers.

    Nobody answers a frame with a bad CRC, a broadcast (unit 0: the kiosk's controllers ignore
    it) or a unit that is not on the line, exactly as on a real bus.
    """
    if not crc_ok(frame) or frame[0] == 0:
        return None
    unit = units.get(frame[0])
    if unit is None:
        return None
    function = frame[1]
    try:
        pdu = handle(unit, function, frame[2:-2])
    except ModbusError as exc:
        pdu = exception_pdu(function, exc.code)
    except Exception:
        log.exception("modbus unit %d failed on function %d", frame[0], function)
        pdu = exception_pdu(function, SLAVE_DEVICE_FAILURE)
    return with_crc(bytes([frame[0]]) + pdu)


def handle(unit: RegisterUnit, function: int, data: bytes) -> bytes:
    """Serve one request PDU (``function`` and its ``data``) on ``unit``; returns the reply PDU.

    :raises ModbusError: the request is refused; the caller sends the exception reply.
    """
    if function in (READ_HOLDING, READ_INPUT):
        return _read(unit, function, data)
    if function == WRITE_SINGLE:
        address, value = _unpack_pair(data)
        unit.write_holding(address, [value])
        return bytes([function]) + data
    if function == WRITE_MULTIPLE:
        return _write_multiple(unit, data)
    raise ModbusError(ILLEGAL_FUNCTION, f"function {function} is not implemented")


def _unpack_pair(data: bytes) -> tuple[int, int]:
    if len(data) != 4:
        raise ModbusError(ILLEGAL_DATA_VALUE, "request data must be 4 bytes")
    first, second = struct.unpack(">HH", data)
    return int(first), int(second)


def _check_range(address: int, quantity: int, limit: int) -> None:
    if not 1 <= quantity <= limit:
        raise ModbusError(ILLEGAL_DATA_VALUE, f"quantity {quantity} outside 1..{limit}")
    if address + quantity > ADDRESS_SPACE:
        raise ModbusError(ILLEGAL_DATA_ADDRESS, f"registers {address}+{quantity} leave the address space")


def _read(unit: RegisterUnit, function: int, data: bytes) -> bytes:
    address, quantity = _unpack_pair(data)
    _check_range(address, quantity, MAX_READ)
    read = unit.read_holding if function == READ_HOLDING else unit.read_input
    values = read(address, quantity)
    if len(values) != quantity or any(not 0 <= value <= 0xFFFF for value in values):
        raise ValueError(f"unit read {values!r} for {quantity} registers")
    return bytes([function, 2 * quantity]) + struct.pack(f">{quantity}H", *values)


def _write_multiple(unit: RegisterUnit, data: bytes) -> bytes:
    if len(data) < 5:
        raise ModbusError(ILLEGAL_DATA_VALUE, "write multiple request too short")
    address, quantity = _unpack_pair(data[:4])
    byte_count, payload = data[4], data[5:]
    if not 1 <= quantity <= MAX_WRITE or byte_count != 2 * quantity or len(payload) != byte_count:
        raise ModbusError(ILLEGAL_DATA_VALUE, f"quantity {quantity} with byte count {byte_count}")
    _check_range(address, quantity, MAX_WRITE)
    unit.write_holding(address, list(struct.unpack(f">{quantity}H", payload)))
    return bytes([WRITE_MULTIPLE]) + data[:4]
