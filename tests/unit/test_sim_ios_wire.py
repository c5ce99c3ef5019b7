"""Framing of the simulated iPhone's two protocols: usbmuxd's header + XML plist, lockdownd's length + plist."""

from __future__ import annotations

import plistlib
import struct

from hypothesis import given
from hypothesis import strategies as st

from simulators.ios.plist_wire import (
    MAX_PLIST,
    LockdownParser,
    MuxMessage,
    MuxParser,
    WireError,
    decode_plist,
    lockdown_frame,
    mux_frame,
    mux_header,
)


def test_mux_frame_is_what_usbmuxd_clients_expect() -> None:
    frame = mux_frame(7, {"MessageType": "Result", "Number": 0})
    length, version, message, tag = struct.unpack("<4I", frame[:16])
    assert (length, version, message, tag) == (len(frame), 1, 8, 7)
    assert frame[16:].startswith(b"<?xml")
    assert plistlib.loads(frame[16:]) == {"MessageType": "Result", "Number": 0}


def test_mux_parser_reassembles_messages_fed_byte_by_byte() -> None:
    stream = mux_frame(1, {"MessageType": "ListDevices"}) + mux_frame(2, {"MessageType": "ReadBUID"})
    parser, out = MuxParser(), []
    for index in range(len(stream)):
        out += parser.feed(stream[index : index + 1])
    assert out == [MuxMessage(1, {"MessageType": "ListDevices"}), MuxMessage(2, {"MessageType": "ReadBUID"})]


def test_mux_parser_refuses_a_huge_length_before_buffering_it() -> None:
    parser = MuxParser()
    out = parser.feed(struct.pack("<4I", 0xFFFFFFF0, 1, 8, 1))
    assert len(out) == 1
    assert isinstance(out[0], WireError)
    assert "length" in out[0].reason
    assert parser.broken
    assert parser.feed(mux_frame(1, {"MessageType": "ReadBUID"})) == []  # framing is lost for good


def test_mux_binary_protocol_is_refused() -> None:
    header = mux_header(struct.pack("<4I", 16, 0, 3, 1))
    assert isinstance(header, WireError)
    assert "only plist" in header.reason


def test_lockdown_frame_round_trip_and_binary_plists_from_clients() -> None:
    binary = plistlib.dumps({"Request": "QueryType"}, fmt=plistlib.FMT_BINARY)
    stream = lockdown_frame({"Request": "GetValue", "Key": "ProductType"}) + struct.pack(">I", len(binary)) + binary
    assert LockdownParser().feed(stream) == [{"Request": "GetValue", "Key": "ProductType"}, {"Request": "QueryType"}]


def test_lockdown_parser_refuses_zero_and_oversized_lengths() -> None:
    for length in (0, MAX_PLIST + 1, 0x7FFFFFF0):
        out = LockdownParser().feed(struct.pack(">I", length))
        assert len(out) == 1, length
        assert isinstance(out[0], WireError), length


def test_plist_that_is_not_a_dictionary_is_an_error() -> None:
    assert isinstance(decode_plist(plistlib.dumps(["Request"])), WireError)
    assert isinstance(decode_plist(b"<?xml version='1.0'?><plist><dict><key>Request</key><strin"), WireError)
    assert isinstance(decode_plist(b"bplist00\xff\xff"), WireError)


@given(st.binary(max_size=2048))
def test_decode_plist_is_total(data: bytes) -> None:
    result = decode_plist(data)
    assert isinstance(result, dict | WireError)


@given(st.lists(st.binary(max_size=64), max_size=20))
def test_mux_parser_is_total_on_arbitrary_chunks(chunks: list[bytes]) -> None:
    parser, errors = MuxParser(), 0
    for chunk in chunks:
        for item in parser.feed(chunk):
            assert isinstance(item, MuxMessage | WireError)
            errors += isinstance(item, WireError)
    assert errors <= 1
    assert parser.broken == (errors == 1)


@given(st.lists(st.binary(max_size=64), max_size=20))
def test_lockdown_parser_is_total_on_arbitrary_chunks(chunks: list[bytes]) -> None:
    parser, errors = LockdownParser(), 0
    for chunk in chunks:
        for item in parser.feed(chunk):
            assert isinstance(item, dict | WireError)
            errors += isinstance(item, WireError)
    assert errors <= 1


@given(st.binary(min_size=1, max_size=512))
def test_valid_header_with_garbage_plist_is_an_error_not_an_exception(garbage: bytes) -> None:
    frame = struct.pack("<4I", 16 + len(garbage), 1, 8, 9) + garbage
    out = MuxParser().feed(frame)
    assert len(out) == 1
    assert isinstance(out[0], WireError | MuxMessage)
