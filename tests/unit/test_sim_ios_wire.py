"""Framing of the simulated iPhone's two protocols: usbmuxd's header + XML plist, lockdownd's length + plist."""

from __future__ import annotations

import plistlib
import struct

from hypothesis import given
from hypothesis import strategies as st

from simulators.ios.plist_wire import (
    MAX_PLIST,
    WireError,
    decode_plist,
    lockdown_frame,
    lockdown_header,
    mux_frame,
    mux_header,
)


def test_mux_frame_is_what_usbmuxd_clients_expect() -> None:
    frame = mux_frame(7, {"MessageType": "Result", "Number": 0})
    length, version, message, tag = struct.unpack("<4I", frame[:16])
    assert (length, version, message, tag) == (len(frame), 1, 8, 7)
    assert frame[16:].startswith(b"<?xml")
    assert plistlib.loads(frame[16:]) == {"MessageType": "Result", "Number": 0}


def test_mux_header_refuses_a_huge_length_before_anything_is_buffered() -> None:
    header = mux_header(struct.pack("<4I", 0xFFFFFFF0, 1, 8, 1))
    assert isinstance(header, WireError)
    assert "length" in header.reason
    assert mux_header(mux_frame(5, {"MessageType": "ReadBUID"})[:16]) == (
        len(mux_frame(5, {"MessageType": "ReadBUID"})) - 16,
        5,
    )


def test_mux_binary_protocol_is_refused() -> None:
    header = mux_header(struct.pack("<4I", 16, 0, 3, 1))
    assert isinstance(header, WireError)
    assert "only plist" in header.reason


def test_lockdown_frame_round_trip_and_binary_plists_from_clients() -> None:
    frame = lockdown_frame({"Request": "GetValue", "Key": "ProductType"})
    assert lockdown_header(frame[:4]) == len(frame) - 4
    assert decode_plist(frame[4:]) == {"Request": "GetValue", "Key": "ProductType"}
    assert decode_plist(plistlib.dumps({"Request": "QueryType"}, fmt=plistlib.FMT_BINARY)) == {"Request": "QueryType"}


def test_lockdown_header_refuses_zero_and_oversized_lengths() -> None:
    for length in (0, MAX_PLIST + 1, 0x7FFFFFF0):
        assert isinstance(lockdown_header(struct.pack(">I", length)), WireError), length


def test_plist_that_is_not_a_dictionary_is_an_error() -> None:
    assert isinstance(decode_plist(plistlib.dumps(["Request"])), WireError)
    assert isinstance(decode_plist(b"<?xml version='1.0'?><plist><dict><key>Request</key><strin"), WireError)
    assert isinstance(decode_plist(b"bplist00\xff\xff"), WireError)


@given(st.binary(max_size=2048))
def test_decode_plist_is_total(data: bytes) -> None:
    result = decode_plist(data)
    assert isinstance(result, dict | WireError)


@given(st.binary(max_size=32))
def test_the_headers_are_total(data: bytes) -> None:
    mux = mux_header(data)
    assert isinstance(mux, WireError) or (len(data) == 16 and 0 <= mux[0] <= MAX_PLIST)
    lockdown = lockdown_header(data)
    assert isinstance(lockdown, WireError) or (len(data) == 4 and 1 <= lockdown <= MAX_PLIST)
