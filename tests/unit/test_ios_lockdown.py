"""The iOS reader's pieces without a phone: error mapping, usbmuxd framing, the Trust flow, the USB
reset after Trust, and pair-record hygiene."""

from __future__ import annotations

import asyncio
import plistlib
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymobiledevice3 import exceptions as pmd3

from hwd.drivers.ios import client as client_module
from hwd.drivers.ios.failures import Dropped, Stalled, phone_error
from hwd.drivers.ios.lockdown import LockdownSession
from hwd.drivers.ios.records import PairRecords, checked_udid
from hwd.drivers.ios.trust import TRUST_PROMPT, UNLOCK_PROMPT, TrustFlow
from hwd.drivers.ios.usbmux import MAX_MESSAGE_BYTES, Usbmux, decode_body, decode_header, encode, parse_address
from hwd.errors import PhoneError

UDID = "00008030-001A2B3C4D5E6F70"
RECORD = {"HostCertificate": b"cert", "HostPrivateKey": b"key", "HostID": "HOST", "SystemBUID": "BUID"}


# --- error mapping -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (Stalled("silent"), "PHONE_STALLED"),
        (pmd3.UserDeniedPairingError(), "TRUST_REFUSED"),
        (pmd3.PairingDialogResponsePendingError(), "TRUST_TIMEOUT"),
        (pmd3.ConnectionFailedToUsbmuxdError(), "USBMUXD_UNAVAILABLE"),
        (pmd3.ConnectionTerminatedError(), "PHONE_DISCONNECTED"),
        (Dropped("gone"), "PHONE_DISCONNECTED"),
        (ConnectionResetError(), "PHONE_DISCONNECTED"),
        (asyncio.IncompleteReadError(b"", 4), "PHONE_DISCONNECTED"),
        (ssl.SSLEOFError(), "PHONE_DISCONNECTED"),
        (ssl.SSLError("bad record"), "PHONE_PROTOCOL_ERROR"),
        (pmd3.ProtocolError("huge"), "PHONE_PROTOCOL_ERROR"),
        (plistlib.InvalidFileException(), "PHONE_PROTOCOL_ERROR"),
        (pmd3.InvalidHostIDError(), "PHONE_PROTOCOL_ERROR"),
        (KeyError("Request"), "PHONE_PROTOCOL_ERROR"),
    ],
)
def test_failures_map_to_port_reasons(exc: Exception, code: str) -> None:
    error = phone_error(exc)
    assert error.code == code
    assert error.metadata["port_reason"] == code


def test_a_phone_error_keeps_its_code() -> None:
    original = PhoneError("slow", code="PHONE_TOO_SLOW")
    assert phone_error(original) is original


# --- usbmuxd framing -----------------------------------------------------------------------------------


def outcome(parse: Callable[[bytes], object], data: bytes) -> str:
    """What a parser made of ``data``: the type of its value (and a bool's value), or a PhoneError's code."""
    try:
        value = parse(data)
    except PhoneError as exc:
        return exc.code
    return f"bool:{value}" if isinstance(value, bool) else type(value).__name__


@given(st.binary(max_size=64))
def test_any_usbmuxd_body_is_a_dictionary_or_a_protocol_error(data: bytes) -> None:
    assert outcome(decode_body, data) in ("dict", "PHONE_PROTOCOL_ERROR")


@given(st.binary(min_size=16, max_size=16))
def test_any_usbmuxd_header_gives_a_capped_length_or_a_protocol_error(header: bytes) -> None:
    assert outcome(lambda data: 0 <= decode_header(data) <= MAX_MESSAGE_BYTES, header) in (
        "bool:True",
        "PHONE_PROTOCOL_ERROR",
    )


def test_a_request_round_trips_through_the_framing() -> None:
    packet = encode({"MessageType": "ListDevices"}, tag=7)
    assert decode_header(packet[:16]) == len(packet) - 16
    assert decode_body(packet[16:])["MessageType"] == "ListDevices"


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:27015", ("127.0.0.1", 27015)),
        ("tcp:127.0.0.1:5", ("127.0.0.1", 5)),
        ("/var/run/usbmuxd", "/var/run/usbmuxd"),
        ("unix:/tmp/mux", "/tmp/mux"),
        (None, "/var/run/usbmuxd"),
    ],
)
def test_usbmuxd_addresses(address: str | None, expected: object) -> None:
    assert parse_address(address)[1] == expected


@pytest.mark.parametrize("address", ["localhost", "host:port", "127.0.0.1:0", "127.0.0.1:70000"])
def test_bad_usbmuxd_addresses_are_refused(address: str) -> None:
    with pytest.raises(PhoneError) as caught:
        parse_address(address)
    assert caught.value.code == "USBMUXD_UNAVAILABLE"


class MuxServer:
    """A usbmuxd on loopback that answers from a script: ``replies[MessageType]`` gives raw packets."""

    def __init__(self) -> None:
        self.devices: dict[int, str] = {}
        self.listeners: list[asyncio.StreamWriter] = []
        self.listening = asyncio.Event()
        self.raw: dict[str, bytes] = {}
        self.deleted: list[str] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def address(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    def attach(self, devid: int, udid: str) -> None:
        self.devices[devid] = udid
        for writer in self.listeners:
            writer.write(encode(self._attached(devid, udid), 0))

    @staticmethod
    def _attached(devid: int, udid: str) -> dict[str, Any]:
        props = {"SerialNumber": udid, "ConnectionType": "USB", "DeviceID": devid}
        return {"MessageType": "Attached", "DeviceID": devid, "Properties": props}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            header = await reader.readexactly(16)
            length, _, _, tag = struct.unpack("<IIII", header)
            body = plistlib.loads(await reader.readexactly(length - 16))
            kind = body["MessageType"]
            if kind in self.raw:
                writer.write(self.raw[kind])
            elif kind == "ListDevices":
                listing = [self._attached(devid, udid) for devid, udid in self.devices.items()]
                writer.write(encode({"DeviceList": listing}, tag))
            elif kind == "Listen":
                writer.write(encode({"MessageType": "Result", "Number": 0}, tag))
                self.listeners.append(writer)
                self.listening.set()
            elif kind == "DeletePairRecord":
                self.deleted.append(body["PairRecordID"])
                writer.write(encode({"MessageType": "Result", "Number": 0}, tag))
            await writer.drain()
            await reader.read()  # until the client closes
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self._writers.discard(writer)


@pytest.fixture
async def mux_server() -> AsyncIterator[MuxServer]:
    server = MuxServer()
    await server.start()
    yield server
    await server.stop()


async def test_waiting_for_a_phone_skips_its_stale_device_id(mux_server: MuxServer) -> None:
    mux_server.attach(1, UDID)
    mux = Usbmux(mux_server.address, timeout_s=2)
    waiting = asyncio.create_task(mux.wait_for(UDID, stale=1, timeout_s=5))
    await mux_server.listening.wait()  # the reset comes once the reader listens
    mux_server.attach(9, "00008030-FFFFFFFFFFFFFFFF")  # another phone
    mux_server.attach(2, UDID)
    assert await waiting == 2


async def test_a_phone_that_never_comes_back_is_disconnected(mux_server: MuxServer) -> None:
    mux = Usbmux(mux_server.address, timeout_s=2)
    with pytest.raises(PhoneError) as caught:
        await mux.wait_for(UDID, stale=None, timeout_s=0.2)
    assert caught.value.code == "PHONE_DISCONNECTED"


async def test_a_huge_usbmuxd_length_is_refused_without_waiting(mux_server: MuxServer) -> None:
    mux_server.raw["ReadBUID"] = struct.pack("<IIII", 0x7FFFFFF0, 1, 8, 1)
    with pytest.raises(PhoneError) as caught:
        await Usbmux(mux_server.address, timeout_s=30).read_buid()
    assert caught.value.code == "PHONE_PROTOCOL_ERROR"


async def test_a_silent_usbmuxd_is_unavailable(mux_server: MuxServer) -> None:
    mux_server.raw["ReadBUID"] = b""
    with pytest.raises(PhoneError) as caught:
        await Usbmux(mux_server.address, timeout_s=0.2).read_buid()
    assert caught.value.code == "USBMUXD_UNAVAILABLE"


async def test_no_usbmuxd_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(PhoneError) as caught:
        await Usbmux(str(tmp_path / "absent"), timeout_s=1).devices()
    assert caught.value.code == "USBMUXD_UNAVAILABLE"


# --- the Trust flow -------------------------------------------------------------------------------------


class Prompts:
    def __init__(self) -> None:
        self.shown: list[tuple[str, float]] = []

    async def __call__(self, text: str, seconds: float) -> None:
        self.shown.append((text, seconds))


def scripted(*outcomes: BaseException | dict[str, Any]) -> Callable[[], Awaitable[dict[str, Any]]]:
    """An attempt that raises or returns each outcome in turn (the last one again and again)."""
    queue = list(outcomes)

    async def attempt() -> dict[str, Any]:
        outcome = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return attempt


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 1.0  # every look at the clock is a second later
        return self.now


async def test_pending_then_accepted_prompts_once_with_a_deadline() -> None:
    prompts = Prompts()
    flow = TrustFlow(prompts, 30, retry_s=0, clock=lambda: 100.0)
    pending = pmd3.PairingDialogResponsePendingError()
    reply = await flow.run(scripted(pending, pending, {"EscrowBag": b"bag"}))
    assert reply == {"EscrowBag": b"bag"}
    assert prompts.shown == [(TRUST_PROMPT, 30)]


async def test_refused_is_trust_refused() -> None:
    flow = TrustFlow(Prompts(), 30, retry_s=0)
    with pytest.raises(PhoneError) as caught:
        await flow.run(scripted(pmd3.PairingDialogResponsePendingError(), pmd3.UserDeniedPairingError()))
    assert caught.value.code == "TRUST_REFUSED"


async def test_ignored_is_trust_timeout() -> None:
    prompts = Prompts()
    flow = TrustFlow(prompts, 5, retry_s=0, clock=Clock())
    with pytest.raises(PhoneError) as caught:
        await flow.run(scripted(pmd3.PairingDialogResponsePendingError()))
    assert caught.value.code == "TRUST_TIMEOUT"
    assert len(prompts.shown) == 1


async def test_a_dialog_that_keeps_going_away_is_prompted_a_bounded_number_of_times() -> None:
    prompts = Prompts()
    flow = TrustFlow(prompts, 1000, retry_s=0, max_prompts=3)
    pending, locked = pmd3.PairingDialogResponsePendingError(), pmd3.PasswordRequiredError()
    with pytest.raises(PhoneError) as caught:
        await flow.run(scripted(pending, locked, pending, locked, pending, locked, {}))
    assert caught.value.code == "TRUST_TIMEOUT"
    assert [text for text, _ in prompts.shown] == [TRUST_PROMPT, UNLOCK_PROMPT, TRUST_PROMPT]


async def test_a_reprompt_keeps_the_first_deadline() -> None:
    prompts = Prompts()
    flow = TrustFlow(prompts, 60, retry_s=0, clock=Clock())
    await flow.run(scripted(pmd3.PairingDialogResponsePendingError(), pmd3.PasswordRequiredError(), {}))
    first, second = prompts.shown
    assert first[0] == TRUST_PROMPT
    assert second[0] == UNLOCK_PROMPT
    assert second[1] < first[1] <= 60


async def test_a_dialog_after_a_reconnect_is_a_new_prompt() -> None:
    prompts = Prompts()
    flow = TrustFlow(prompts, 60, retry_s=0)
    pending = pmd3.PairingDialogResponsePendingError()
    with pytest.raises(pmd3.ConnectionTerminatedError):
        await flow.run(scripted(pending, pmd3.ConnectionTerminatedError()))
    flow.interrupted()
    await flow.run(scripted(pending, {}))
    assert [text for text, _ in prompts.shown] == [TRUST_PROMPT, TRUST_PROMPT]


# --- the whole flow with a fake lockdownd: the USB reset after Trust ----------------------------------


class FakeMux:
    """usbmuxd: the phone is device 1 until the reset, then device 2."""

    def __init__(self) -> None:
        self.devid = 1
        self.waits: list[int | None] = []
        self.saved: dict[str, bytes] = {}
        self.deleted: list[str] = []

    async def read_buid(self) -> str:
        return "BUID"

    async def wait_for(self, udid: str, *, stale: int | None, timeout_s: float) -> int:
        assert udid == UDID
        self.waits.append(stale)
        return self.devid if self.devid != stale else self.devid + 1

    async def read_pair_record(self, udid: str) -> bytes | None:
        return self.saved.get(udid)

    async def save_pair_record(self, udid: str, devid: int, record: bytes) -> None:
        self.saved[udid] = record

    async def delete_pair_record(self, udid: str) -> bool:
        self.deleted.append(udid)
        return self.saved.pop(udid, None) is not None


class FakeLockdown:
    """One lockdownd connection; the phone resets right after the customer trusts the kiosk."""

    def __init__(self, phone: FakePhone, devid: int) -> None:
        self.phone, self.devid = phone, devid
        self.all_values: dict[str, Any] = {"ProductType": "iPhone14,5", "UniqueDeviceID": UDID}
        self.device_public_key = b"device key"
        self.pair_record: dict[str, Any] | None = None
        self.closed = False

    async def validate_pairing(self) -> bool:
        if self.phone.reset_pending:
            self.phone.reset_pending = False
            raise pmd3.ConnectionTerminatedError()
        if self.pair_record is None or self.pair_record.get("HostID") not in self.phone.trusted:
            return False
        self.all_values = {**self.all_values, "SerialNumber": "F2LXX0ZZ0D8K", "ProductVersion": "17.5"}
        return True

    async def request_pair(self, options: dict[str, Any]) -> dict[str, Any]:
        self.phone.pair_requests += 1
        if self.phone.pair_requests < 3:
            raise pmd3.PairingDialogResponsePendingError()
        self.phone.trusted.add(options["PairRecord"]["HostID"])
        self.phone.reset_pending = True
        return {"EscrowBag": b"escrow"}

    async def domain(self, name: str) -> dict[str, Any] | None:
        return {"BatteryCurrentCapacity": 81} if name == "com.apple.mobile.battery" else None

    async def battery_registry(self) -> dict[str, Any] | None:
        return {"CycleCount": 312}

    async def goodbye(self) -> None:
        self.phone.goodbyes += 1

    async def close(self) -> None:
        self.closed = True


class FakePhone:
    def __init__(self) -> None:
        self.trusted: set[str] = set()
        self.reset_pending = False
        self.pair_requests = 0
        self.goodbyes = 0
        self.connections: list[FakeLockdown] = []


@pytest.fixture
def phone(monkeypatch: pytest.MonkeyPatch) -> FakePhone:
    fake = FakePhone()

    async def connect(mux: Any, udid: str, devid: int, buid: str, stall_s: float) -> FakeLockdown:
        connection = FakeLockdown(fake, devid)
        fake.connections.append(connection)
        return connection

    def material(client: Any, key: bytes, identity: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"PairRecord": {"HostID": "HOST"}}, dict(RECORD)

    monkeypatch.setattr(client_module, "connect_lockdown", connect)
    monkeypatch.setattr(client_module, "kiosk_identity", lambda directory: None)
    monkeypatch.setattr(client_module, "pairing_material", material)
    return fake


async def test_the_usb_reset_after_trust_is_survived_by_udid(phone: FakePhone, tmp_path: Path) -> None:
    mux, prompts = FakeMux(), Prompts()
    records = PairRecords(tmp_path / "lockdown", mux, elsewhere=[])  # type: ignore[arg-type]
    trust = TrustFlow(prompts, 60, retry_s=0)
    session = LockdownSession(UDID, mux, records, trust, timeout_s=5)  # type: ignore[arg-type]
    identifying: list[bool] = []

    async def on_identifying() -> None:
        identifying.append(True)

    read = await session.read(on_identifying)
    assert [c.devid for c in phone.connections] == [1, 2]  # reconnected under the new DeviceID
    assert mux.waits == [None, 1]
    assert all(c.closed for c in phone.connections)
    assert [text for text, _ in prompts.shown] == [TRUST_PROMPT]
    assert identifying == [True]
    assert phone.goodbyes == 1
    assert read.values["SerialNumber"] == "F2LXX0ZZ0D8K"
    assert "SerialNumber" not in read.unpaired
    assert read.battery == {"BatteryCurrentCapacity": 81}
    assert read.disk is None
    assert read.ioreg_battery == {"CycleCount": 312}
    kept = records.load(UDID)
    assert kept is not None
    assert kept["EscrowBag"] == b"escrow"
    assert (tmp_path / "lockdown").stat().st_mode & 0o777 == 0o700
    assert records.path(UDID).stat().st_mode & 0o777 == 0o600
    assert plistlib.loads(mux.saved[UDID])["HostID"] == "HOST"


async def test_a_drop_before_any_trust_is_a_disconnection(phone: FakePhone, tmp_path: Path) -> None:
    mux = FakeMux()
    phone.reset_pending = True  # the connection breaks at the first session attempt
    records = PairRecords(tmp_path, mux, elsewhere=[])  # type: ignore[arg-type]
    records_dir_record = records.path(UDID)
    records_dir_record.write_bytes(plistlib.dumps(RECORD))
    session = LockdownSession(UDID, mux, records, TrustFlow(Prompts(), 60, retry_s=0), 5)  # type: ignore[arg-type]

    async def nothing() -> None:
        return None

    with pytest.raises(PhoneError) as caught:
        await session.read(nothing)
    assert caught.value.code == "PHONE_DISCONNECTED"
    assert [c.closed for c in phone.connections] == [True]


# --- pair-record hygiene --------------------------------------------------------------------------------


async def test_forget_removes_every_copy(tmp_path: Path) -> None:
    mux = FakeMux()
    mux.saved[UDID] = plistlib.dumps(RECORD)
    system, home = tmp_path / "var-lib-lockdown", tmp_path / "pymobiledevice3"
    records = PairRecords(tmp_path / "lockdown", mux, elsewhere=[system, home])  # type: ignore[arg-type]
    await records.save(UDID, 1, RECORD)
    for folder in (system, home):
        folder.mkdir()
        (folder / f"{UDID}.plist").write_bytes(plistlib.dumps(RECORD))
    other = home / "00008030-0000000000000001.plist"
    other.write_bytes(b"another phone's record")

    removed = await records.forget(UDID)

    assert set(removed) == {str(records.path(UDID)), str(system / f"{UDID}.plist"), str(home / f"{UDID}.plist"),
                            "usbmuxd"}  # fmt: skip
    assert records.load(UDID) is None
    assert UDID not in mux.saved
    assert not (system / f"{UDID}.plist").exists()
    assert other.exists()
    assert await records.forget(UDID) == []


async def test_forget_asks_usbmuxd_to_delete(mux_server: MuxServer, tmp_path: Path) -> None:
    records = PairRecords(tmp_path, Usbmux(mux_server.address, timeout_s=2), elsewhere=[])
    assert await records.forget(UDID) == ["usbmuxd"]
    assert mux_server.deleted == [UDID]


async def test_forget_without_usbmuxd_still_deletes_the_files(tmp_path: Path) -> None:
    records = PairRecords(tmp_path, Usbmux(str(tmp_path / "no-usbmuxd"), timeout_s=1), elsewhere=[])
    records.path(UDID).write_bytes(plistlib.dumps(RECORD))
    assert await records.forget(UDID) == [str(records.path(UDID))]


@pytest.mark.parametrize("udid", ["../etc/passwd", "", "0000", UDID + "/x", "g" * 40])
def test_a_udid_that_is_not_one_names_no_file(udid: str) -> None:
    with pytest.raises(PhoneError) as caught:
        checked_udid(udid)
    assert caught.value.code == "INVALID_ENDPOINT"


@given(st.binary(max_size=200))
def test_any_kept_record_file_loads_or_is_ignored(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    records = PairRecords(tmp_path_factory.mktemp("records"), FakeMux(), elsewhere=[])  # type: ignore[arg-type]
    records.path(UDID).write_bytes(data)
    loaded = records.load(UDID)
    assert loaded is None or {"HostCertificate", "HostPrivateKey", "HostID"} <= set(loaded)


def test_the_kiosk_pairs_every_phone_with_one_identity_whose_keys_never_leave_it(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    record_dir = tmp_path / "lockdown"
    identity = client_module.kiosk_identity(record_dir)
    assert client_module.kiosk_identity(record_dir) is identity, "made once, then reused"
    key_files = sorted(record_dir.iterdir())
    assert [path.name for path in key_files] == sorted([client_module.HOST_KEY_FILE, client_module.ROOT_KEY_FILE])
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in key_files)

    phones = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2)]
    client = type("Client", (), {"host_id": "HOST-1", "wifi_mac_address": None, "system_buid": "BUID"})()
    root = x509.load_pem_x509_certificate(identity.root_pem)
    for phone in phones:
        public = phone.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
        options, record = client_module.pairing_material(client, public, identity)
        sent = options["PairRecord"]
        assert not {"RootPrivateKey", "HostPrivateKey"} & set(sent), "no private key is sent to a phone"
        device = x509.load_pem_x509_certificate(sent["DeviceCertificate"])
        assert device.public_key().public_numbers() == phone.public_key().public_numbers()
        assert device.issuer == root.subject
        assert sent["RootCertificate"] == identity.root_pem
        assert record["HostPrivateKey"].startswith(b"-----BEGIN PRIVATE KEY-----")
    with pytest.raises(ValueError, match="PEM"):
        client_module.pairing_material(client, b"not a key", identity)
