"""Simulated iPhones in the simulator process, seen through its usbmuxd by a raw client.

The raw client here frames usbmuxd and lockdownd messages with ``struct`` and ``plistlib``
alone, so what it sees does not depend on the simulator's own codec. Pairing uses a host
certificate chain made here with ``cryptography`` for the phone's DevicePublicKey.
"""

from __future__ import annotations

import contextlib
import datetime
import plistlib
import socket
import ssl
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.parsers.expat import ExpatError

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc
from tests.integration.test_simulator_process import RPC_TIMEOUT_S, simulator_fixtures

PROFILE = "iphone-13"
UDID = "00008110-001A2C3E0E38801E"
LOCKDOWN = 62078
QUIET_S = 0.5  # how long a stalled phone is watched for a reply that must not come

kiosk, control = simulator_fixtures("iphones")
Stub = simulator_pb2_grpc.SimulatorStub


def usbmux_address(document: dict[str, Any]) -> tuple[str, int]:
    """The simulated usbmuxd's (host, port) from the ready document."""
    _, host, port = document["devices"]["usbmuxd"]["endpoint"].split(":")
    return host, int(port)


def workdir(document: dict[str, Any]) -> Path:
    return Path(document["control"].removeprefix("unix:")).parent


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return data
        data += chunk
    return data


class Mux:
    """A raw usbmuxd client on one connection."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=RPC_TIMEOUT_S)
        self.tag = 0

    def close(self) -> None:
        self.sock.close()

    def send(self, message: dict[str, Any]) -> int:
        self.tag += 1
        payload = plistlib.dumps({"ProgName": "raw", **message})
        self.sock.sendall(struct.pack("<4I", 16 + len(payload), 1, 8, self.tag) + payload)
        return self.tag

    def receive(self) -> tuple[int, dict[str, Any]]:
        header = recv_exactly(self.sock, 16)
        assert len(header) == 16, "usbmuxd closed the connection"
        length, version, message, tag = struct.unpack("<4I", header)
        assert (version, message) == (1, 8)
        body: dict[str, Any] = plistlib.loads(recv_exactly(self.sock, length - 16))
        return tag, body

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        tag = self.send(message)
        got, body = self.receive()
        assert got == tag
        return body

    def device_id(self, udid: str = UDID) -> int:
        listed = self.request({"MessageType": "ListDevices"})["DeviceList"]
        ids: list[int] = [entry["DeviceID"] for entry in listed if entry["Properties"]["SerialNumber"] == udid]
        assert len(ids) == 1, listed
        return ids[0]

    def connect(self, device_id: int, port: int) -> int:
        """Connect; returns the Result number (0: the socket now reaches the phone)."""
        number: int = self.request({"MessageType": "Connect", "DeviceID": device_id, "PortNumber": socket.htons(port)})[
            "Number"
        ]
        return number


class Lockdown:
    """A raw lockdownd client over a usbmuxd connection."""

    def __init__(self, mux: Mux) -> None:
        self.sock = mux.sock

    def send(self, message: dict[str, Any]) -> None:
        payload = plistlib.dumps(message)
        self.sock.sendall(struct.pack(">I", len(payload)) + payload)

    def raw_reply(self) -> bytes:
        head = recv_exactly(self.sock, 4)
        if len(head) < 4:
            return head
        return head + recv_exactly(self.sock, min(struct.unpack(">I", head)[0], 1 << 20))

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        self.send(message)
        raw = self.raw_reply()
        assert len(raw) >= 4, "lockdownd closed the connection"
        body: dict[str, Any] = plistlib.loads(raw[4:])
        assert body["Request"] == message["Request"]
        return body


def pair_record(device_public_key: bytes) -> dict[str, Any]:
    """A host's PairRecord for a phone: a root CA signing the host's and the device's certificates."""
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    host_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    device_key = serialization.load_pem_public_key(device_public_key)
    assert isinstance(device_key, rsa.RSAPublicKey)
    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject_key: Any, name: str) -> bytes:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "root")]))
            .public_key(subject_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=3650))
        )
        return builder.sign(root_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    return {
        "DeviceCertificate": certificate(device_key, "device"),
        "HostCertificate": certificate(host_key.public_key(), "host"),
        "RootCertificate": certificate(root_key.public_key(), "root"),
        "HostID": str(uuid.uuid4()).upper(),
        "SystemBUID": str(uuid.uuid4()).upper(),
    }


@pytest.fixture
def mux(kiosk: dict[str, Any]) -> Iterator[Mux]:
    client = Mux(usbmux_address(kiosk))
    yield client
    client.close()


@pytest.fixture
def lockdown(kiosk: dict[str, Any], control: Stub) -> Iterator[Lockdown]:
    """A lockdownd connection to a freshly plugged iPhone."""
    plug(control)
    client = Mux(usbmux_address(kiosk))
    assert client.connect(client.device_id(), LOCKDOWN) == 0
    yield Lockdown(client)
    client.close()


def plug(stub: Stub, trust: str = "", delay: float = 0.0, port: str = "") -> simulator_pb2.SimPhone:
    request = simulator_pb2.PlugPhoneRequest(profile=PROFILE, port=port, trust=trust, trust_delay_s=delay)
    phone: simulator_pb2.SimPhone = stub.PlugPhone(request, timeout=RPC_TIMEOUT_S).phone
    return phone


def fault(stub: Stub, name: str, port: str = "1-1.1", **params: str) -> str:
    request = simulator_pb2.FaultRequest(device="phones", fault=name, params={"port": port, **params})
    state: str = stub.Fault(request, timeout=RPC_TIMEOUT_S).device.state
    return state


def pair(lockdown: Lockdown) -> tuple[dict[str, Any], dict[str, Any]]:
    """Send a Pair with a fresh record; returns (record, reply)."""
    key = lockdown.request({"Request": "GetValue", "Key": "DevicePublicKey"})["Value"]
    record = pair_record(key)
    return record, lockdown.request({"Request": "Pair", "PairRecord": record, "ProtocolVersion": "2"})


def test_plugged_iphone_is_listed_by_usbmuxd_and_the_control_service(control: Stub, mux: Mux) -> None:
    phone = plug(control)
    assert (phone.platform, phone.serial, phone.endpoint) == ("ios", UDID, f"usbmux:{UDID}")
    listed = mux.request({"MessageType": "ListDevices"})["DeviceList"]
    assert [entry["Properties"]["SerialNumber"] for entry in listed] == [UDID]
    assert listed[0]["Properties"]["ConnectionType"] == "USB"
    assert listed[0]["MessageType"] == "Attached"
    buid = mux.request({"MessageType": "ReadBUID"})["BUID"]
    assert buid == mux.request({"MessageType": "ReadBUID"})["BUID"] != ""


def test_profiles_of_both_platforms_are_listed(control: Stub) -> None:
    profiles = control.ListProfiles(simulator_pb2.ListProfilesRequest(), timeout=RPC_TIMEOUT_S).profiles
    platforms = {profile.name: profile.platform for profile in profiles}
    assert platforms[PROFILE] == "ios"
    assert platforms["pixel-7"] == "android"
    iphone = next(profile for profile in profiles if profile.name == PROFILE)
    assert (iphone.manufacturer, iphone.model) == ("Apple", "iPhone 13")


def test_listen_reports_attach_and_detach(control: Stub, mux: Mux) -> None:
    assert mux.request({"MessageType": "Listen"})["Number"] == 0
    plug(control)
    _, attached = mux.receive()
    assert attached["MessageType"] == "Attached"
    assert attached["Properties"]["SerialNumber"] == UDID
    control.UnplugPhone(simulator_pb2.UnplugPhoneRequest(port="1-1.1"), timeout=RPC_TIMEOUT_S)
    _, detached = mux.receive()
    assert detached == {"MessageType": "Detached", "DeviceID": attached["DeviceID"]}


def test_connect_refusals(control: Stub, mux: Mux) -> None:
    plug(control)
    device_id = mux.device_id()
    assert mux.connect(device_id, 1234) == 3  # nothing listens there
    assert mux.connect(device_id + 100, LOCKDOWN) == 2  # no such device
    assert mux.request({"MessageType": "Bogus"})["Number"] == 1


def test_lockdownd_answers_unpaired_subset(lockdown: Lockdown) -> None:
    assert lockdown.request({"Request": "QueryType"})["Type"] == "com.apple.mobile.lockdown"
    values = lockdown.request({"Request": "GetValue"})["Value"]
    assert values["UniqueDeviceID"] == UDID
    assert values["ProductType"] == "iPhone14,5"
    assert "SerialNumber" not in values
    assert "InternationalMobileEquipmentIdentity" not in values
    assert lockdown.request({"Request": "GetValue", "Key": "SerialNumber"})["Error"] == "InvalidHostID"
    assert lockdown.request({"Request": "StartSession", "HostID": "nobody", "SystemBUID": "x"})["Error"] == (
        "InvalidHostID"
    )


def test_pair_record_saved_read_and_deleted(kiosk: dict[str, Any], mux: Mux) -> None:
    path = workdir(kiosk) / "usbmuxd" / "pair_records" / f"{UDID}.plist"
    data = plistlib.dumps({"HostID": "H", "SystemBUID": "S"})
    saved = mux.request({"MessageType": "SavePairRecord", "PairRecordID": UDID, "PairRecordData": data})
    assert saved["Number"] == 0
    assert path.read_bytes() == data
    assert mux.request({"MessageType": "ReadPairRecord", "PairRecordID": UDID})["PairRecordData"] == data
    assert mux.request({"MessageType": "DeletePairRecord", "PairRecordID": UDID})["Number"] == 0
    assert not path.exists()
    assert mux.request({"MessageType": "ReadPairRecord", "PairRecordID": UDID})["Number"] == 2
    bad = mux.request({"MessageType": "ReadPairRecord", "PairRecordID": "../../etc/passwd"})
    assert bad["Number"] == 1


def test_trust_accepted_then_session_starts(lockdown: Lockdown) -> None:
    record, reply = pair(lockdown)
    assert isinstance(reply["EscrowBag"], bytes)
    session = lockdown.request({"Request": "StartSession", "HostID": record["HostID"], "SystemBUID": "x"})
    assert session["EnableSessionSSL"] is True
    assert session["SessionID"]


def test_trust_refused(kiosk: dict[str, Any], control: Stub) -> None:
    plug(control, trust="refuse")
    mux = Mux(usbmux_address(kiosk))
    try:
        assert mux.connect(mux.device_id(), LOCKDOWN) == 0
        assert pair(Lockdown(mux))[1]["Error"] == "UserDeniedPairing"
    finally:
        mux.close()


def test_trust_ignored_stays_pending(kiosk: dict[str, Any], control: Stub) -> None:
    plug(control, trust="ignore")
    mux = Mux(usbmux_address(kiosk))
    try:
        assert mux.connect(mux.device_id(), LOCKDOWN) == 0
        lockdown = Lockdown(mux)
        record, reply = pair(lockdown)
        assert reply["Error"] == "PairingDialogResponsePending"
        again = lockdown.request({"Request": "Pair", "PairRecord": record, "ProtocolVersion": "2"})
        assert again["Error"] == "PairingDialogResponsePending"
        assert "awaiting trust" in ports_state(control)
    finally:
        mux.close()


def test_pair_record_for_another_key_is_refused(lockdown: Lockdown) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    record = pair_record(other.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1))
    reply = lockdown.request({"Request": "Pair", "PairRecord": record, "ProtocolVersion": "2"})
    assert reply["Error"] == "InvalidPairRecord"


def test_usb_reset_after_trust(kiosk: dict[str, Any], control: Stub) -> None:
    with grpc.insecure_channel(kiosk["control"]) as channel:
        watch: Any = simulator_pb2_grpc.SimulatorStub(channel).WatchPhones(
            simulator_pb2.WatchPhonesRequest(), timeout=RPC_TIMEOUT_S
        )
        plug(control, trust="accept-reset")
        listener = Mux(usbmux_address(kiosk))
        mux = Mux(usbmux_address(kiosk))
        try:
            assert listener.request({"MessageType": "Listen"})["Number"] == 0
            first = listener.receive()[1]["DeviceID"]
            assert mux.connect(first, LOCKDOWN) == 0
            assert "EscrowBag" in pair(Lockdown(mux))[1]
            assert recv_exactly(mux.sock, 4) == b""  # the reset cuts the connection
            assert listener.receive()[1] == {"MessageType": "Detached", "DeviceID": first}
            back = listener.receive()[1]
            assert back["MessageType"] == "Attached"
            assert back["DeviceID"] != first
            assert back["Properties"]["SerialNumber"] == UDID
        finally:
            listener.close()
            mux.close()
        changes = [next(watch) for _ in range(3)]
        watch.cancel()
    assert [(change.attached, change.phone.port, change.phone.serial) for change in changes] == [
        (True, "1-1.1", UDID),
        (False, "1-1.1", UDID),
        (True, "1-1.1", UDID),
    ]


def test_usb_reset_fault_on_a_trusting_phone_resets_now(kiosk: dict[str, Any], lockdown: Lockdown) -> None:
    pair(lockdown)
    mux = Mux(usbmux_address(kiosk))
    try:
        before = mux.device_id()
        assert mux.request({"MessageType": "Listen"})["Number"] == 0
        mux.receive()  # the phone as attached now
        fault_stub(kiosk, "usb-reset")
        assert mux.receive()[1] == {"MessageType": "Detached", "DeviceID": before}
        assert mux.receive()[1]["DeviceID"] != before
    finally:
        mux.close()


def fault_stub(document: dict[str, Any], name: str, **params: str) -> str:
    with grpc.insecure_channel(document["control"]) as channel:
        return fault(simulator_pb2_grpc.SimulatorStub(channel), name, **params)


def ports_state(stub: Stub) -> str:
    status = stub.GetStatus(simulator_pb2.GetStatusRequest(), timeout=RPC_TIMEOUT_S)
    state: str = next(device.state for device in status.devices if device.name == "phones")
    return state


def test_malformed_plist_fault(control: Stub, lockdown: Lockdown) -> None:
    assert "malformed-plist" in fault(control, "malformed-plist")
    lockdown.send({"Request": "QueryType"})
    raw = lockdown.raw_reply()
    with pytest.raises((plistlib.InvalidFileException, ExpatError)):
        plistlib.loads(raw[4:])
    assert lockdown.request({"Request": "QueryType"})["Type"] == "com.apple.mobile.lockdown"  # one-shot


def test_huge_length_fault(control: Stub, lockdown: Lockdown) -> None:
    fault(control, "huge-length")
    lockdown.send({"Request": "QueryType"})
    assert struct.unpack(">I", recv_exactly(lockdown.sock, 4))[0] > 100 * 1024 * 1024


def test_drop_fault_closes_mid_command(control: Stub, lockdown: Lockdown) -> None:
    fault(control, "drop")
    lockdown.send({"Request": "QueryType"})
    assert recv_exactly(lockdown.sock, 4) == b""


def test_stall_then_clear(control: Stub, lockdown: Lockdown) -> None:
    assert "stall" in fault(control, "stall")
    lockdown.send({"Request": "QueryType"})
    lockdown.sock.settimeout(QUIET_S)
    with pytest.raises(TimeoutError):
        lockdown.sock.recv(1)
    lockdown.sock.settimeout(RPC_TIMEOUT_S)
    fault(control, "clear")
    raw = lockdown.raw_reply()
    assert plistlib.loads(raw[4:])["Type"] == "com.apple.mobile.lockdown"


def test_unknown_fault_is_refused(control: Stub) -> None:
    plug(control)
    with pytest.raises(grpc.RpcError) as caught:
        fault(control, "melt")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_trust_after_a_delay(kiosk: dict[str, Any], control: Stub) -> None:
    plug(control, delay=0.3)
    mux = Mux(usbmux_address(kiosk))
    try:
        assert mux.connect(mux.device_id(), LOCKDOWN) == 0
        lockdown = Lockdown(mux)
        record, reply = pair(lockdown)
        assert reply["Error"] == "PairingDialogResponsePending"
        assert "awaiting trust" in ports_state(control)
        deadline = time.monotonic() + RPC_TIMEOUT_S
        while "Error" in reply and time.monotonic() < deadline:  # a host retries until the customer answers
            time.sleep(0.05)
            reply = lockdown.request({"Request": "Pair", "PairRecord": record, "ProtocolVersion": "2"})
        assert "EscrowBag" in reply
        assert "trusted" in ports_state(control)
    finally:
        mux.close()


class TlsClient:
    """TLS on the raw lockdownd socket, as a host does after StartSession, over memory BIOs."""

    def __init__(self, sock: socket.socket) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_ciphers("ALL:@SECLEVEL=0")
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing)
        self._pump(self.tls.do_handshake)

    def _pump(self, step: Any) -> Any:
        while True:
            try:
                result = step()
            except ssl.SSLWantReadError:
                self.sock.sendall(self.outgoing.read())
                chunk = self.sock.recv(65536)
                assert chunk, "the phone closed the connection"
                self.incoming.write(chunk)
                continue
            self.sock.sendall(self.outgoing.read())
            return result

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        payload = plistlib.dumps(message)
        self._pump(lambda: self.tls.write(struct.pack(">I", len(payload)) + payload))
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack(">I", data[:4])[0]:
            data += self._pump(lambda: self.tls.read(65536))
        body: dict[str, Any] = plistlib.loads(data[4:])
        return body

    def close_notify(self) -> None:
        with contextlib.suppress(ssl.SSLWantReadError):
            self.tls.unwrap()
        self.sock.sendall(self.outgoing.read())


def test_session_over_tls_then_plain_text_after_stop(lockdown: Lockdown) -> None:
    record, _ = pair(lockdown)
    assert lockdown.request({"Request": "StartSession", "HostID": record["HostID"], "SystemBUID": "x"})[
        "EnableSessionSSL"
    ]
    tls = TlsClient(lockdown.sock)
    assert tls.request({"Request": "GetValue", "Key": "SerialNumber"})["Value"] == "K7W2H9QX4M"
    battery = tls.request({"Request": "GetValue", "Domain": "com.apple.mobile.battery"})["Value"]
    assert battery["BatteryCurrentCapacity"] == 76
    assert "Error" not in tls.request({"Request": "StopSession", "SessionID": "x"})
    tls.close_notify()
    assert lockdown.request({"Request": "Goodbye"})["Result"] == "Success"  # plain text again


def test_drop_fault_during_a_tls_session(control: Stub, lockdown: Lockdown) -> None:
    record, _ = pair(lockdown)
    lockdown.request({"Request": "StartSession", "HostID": record["HostID"], "SystemBUID": "x"})
    tls = TlsClient(lockdown.sock)
    fault(control, "drop")
    with pytest.raises(AssertionError, match="closed the connection"):
        tls.request({"Request": "GetValue", "Key": "SerialNumber"})
