"""The iOS reader against the simulated kiosk's usbmuxd and iPhones (real plist framing, pairing, TLS
sessions, diagnostics_relay, USB resets and faults), in a ``python -m simulators`` process."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from hwd.drivers.ios.reader import IosReader
from hwd.drivers.ios.trust import TRUST_PROMPT
from hwd.errors import PhoneError
from hwd.model.phones import Platform, PortEvent
from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc
from tests.integration.test_simulator_process import RPC_TIMEOUT_S, SimProcess

TIMEOUT_S = 2.0
TRUST_S = 10.0
PROFILE = "iphone-13"


@dataclass
class Kiosk:
    usbmuxd: str
    directory: Path
    control: simulator_pb2_grpc.SimulatorStub

    @property
    def mux_records(self) -> Path:
        return self.directory / "usbmuxd" / "pair_records"

    def plug(self, trust: str = "accept", delay_s: float = 0.0, profile: str = PROFILE) -> simulator_pb2.SimPhone:
        request = simulator_pb2.PlugPhoneRequest(profile=profile, trust=trust, trust_delay_s=delay_s)
        return self.control.PlugPhone(request, timeout=RPC_TIMEOUT_S).phone

    def fault(self, phone: simulator_pb2.SimPhone, fault: str, **params: str) -> None:
        request = simulator_pb2.FaultRequest(device="phones", fault=fault, params={"port": phone.port, **params})
        self.control.Fault(request, timeout=RPC_TIMEOUT_S)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], Path]]:
    process = SimProcess(tmp_path_factory.mktemp("ios_transport") / "sim")
    document = process.ready()
    yield document, process.directory
    process.proc.terminate()
    rc, _ = process.finish()
    assert rc == 0, process.stderr


@pytest.fixture
def kiosk(sim: tuple[dict[str, Any], Path]) -> Iterator[Kiosk]:
    document, directory = sim
    usbmuxd = document["devices"]["usbmuxd"]["endpoint"].removeprefix("tcp:")
    with grpc.insecure_channel(document["control"]) as channel:
        stub = simulator_pb2_grpc.SimulatorStub(channel)
        yield Kiosk(usbmuxd, directory, stub)
        stub.Reset(simulator_pb2.ResetRequest(), timeout=RPC_TIMEOUT_S)


def event_of(phone: simulator_pb2.SimPhone) -> PortEvent:
    return PortEvent(phone.port, True, Platform.IOS, serial=phone.serial, endpoint=phone.endpoint)


class Calls:
    def __init__(self) -> None:
        self.prompts: list[tuple[str, float]] = []
        self.identifying = 0
        self.prompted = asyncio.Event()

    async def on_prompt(self, text: str, seconds: float) -> None:
        self.prompts.append((text, seconds))
        self.prompted.set()

    async def on_identifying(self) -> None:
        self.identifying += 1


def reader(kiosk: Kiosk, tmp_path: Path, trust_s: float = TRUST_S, timeout_s: float = TIMEOUT_S) -> IosReader:
    return IosReader(kiosk.usbmuxd, tmp_path / "lockdown", trust_s, timeout_s)


async def test_trust_after_a_delay_then_the_phone_is_read_and_released(kiosk: Kiosk, tmp_path: Path) -> None:
    phone = kiosk.plug(delay_s=0.5)
    calls, ios = Calls(), reader(kiosk, tmp_path)
    report = await ios.identify(event_of(phone), calls.on_prompt, calls.on_identifying)
    assert report.platform is Platform.IOS
    assert report.udid.value == phone.serial
    assert report.model.available
    assert report.serial.available
    assert report.battery_level_percent.available
    assert [text for text, _ in calls.prompts] == [TRUST_PROMPT]
    assert 0 < calls.prompts[0][1] <= TRUST_S
    assert calls.identifying == 1
    assert (tmp_path / "lockdown" / f"{phone.serial}.plist").exists()
    assert any(kiosk.mux_records.glob(f"{phone.serial}*"))

    again = Calls()  # the record is kept while the phone is plugged: no second prompt
    await ios.identify(event_of(phone), again.on_prompt, again.on_identifying)
    assert again.prompts == []

    await ios.release(event_of(phone))
    left = sorted(path.name for path in (tmp_path / "lockdown").iterdir())
    assert left == ["kiosk-host-key.pem", "kiosk-root-key.pem"], "only the kiosk's own keys stay"
    assert not any(kiosk.mux_records.glob(f"{phone.serial}*"))


async def test_the_usb_reset_after_trust_is_survived(kiosk: Kiosk, tmp_path: Path) -> None:
    phone = kiosk.plug(delay_s=0.2)
    kiosk.fault(phone, "usb-reset")
    calls = Calls()
    report = await reader(kiosk, tmp_path).identify(event_of(phone), calls.on_prompt, calls.on_identifying)
    assert report.udid.value == phone.serial
    assert report.serial.available
    assert len(calls.prompts) == 1


async def test_refused_is_trust_refused(kiosk: Kiosk, tmp_path: Path) -> None:
    phone = kiosk.plug(trust="refuse", delay_s=0.2)
    calls = Calls()
    with pytest.raises(PhoneError) as caught:
        await reader(kiosk, tmp_path).identify(event_of(phone), calls.on_prompt, calls.on_identifying)
    assert caught.value.code == "TRUST_REFUSED"
    assert len(calls.prompts) == 1
    assert calls.identifying == 0


async def test_ignored_is_trust_timeout(kiosk: Kiosk, tmp_path: Path) -> None:
    phone = kiosk.plug(trust="ignore")
    calls = Calls()
    with pytest.raises(PhoneError) as caught:
        await reader(kiosk, tmp_path, trust_s=1.5).identify(event_of(phone), calls.on_prompt, calls.on_identifying)
    assert caught.value.code == "TRUST_TIMEOUT"
    assert not any((tmp_path / "lockdown").glob("*.plist"))


@pytest.mark.parametrize(
    ("fault", "params", "code"),
    [
        ("stall", {}, "PHONE_STALLED"),
        ("drop", {}, "PHONE_DISCONNECTED"),
        ("malformed-plist", {}, "PHONE_PROTOCOL_ERROR"),
        ("huge-length", {}, "PHONE_PROTOCOL_ERROR"),
    ],
)
async def test_each_fault_gives_its_code(
    kiosk: Kiosk, tmp_path: Path, fault: str, params: dict[str, str], code: str
) -> None:
    phone = kiosk.plug()
    kiosk.fault(phone, fault, **params)
    calls = Calls()
    with pytest.raises(PhoneError) as caught:
        await reader(kiosk, tmp_path).identify(event_of(phone), calls.on_prompt, calls.on_identifying)
    assert caught.value.code == code


async def test_an_unplug_cancels_the_read_at_once(kiosk: Kiosk, tmp_path: Path) -> None:
    phone = kiosk.plug(trust="ignore")
    calls = Calls()
    task = asyncio.create_task(reader(kiosk, tmp_path).identify(event_of(phone), calls.on_prompt, calls.on_identifying))
    await calls.prompted.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_phone_slow_at_every_answer_is_too_slow(kiosk: Kiosk, tmp_path: Path) -> None:
    # each answer comes within the stall deadline (half of TIMEOUT_S), the whole read does not
    phone = kiosk.plug()
    kiosk.fault(phone, "slow", seconds="0.7")
    calls = Calls()
    with pytest.raises(PhoneError) as caught:
        await reader(kiosk, tmp_path).identify(event_of(phone), calls.on_prompt, calls.on_identifying)
    assert caught.value.code == "PHONE_TOO_SLOW"
