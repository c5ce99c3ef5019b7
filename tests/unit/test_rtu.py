"""Modbus RTU slave side: CRC, frame splitting, request parsing and replies, byte-exact."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulators import rtu
from simulators.registers import (
    ILLEGAL_DATA_ADDRESS,
    ILLEGAL_DATA_VALUE,
    ILLEGAL_FUNCTION,
    SLAVE_DEVICE_BUSY,
    ModbusError,
)


class FakeUnit:
    """Input registers 0..9 read 0x100 + address; holding registers 100..103 store what is written."""

    def __init__(self, unit_id: int = 1) -> None:
        self.unit_id = unit_id
        self.holding = {100 + i: 0 for i in range(4)}
        self.busy = False
        self.broken = False

    def read_input(self, address: int, count: int) -> list[int]:
        if self.broken:
            raise RuntimeError("firmware bug")
        if address + count > 10:
            raise ModbusError(ILLEGAL_DATA_ADDRESS)
        return [0x100 + a for a in range(address, address + count)]

    def read_holding(self, address: int, count: int) -> list[int]:
        if address < 100 or address + count > 104:
            raise ModbusError(ILLEGAL_DATA_ADDRESS)
        return [self.holding[a] for a in range(address, address + count)]

    def write_holding(self, address: int, values: list[int]) -> None:
        if address < 100 or address + len(values) > 104:
            raise ModbusError(ILLEGAL_DATA_ADDRESS)
        if self.busy:
            raise ModbusError(SLAVE_DEVICE_BUSY)
        for offset, value in enumerate(values):
            self.holding[address + offset] = value


def adu(hex_body: str) -> bytes:
    return rtu.with_crc(bytes.fromhex(hex_body))


@pytest.fixture
def unit() -> FakeUnit:
    return FakeUnit()


# --- CRC ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "crc"),
    [
        ("01 03 00 00 00 0A", "C5 CD"),  # read 10 holding registers from 0
        ("11 03 00 6B 00 03", "76 87"),  # the Modbus over serial line spec's example
        ("01 04 00 00 00 01", "31 CA"),
        ("01 06 00 01 00 03", "98 0B"),
    ],
)
def test_crc_known_vectors(body: str, crc: str) -> None:
    assert rtu.with_crc(bytes.fromhex(body))[-2:] == bytes.fromhex(crc)


def test_crc_check_value_and_empty() -> None:
    assert rtu.crc16(b"123456789") == 0x4B37  # CRC-16/MODBUS catalogue check value
    assert rtu.crc16(b"") == 0xFFFF
    assert not rtu.crc_ok(b"\x01\x03\x00")
    assert rtu.crc_ok(adu("01 03 00 00 00 0A"))


# --- splitting -----------------------------------------------------------------------------------


def test_frame_split_in_single_bytes() -> None:
    splitter = rtu.FrameSplitter()
    frame = adu("01 10 00 64 00 02 04 00 02 00 03")
    seen = [f for byte in frame for f in splitter.feed(bytes([byte]))]
    assert seen == [frame]
    assert not splitter.pending


def test_two_frames_in_one_chunk_and_a_half() -> None:
    splitter = rtu.FrameSplitter()
    first, second = adu("01 03 00 64 00 04"), adu("02 06 00 64 00 01")
    assert splitter.feed(first + second[:3]) == [first]
    assert splitter.pending
    assert splitter.feed(second[3:]) == [second]


def test_garbage_before_a_frame_is_dropped_byte_by_byte() -> None:
    splitter = rtu.FrameSplitter()
    frame = adu("03 04 00 00 00 04")
    # Every shifted start reads as an FC03 request whose CRC fails, so the splitter slides on
    # without waiting for a silence.
    assert splitter.feed(b"\x55\x03" + frame) == [frame]


def test_garbage_with_unknown_function_waits_for_the_silence() -> None:
    splitter = rtu.FrameSplitter()
    frame = adu("01 03 00 64 00 04")
    assert splitter.feed(b"\x07" + frame) == []  # 07 01 ... could be an FC01 frame of any length
    assert splitter.flush() == [frame]
    assert not splitter.pending


def test_silence_ends_an_unknown_function_frame() -> None:
    splitter = rtu.FrameSplitter()
    frame = adu("01 2B 0E 01 00")
    assert splitter.feed(frame) == []
    assert splitter.flush() == [frame]


def test_silence_drops_a_frame_cut_short() -> None:
    splitter = rtu.FrameSplitter()
    frame = adu("01 03 00 64 00 04")
    assert splitter.feed(frame[:5]) == []
    assert splitter.flush() == []
    assert not splitter.pending
    assert splitter.feed(frame) == [frame]


def test_bad_crc_frame_is_dropped() -> None:
    splitter = rtu.FrameSplitter()
    frame = bytearray(adu("01 03 00 64 00 04"))
    frame[-1] ^= 0x01
    assert splitter.feed(bytes(frame)) == []
    assert splitter.flush() == []


def test_endless_garbage_does_not_grow_the_buffer() -> None:
    splitter = rtu.FrameSplitter()
    for _ in range(20):
        splitter.feed(bytes([0x07, 0x01]) * 100)
    assert len(splitter._buffer) <= rtu.MAX_FRAME + 1


# --- requests and replies --------------------------------------------------------------------------


def test_read_input_registers(unit: FakeUnit) -> None:
    reply = rtu.respond(adu("01 04 00 00 00 04"), {1: unit})
    assert reply == adu("01 04 08 01 00 01 01 01 02 01 03")


def test_write_single_echoes_the_request(unit: FakeUnit) -> None:
    request = adu("01 06 00 64 00 01")
    assert rtu.respond(request, {1: unit}) == request
    assert unit.holding[100] == 1


def test_write_multiple_then_read_holding(unit: FakeUnit) -> None:
    assert rtu.respond(adu("01 10 00 64 00 02 04 00 02 00 03"), {1: unit}) == adu("01 10 00 64 00 02")
    assert rtu.respond(adu("01 03 00 64 00 04"), {1: unit}) == adu("01 03 08 00 02 00 03 00 00 00 00")


@pytest.mark.parametrize("unit_id", [0, 9])
def test_broadcast_and_absent_units_get_no_reply(unit: FakeUnit, unit_id: int) -> None:
    assert rtu.respond(adu(f"{unit_id:02x} 03 00 64 00 01"), {1: unit}) is None


def test_bad_crc_gets_no_reply(unit: FakeUnit) -> None:
    assert rtu.respond(adu("01 03 00 64 00 01")[:-1] + b"\x00", {1: unit}) is None


@pytest.mark.parametrize(
    ("request_hex", "reply_hex"),
    [
        ("01 01 00 00 00 08", f"01 81 {ILLEGAL_FUNCTION:02x}"),  # read coils: not implemented
        ("01 2B 0E 01 00", f"01 AB {ILLEGAL_FUNCTION:02x}"),
        ("01 04 00 08 00 04", f"01 84 {ILLEGAL_DATA_ADDRESS:02x}"),  # leaves the map
        ("01 03 FF FF 00 02", f"01 83 {ILLEGAL_DATA_ADDRESS:02x}"),  # leaves the address space
        ("01 03 00 64 00 00", f"01 83 {ILLEGAL_DATA_VALUE:02x}"),  # quantity 0
        ("01 04 00 00 00 7E", f"01 84 {ILLEGAL_DATA_VALUE:02x}"),  # 126 > 125
        ("01 10 00 64 00 02 02 00 01", f"01 90 {ILLEGAL_DATA_VALUE:02x}"),  # byte count != 2 * quantity
        ("01 10 00 64 00 00 00", f"01 90 {ILLEGAL_DATA_VALUE:02x}"),  # quantity 0
        ("01 06 00 00 00 01", f"01 86 {ILLEGAL_DATA_ADDRESS:02x}"),
    ],
)
def test_exception_replies(unit: FakeUnit, request_hex: str, reply_hex: str) -> None:
    assert rtu.respond(adu(request_hex), {1: unit}) == adu(reply_hex)


def test_write_multiple_of_124_registers_is_illegal_data_value(unit: FakeUnit) -> None:
    request = adu("01 10 00 64 00 7C F8" + " 00 00" * 124)
    assert rtu.respond(request, {1: unit}) == adu(f"01 90 {ILLEGAL_DATA_VALUE:02x}")


def test_busy_unit(unit: FakeUnit) -> None:
    unit.busy = True
    assert rtu.respond(adu("01 06 00 64 00 01"), {1: unit}) == adu(f"01 86 {SLAVE_DEVICE_BUSY:02x}")


def test_a_failing_unit_answers_slave_device_failure(unit: FakeUnit) -> None:
    unit.broken = True
    assert rtu.respond(adu("01 04 00 00 00 01"), {1: unit}) == adu("01 84 04")


def test_unknown_function_frame_through_the_splitter_gets_exception_01(unit: FakeUnit) -> None:
    splitter = rtu.FrameSplitter()
    assert splitter.feed(adu("01 05 00 00 FF 00")) == []
    [frame] = splitter.flush()
    assert rtu.respond(frame, {1: unit}) == adu("01 85 01")


# --- fuzzing -------------------------------------------------------------------------------------


@given(st.lists(st.binary(max_size=300), max_size=8), st.booleans())
def test_random_bytes_never_raise(chunks: list[bytes], silence: bool) -> None:
    splitter = rtu.FrameSplitter()
    units = {1: FakeUnit(1), 2: FakeUnit(2)}
    frames = [frame for chunk in chunks for frame in splitter.feed(chunk)]
    if silence:
        frames += splitter.flush()
    for frame in frames:
        assert rtu.crc_ok(frame)
        reply = rtu.respond(frame, units)
        assert reply is None or rtu.crc_ok(reply)


@given(st.binary(max_size=300))
def test_respond_is_total(frame: bytes) -> None:
    reply = rtu.respond(frame, {frame[0] if frame else 1: FakeUnit()})
    assert reply is None or (rtu.crc_ok(reply) and len(reply) <= rtu.MAX_FRAME)


@given(st.binary(max_size=40), st.binary(max_size=40))
def test_a_good_frame_after_garbage_and_silence_is_found(garbage: bytes, tail: bytes) -> None:
    splitter = rtu.FrameSplitter()
    frame = adu("01 03 00 64 00 04")
    splitter.feed(garbage)
    splitter.flush()
    assert splitter.feed(frame) == [frame]
    splitter.feed(tail)
