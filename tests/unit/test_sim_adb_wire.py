"""The simulated phone's ADB codec and parsers: byte-exact packets, total parsing of any input."""

from __future__ import annotations

import base64
import struct

import pytest
from adb_shell.auth.keygen import keygen
from adb_shell.auth.sign_pythonrsa import PythonRSASigner
from hypothesis import given
from hypothesis import strategies as st

from simulators.adb import wire
from simulators.adb.auth import HostKey, android_key_message, new_token, parse_host_key, verify
from simulators.adb.faults import PhoneFaults
from simulators.adb.services import ShellRequest, output_chunks, parse_service
from simulators.adb.trust import trust_answer, trust_delay
from simulators.adb.watch import PhoneChange, PhoneInfo, PhoneWatch
from simulators.adb.wire import Packet, PacketParser, WireError

MAX = 4096
FEATURES = ("shell_v2", "cmd")


def header(command: int, arg0: int, arg1: int, length: int, check: int, magic: int) -> bytes:
    return struct.pack("<6I", command, arg0, arg1, length, check, magic)


def test_a_cnxn_packet_is_byte_exact() -> None:
    packet = Packet(wire.CNXN, 0x01000000, 4096, b"host::\0")
    expected = b"CNXN" + struct.pack("<5I", 0x01000000, 4096, 7, sum(b"host::\0"), 0xB1A7B1BC) + b"host::\0"
    assert packet.encode() == expected
    assert packet.encode(with_checksum=False)[16:20] == b"\0\0\0\0"


def test_packets_split_anywhere_parse_the_same() -> None:
    packets = [Packet(wire.OPEN, 5, 0, b"shell:ls\0"), Packet(wire.OKAY, 1, 5), Packet(wire.WRTE, 1, 5, b"x" * 300)]
    stream = b"".join(packet.encode() for packet in packets)
    parser = PacketParser(MAX)
    parsed = [item for byte in stream for item in parser.feed(bytes([byte]))]
    assert parsed == packets
    assert parser.pending == 0


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (header(0x12345678, 0, 0, 0, 0, 0x12345678 ^ 0xFFFFFFFF), "unknown command"),
        (header(wire.OKAY, 0, 0, 0, 0, wire.OKAY), "bad magic"),
        (header(wire.WRTE, 1, 1, MAX + 1, 0, wire.WRTE ^ 0xFFFFFFFF), "above the maximum"),
        (header(wire.WRTE, 1, 1, 2, 7, wire.WRTE ^ 0xFFFFFFFF) + b"ab", "checksum"),
    ],
)
def test_an_invalid_stream_gives_an_error_value_and_stops(data: bytes, reason: str) -> None:
    parser = PacketParser(MAX)
    items = parser.feed(data)
    assert len(items) == 1
    assert isinstance(items[0], WireError)
    assert reason in items[0].reason
    assert parser.feed(Packet(wire.OKAY, 1, 1).encode()) == []  # no resynchronising on a broken stream


def test_an_oversized_claim_is_refused_before_its_payload_arrives() -> None:
    parser = PacketParser(MAX)
    assert isinstance(parser.feed(header(wire.WRTE, 1, 1, 2**31, 0, wire.WRTE ^ 0xFFFFFFFF))[0], WireError)


def test_checksums_are_not_checked_when_the_version_skips_them() -> None:
    parser = PacketParser(MAX, check_checksums=False)
    data = Packet(wire.WRTE, 1, 2, b"hello").encode(with_checksum=False)
    assert parser.feed(data) == [Packet(wire.WRTE, 1, 2, b"hello")]


@given(st.lists(st.binary(max_size=64), max_size=20))
def test_any_bytes_in_any_chunks_never_raise(chunks: list[bytes]) -> None:
    parser = PacketParser(256)
    items = [item for chunk in chunks for item in parser.feed(chunk)]
    errors = [index for index, item in enumerate(items) if isinstance(item, WireError)]
    assert errors in ([], [len(items) - 1])
    assert parser.pending <= wire.HEADER_SIZE + 256


@given(
    st.lists(
        st.builds(
            Packet,
            st.sampled_from(sorted(wire.COMMANDS)),
            st.integers(0, 2**32 - 1),
            st.integers(0, 2**32 - 1),
            st.binary(max_size=300),
        ),
        max_size=8,
    ),
    st.integers(1, 50),
)
def test_valid_packets_survive_any_chunking(packets: list[Packet], size: int) -> None:
    stream = b"".join(packet.encode() for packet in packets)
    parser = PacketParser(300)
    parsed = [item for start in range(0, len(stream), size) for item in parser.feed(stream[start : start + size])]
    assert parsed == packets


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> PythonRSASigner:
    path = tmp_path_factory.mktemp("adbkey") / "adbkey"
    keygen(str(path))
    return PythonRSASigner.FromRSAKeyPath(str(path))


def test_an_adb_shell_key_parses_and_its_signature_verifies(signer: PythonRSASigner) -> None:
    host = parse_host_key(signer.GetPublicKey().encode() + b"\0")
    assert isinstance(host, HostKey)
    token = new_token()
    assert verify(host.key, token, signer.Sign(token))
    assert not verify(host.key, new_token(), signer.Sign(token))
    assert not verify(host.key, token, b"\0" * 256)


def test_the_key_message_round_trips(signer: PythonRSASigner) -> None:
    host = parse_host_key(signer.GetPublicKey().encode())
    assert isinstance(host, HostKey)
    again = parse_host_key(android_key_message(host.key, "kiosk@hwd"))
    assert isinstance(again, HostKey)
    assert again.key.public_numbers() == host.key.public_numbers()
    assert again.comment == "kiosk@hwd"


def test_a_garbled_key_is_a_reason_not_a_key(signer: PythonRSASigner) -> None:
    raw = bytearray(base64.b64decode(signer.GetPublicKey().split()[0]))
    raw[4] ^= 0xFF  # n0inv no longer matches the modulus
    assert "n0inv" in str(parse_host_key(base64.b64encode(bytes(raw))))
    assert "base64" in str(parse_host_key(b"not base64!"))
    assert "truncated" in str(parse_host_key(b""))


@given(st.binary(max_size=1200))
def test_any_key_message_gives_a_key_or_a_reason(data: bytes) -> None:
    assert isinstance(parse_host_key(data), HostKey | str)
    assert isinstance(parse_host_key(base64.b64encode(data)), HostKey | str)


@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        (b"shell:getprop ro.serialno\0", ShellRequest("getprop ro.serialno", v2=False)),
        (b"shell,v2,TERM=xterm-256color,raw:exit 3\0", ShellRequest("exit 3", v2=True)),
        (b"shell,v2,raw:id", ShellRequest("id", v2=True)),
        (b"exec:cat /proc/cpuinfo\0", ShellRequest("cat /proc/cpuinfo", v2=False, stderr=False)),
    ],
)
def test_shell_services_are_understood(destination: bytes, expected: ShellRequest) -> None:
    assert parse_service(destination, FEATURES) == expected


@pytest.mark.parametrize(
    "destination", [b"sync:\0", b"shell:\0", b"reboot:bootloader", b"\xff\xfe", b"tcpip:5555", b"exec,v2:x"]
)
def test_other_services_are_refused_with_a_reason(destination: bytes) -> None:
    assert isinstance(parse_service(destination, FEATURES), str)


def test_shell_v2_needs_the_feature() -> None:
    assert "v2" in str(parse_service(b"shell,v2,raw:id", ("cmd",)))


class Result:
    def __init__(self, stdout: bytes, stderr: bytes, exit_code: int) -> None:
        self.stdout, self.stderr, self.exit_code = stdout, stderr, exit_code


def test_v2_output_is_framed_and_fits_the_payload() -> None:
    chunks = list(output_chunks(ShellRequest("x", v2=True), Result(b"o" * 10, b"e" * 3, 130), 8))
    assert all(len(chunk) <= 8 for chunk in chunks)
    assert chunks == [b"\x01\x03\0\0\0ooo"] * 3 + [b"\x01\x01\0\0\0o", b"\x02\x03\0\0\0eee", b"\x03\x01\0\0\0\x82"]


def test_v1_output_has_no_exit_code_and_exec_has_no_stderr() -> None:
    result = Result(b"out", b"err", 1)
    assert list(output_chunks(ShellRequest("x", v2=False), result, 4)) == [b"oute", b"rr"]
    assert list(output_chunks(ShellRequest("x", v2=False, stderr=False), result, 4)) == [b"out"]


def test_faults_are_validated_and_one_shots_happen_once() -> None:
    faults = PhoneFaults()
    with pytest.raises(ValueError, match="unknown fault"):
        faults.apply("melt", {})
    with pytest.raises(ValueError, match="seconds"):
        faults.apply("slow", {"seconds": "-1"})
    with pytest.raises(ValueError, match="does not take"):
        faults.apply("drop", {"seconds": "1"})
    faults.apply("drop", {})
    faults.apply("stall", {})
    faults.apply("slow", {"seconds": "2.5"})
    assert faults.active() == ["stall", "slow 2.5s", "drop"]
    assert faults.take("drop")
    assert not faults.take("drop")
    faults.apply("clear", {})
    assert faults.active() == []
    assert not faults.stalled


def test_trust_answers_and_delays_are_validated() -> None:
    assert trust_answer("") == "accept"
    assert trust_answer("ignore") == "ignore"
    with pytest.raises(ValueError, match="accept, refuse, ignore"):
        trust_answer("maybe")
    with pytest.raises(ValueError, match="delay"):
        trust_delay(float("nan"))


async def test_a_watcher_that_falls_behind_is_ended_overflowed() -> None:
    watch = PhoneWatch(capacity=2)
    change = PhoneChange(True, PhoneInfo("1-1.1", "fake", "S1", "tcp:127.0.0.1:1", "idle"))
    for _ in range(3):
        watch.push(change)
    assert [await watch.next() for _ in range(3)] == [change, change, None]
    assert watch.overflowed
    assert await watch.next() is None


@given(st.binary(max_size=200), st.lists(st.text(max_size=10), max_size=3))
def test_any_open_payload_gives_a_request_or_a_reason(destination: bytes, features: list[str]) -> None:
    assert isinstance(parse_service(destination, features), ShellRequest | str)
