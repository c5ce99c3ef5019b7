"""Simulated phones in the simulator process: plug, watch, unplug, trust answers and faults, seen by a raw ADB client.

The raw client here builds and reads packets with ``struct`` alone, so what it sees does not
depend on the simulator's own codec.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from adb_shell.auth.keygen import keygen
from adb_shell.auth.sign_pythonrsa import PythonRSASigner

from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc
from tests.integration.test_simulator_process import RPC_TIMEOUT_S, simulator_fixtures

CNXN, AUTH, OPEN, OKAY, WRTE, CLSE = (
    int.from_bytes(name, "little") for name in (b"CNXN", b"AUTH", b"OPEN", b"OKAY", b"WRTE", b"CLSE")
)
V1, V2 = 0x01000000, 0x01000001
HOST_MAX = 1024 * 1024
QUIET_S = 0.5  # how long a stalled or ignoring phone is watched for an answer that must not come
PROFILE = "pixel-7"

kiosk, control = simulator_fixtures("phones")
Stub = simulator_pb2_grpc.SimulatorStub


def make_signer(directory: Path) -> PythonRSASigner:
    """A fresh ADB host key, as adb keeps in ~/.android/adbkey."""
    keygen(str(directory / "adbkey"))
    return PythonRSASigner.FromRSAKeyPath(str(directory / "adbkey"))


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> PythonRSASigner:
    return make_signer(tmp_path_factory.mktemp("hostkey"))


class Raw:
    """A raw ADB host on one TCP connection."""

    def __init__(self, endpoint: str) -> None:
        _, host, port = endpoint.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=RPC_TIMEOUT_S)
        self.version = V1

    def close(self) -> None:
        self.sock.close()

    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        check = sum(data) & 0xFFFFFFFF if self.version < V2 else 0
        self.sock.sendall(struct.pack("<6I", command, arg0, arg1, len(data), check, command ^ 0xFFFFFFFF) + data)

    def exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                return data
            data += chunk
        return data

    def header(self) -> tuple[int, ...]:
        """The next header's six fields; an empty tuple at end of stream."""
        raw = self.exactly(24)
        return struct.unpack("<6I", raw) if len(raw) == 24 else ()

    def packet(self) -> tuple[int, int, int, bytes]:
        fields = self.header()
        assert fields, "the phone closed the connection"
        command, arg0, arg1, length, check, magic = fields
        assert magic == command ^ 0xFFFFFFFF
        data = self.exactly(length)
        if self.version < V2:
            assert check == sum(data) & 0xFFFFFFFF
        return command, arg0, arg1, data

    def hello(self, version: int = V1) -> bytes:
        """CNXN; returns the AUTH token."""
        self.send(CNXN, version, HOST_MAX, b"host::features=shell_v2\0")
        self.version = min(version, V2)
        command, kind, _, token = self.packet()
        assert (command, kind, len(token)) == (AUTH, 1, 20)
        return token

    def offer_key(self, signer: PythonRSASigner) -> None:
        """Sign the token (refused by a phone that does not know the key), then send the public key."""
        token = self.hello(self.version)
        self.send(AUTH, 2, 0, signer.Sign(token))
        command, kind, _, _ = self.packet()
        assert (command, kind) == (AUTH, 1)
        self.send(AUTH, 3, 0, signer.GetPublicKey().encode() + b"\0")

    def connect(self, signer: PythonRSASigner, version: int = V1) -> str:
        """Authenticate through the prompt (a phone that accepts); returns the banner."""
        self.version = version
        self.offer_key(signer)
        command, _, maxdata, banner = self.packet()
        assert command == CNXN
        assert maxdata == HOST_MAX
        return banner.decode()

    def shell(self, command: str, local_id: int = 7, v2: bool = False) -> bytes:
        """Run a command and return everything it wrote (shell v2: the frames); other streams' packets are skipped."""
        self.send(OPEN, local_id, 0, f"shell{',v2,raw' if v2 else ''}:{command}\0".encode())
        remote, output = 0, b""
        while True:
            kind, arg0, arg1, data = self.packet()
            if arg1 != local_id:
                continue
            if not remote:
                assert kind == OKAY
                remote = arg0
                continue
            assert arg0 == remote
            if kind == CLSE:
                return output
            assert kind == WRTE
            output += data
            self.send(OKAY, local_id, remote)


@pytest.fixture
def raws() -> Iterator[list[Raw]]:
    opened: list[Raw] = []
    yield opened
    for raw in opened:
        raw.close()


def plug(
    stub: Stub, port: str = "", trust: str = "", delay: float = 0.0, profile: str = PROFILE
) -> simulator_pb2.SimPhone:
    request = simulator_pb2.PlugPhoneRequest(profile=profile, port=port, trust=trust, trust_delay_s=delay)
    phone: simulator_pb2.SimPhone = stub.PlugPhone(request, timeout=RPC_TIMEOUT_S).phone
    return phone


def fault(stub: Stub, name: str, port: str, **params: str) -> str:
    request = simulator_pb2.FaultRequest(device="phones", fault=name, params={"port": port, **params})
    state: str = stub.Fault(request, timeout=RPC_TIMEOUT_S).device.state
    return state


def ports_state(stub: Stub) -> str:
    status = stub.GetStatus(simulator_pb2.GetStatusRequest(), timeout=RPC_TIMEOUT_S)
    state: str = next(device.state for device in status.devices if device.name == "phones")
    return state


def wait_for_state(stub: Stub, text: str) -> None:
    deadline = time.monotonic() + RPC_TIMEOUT_S
    while text not in ports_state(stub):
        assert time.monotonic() < deadline, f"phones never showed {text!r}: {ports_state(stub)}"
        time.sleep(0.05)


def online(
    stub: Stub, raws: list[Raw], signer: PythonRSASigner, **plug_args: Any
) -> tuple[simulator_pb2.SimPhone, Raw]:
    phone = plug(stub, **plug_args)
    raw = Raw(phone.endpoint)
    raws.append(raw)
    raw.connect(signer)
    return phone, raw


def test_profiles_are_listed_by_name(control: Stub) -> None:
    profiles = control.ListProfiles(simulator_pb2.ListProfilesRequest(), timeout=RPC_TIMEOUT_S).profiles
    names = [profile.name for profile in profiles]
    assert names == sorted(names)
    pixel = next(profile for profile in profiles if profile.name == PROFILE)
    assert (pixel.platform, pixel.manufacturer, pixel.model) == ("android", "Google", "Pixel 7")


def test_plug_watch_talk_unplug(kiosk: dict[str, Any], control: Stub, signer: PythonRSASigner, raws: list[Raw]) -> None:
    assert kiosk["devices"]["phones"]["kind"] == "phone-ports"
    first = plug(control)
    assert first.port == "1-1.1"
    watch = control.WatchPhones(simulator_pb2.WatchPhonesRequest(), timeout=RPC_TIMEOUT_S * 3)
    try:
        assert next(watch) == simulator_pb2.PhoneChange(attached=True, phone=first)
        second = plug(control, port="1-1.5")
        change = next(watch)
        assert (change.attached, change.phone.port, change.phone.endpoint) == (True, "1-1.5", second.endpoint)
        assert second.endpoint.startswith("tcp:127.0.0.1:")
        assert second.serial

        raw = Raw(second.endpoint)
        raws.append(raw)
        assert "ro.product.model=Pixel 7;" in raw.connect(signer)
        assert raw.shell("getprop ro.product.model") == b"Pixel 7\n"

        control.UnplugPhone(simulator_pb2.UnplugPhoneRequest(port="1-1.5"), timeout=RPC_TIMEOUT_S)
        change = next(watch)
        assert (change.attached, change.phone.port) == (False, "1-1.5")
        assert raw.header() == ()  # the connection died with the unplug
        with pytest.raises(ConnectionRefusedError):
            Raw(second.endpoint)
    finally:
        watch.cancel()


def test_plug_refusals(control: Stub) -> None:
    plug(control, port="1-1.2")
    cases = [
        ({"profile": "no-such-phone"}, grpc.StatusCode.NOT_FOUND),
        ({"port": "9-9.9"}, grpc.StatusCode.NOT_FOUND),
        ({"port": "1-1.2"}, grpc.StatusCode.FAILED_PRECONDITION),
        ({"trust": "maybe"}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"delay": -1.0}, grpc.StatusCode.INVALID_ARGUMENT),
    ]
    for args, code in cases:
        with pytest.raises(grpc.RpcError) as caught:
            plug(control, **args)
        assert caught.value.code() == code, args
    with pytest.raises(grpc.RpcError) as caught:
        control.UnplugPhone(simulator_pb2.UnplugPhoneRequest(port="1-1.3"), timeout=RPC_TIMEOUT_S)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_when_every_port_is_taken_plugging_fails(control: Stub) -> None:
    ports = {plug(control).port for _ in range(32)}
    assert len(ports) == 32
    with pytest.raises(grpc.RpcError) as caught:
        plug(control)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_a_refused_prompt_closes_the_connection(control: Stub, signer: PythonRSASigner, raws: list[Raw]) -> None:
    raw = Raw(plug(control, trust="refuse").endpoint)
    raws.append(raw)
    raw.offer_key(signer)
    assert raw.header() == ()


def test_an_ignored_prompt_is_never_answered(control: Stub, signer: PythonRSASigner, raws: list[Raw]) -> None:
    raw = Raw(plug(control, trust="ignore").endpoint)
    raws.append(raw)
    raw.offer_key(signer)
    wait_for_state(control, "awaiting trust")
    raw.sock.settimeout(QUIET_S)
    with pytest.raises(TimeoutError):
        raw.header()


def test_a_trusted_key_signs_in_without_a_prompt(control: Stub, signer: PythonRSASigner, raws: list[Raw]) -> None:
    phone, _ = online(control, raws, signer)
    again = Raw(phone.endpoint)
    raws.append(again)
    token = again.hello()
    again.send(AUTH, 2, 0, signer.Sign(token))
    assert again.packet()[0] == CNXN
    assert "connected" in ports_state(control)


def test_stall_stops_answers_until_clear(control: Stub, signer: PythonRSASigner, raws: list[Raw]) -> None:
    phone, raw = online(control, raws, signer)
    assert "fault: stall" in fault(control, "stall", phone.port)
    raw.send(OPEN, 1, 0, b"shell:getprop ro.product.model\0")
    raw.sock.settimeout(QUIET_S)
    with pytest.raises(TimeoutError):
        raw.header()
    raw.sock.settimeout(RPC_TIMEOUT_S)
    fault(control, "clear", phone.port)
    assert raw.packet()[0] == OKAY


def test_drop_cuts_the_connection_mid_command(control: Stub, signer: PythonRSASigner, raws: list[Raw]) -> None:
    phone, raw = online(control, raws, signer)
    fault(control, "drop", phone.port)
    raw.send(OPEN, 1, 0, b"shell,v2,raw:getprop ro.product.model\0")
    assert raw.packet()[0] == OKAY
    command, _, _, data = raw.packet()
    assert (command, data) == (WRTE, b"\x01\x08\0\0\0Pixel 7\n")
    assert raw.header() == ()  # no exit code, no CLSE: the cable came out


def test_garbage_replaces_the_next_packet(control: Stub, signer: PythonRSASigner, raws: list[Raw]) -> None:
    phone, raw = online(control, raws, signer)
    fault(control, "garbage", phone.port)
    raw.send(OPEN, 1, 0, b"shell:id\0")
    command, *_, magic = raw.header()
    assert magic != command ^ 0xFFFFFFFF


def test_bad_checksum_on_the_next_write(control: Stub, signer: PythonRSASigner, raws: list[Raw]) -> None:
    phone, raw = online(control, raws, signer)  # protocol 0x01000000: checksums required
    fault(control, "bad-checksum", phone.port)
    raw.send(OPEN, 1, 0, b"shell:getprop ro.product.model\0")
    assert raw.packet()[0] == OKAY
    command, _, _, length, check, _ = raw.header()
    data = raw.exactly(length)
    assert (command, data) == (WRTE, b"Pixel 7\n")
    assert check != sum(data)


def test_oversized_claims_more_than_negotiated(control: Stub, signer: PythonRSASigner, raws: list[Raw]) -> None:
    phone, raw = online(control, raws, signer)
    fault(control, "oversized", phone.port)
    raw.send(OPEN, 1, 0, b"shell:id\0")
    assert raw.header()[3] > HOST_MAX


def test_endless_output_never_closes(control: Stub, signer: PythonRSASigner, raws: list[Raw]) -> None:
    phone, raw = online(control, raws, signer)
    fault(control, "endless", phone.port)
    raw.send(OPEN, 1, 0, b"shell:logcat\0")
    _, remote, _, _ = raw.packet()
    for _ in range(50):
        command, _, _, data = raw.packet()
        assert command == WRTE
        assert data
        raw.send(OKAY, 1, remote)
    raw.send(CLSE, 1, remote)  # the host gives up on it
    assert raw.shell("getprop ro.product.model", local_id=2) == b"Pixel 7\n"  # only that command is endless


def test_slow_answers_still_arrive(control: Stub, signer: PythonRSASigner, raws: list[Raw]) -> None:
    phone, raw = online(control, raws, signer)
    assert "slow 0.2s" in fault(control, "slow", phone.port, seconds="0.2")
    assert raw.shell("getprop ro.product.model") == b"Pixel 7\n"


def test_prompt_never_answered_once(control: Stub, signer: PythonRSASigner, raws: list[Raw]) -> None:
    phone = plug(control)
    fault(control, "prompt-never-answered", phone.port)
    ignored = Raw(phone.endpoint)
    raws.append(ignored)
    ignored.offer_key(signer)
    wait_for_state(control, "awaiting trust")
    answered = Raw(phone.endpoint)
    raws.append(answered)
    assert answered.connect(signer).startswith("device::")


def test_fault_refusals(control: Stub) -> None:
    first, second = plug(control), plug(control)
    for params, fault_name in (
        ({}, "stall"),
        ({"port": first.port}, "melt"),
        ({"port": second.port, "x": "1"}, "drop"),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            control.Fault(
                simulator_pb2.FaultRequest(device="phones", fault=fault_name, params=params), timeout=RPC_TIMEOUT_S
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (fault_name, params)


def test_reset_unplugs_every_phone(control: Stub) -> None:
    plug(control)
    plug(control)
    assert ports_state(control).startswith("2 phones")
    control.Reset(simulator_pb2.ResetRequest(), timeout=RPC_TIMEOUT_S)
    assert ports_state(control) == "no phones"
    watch = control.WatchPhones(simulator_pb2.WatchPhonesRequest(), timeout=RPC_TIMEOUT_S)
    phone = plug(control)
    assert next(watch).phone.port == phone.port  # nothing from before the reset comes first
    watch.cancel()


def test_writes_wait_for_okay_and_fit_the_negotiated_payload(
    control: Stub, signer: PythonRSASigner, raws: list[Raw]
) -> None:
    phone = plug(control)
    raw = Raw(phone.endpoint)
    raws.append(raw)
    raw.send(CNXN, V2, 4096, b"host::\0")
    raw.version = V2
    assert raw.packet()[0] == AUTH
    raw.send(AUTH, 3, 0, signer.GetPublicKey().encode() + b"\0")
    command, version, maxdata, _ = raw.packet()
    assert (command, version, maxdata) == (CNXN, V2, 4096)
    fault(control, "endless", phone.port)
    raw.send(OPEN, 1, 0, b"shell,v2,raw:logcat\0")
    _, remote, _, _ = raw.packet()
    for _ in range(3):
        command, _, _, data = raw.packet()
        assert command == WRTE
        assert 0 < len(data) <= 4096
        assert data[0] == 1  # a stdout frame
        raw.sock.settimeout(QUIET_S)
        with pytest.raises(TimeoutError):
            raw.header()  # nothing more until the host says OKAY
        raw.sock.settimeout(RPC_TIMEOUT_S)
        raw.send(OKAY, 1, remote)


def test_streams_run_side_by_side(control: Stub, signer: PythonRSASigner, raws: list[Raw]) -> None:
    phone, raw = online(control, raws, signer)
    fault(control, "endless", phone.port)
    raw.send(OPEN, 1, 0, b"shell:logcat\0")
    assert raw.packet()[0] == OKAY
    assert raw.packet()[0] == WRTE  # stream 1 now waits for an OKAY that does not come
    assert raw.shell("exit 3", local_id=2, v2=True) == b"\x03\x01\0\0\0\x03"
    assert raw.shell("nosuchtool", local_id=3, v2=True).endswith(b"\x03\x01\0\0\0\x7f")


def test_an_unknown_service_is_refused_with_clse(control: Stub, signer: PythonRSASigner, raws: list[Raw]) -> None:
    _, raw = online(control, raws, signer)
    raw.send(OPEN, 9, 0, b"sync:\0")
    assert raw.packet() == (CLSE, 0, 9, b"")
    assert raw.shell("getprop ro.product.model", local_id=10) == b"Pixel 7\n"


def test_a_host_that_sends_garbage_is_disconnected(control: Stub, raws: list[Raw]) -> None:
    raw = Raw(plug(control).endpoint)
    raws.append(raw)
    raw.hello()
    raw.sock.sendall(b"\x00" * 24)
    assert raw.header() == ()


def test_a_host_offering_too_small_a_payload_is_refused(control: Stub, raws: list[Raw]) -> None:
    raw = Raw(plug(control).endpoint)
    raws.append(raw)
    raw.send(CNXN, V1, 1024, b"host::\0")
    assert raw.header() == ()
