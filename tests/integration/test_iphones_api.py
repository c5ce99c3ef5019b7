"""iPhones through a real daemon on the simulated kiosk, over gRPC: every profile reaches READY (or
LOCKED) with its profile's values, a refused Trust is DENIED, the USB reset after Trust keeps the
session, an unplug leaves no task, socket or pair record behind, and a faulty iPhone fails alone."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from grpc_health.v1 import health_pb2

from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2
from hwd.rpc.pb.hwd.v1 import phones_pb2
from simulators.ios.profiles import IosProfile, load_profiles
from tests.integration.test_phones_api import GUARD_S, Kiosk, _field_matches, simulated_kiosk

P = phones_pb2
PROFILES = load_profiles()
ANY_PROFILE = "iphone-13"


def locked(profile: IosProfile) -> bool:
    """Whether the profile's phone is held by its owner: not activated, Find My on, or supervised (MDM)."""
    domains = profile.domains
    return (
        profile.root.get("ActivationState") != "Activated"
        or domains.get("com.apple.fmip", {}).get("IsAssociated") is True
        or domains.get("com.apple.mobile.chaperone", {}).get("DeviceIsChaperoned") is True
    )


def expected(profile: IosProfile) -> dict[str, Any]:
    """The report values the profile's data implies."""
    root = profile.root
    out: dict[str, Any] = {"imei": root["InternationalMobileEquipmentIdentity"], "serial": root["SerialNumber"],
                           "os_version": root["ProductVersion"], "udid": root["UniqueDeviceID"]}  # fmt: skip
    disk = profile.domains.get("com.apple.disk_usage", {})
    if "TotalDiskCapacity" in disk:
        out["storage_total_bytes"] = disk["TotalDiskCapacity"]
    battery = profile.entries.get("AppleSmartBattery", {})
    if "CycleCount" in battery:
        out["battery_cycle_count"] = battery["CycleCount"]
    return out


def mismatches(report: phones_pb2.PhoneReport, profile: IosProfile) -> dict[str, tuple[Any, str]]:
    return {
        name: (want, str(getattr(report, name)).replace("\n", " "))
        for name, want in expected(profile).items()
        if not _field_matches(getattr(report, name), want)
    }


def records(kiosk: Kiosk, tmp: Path) -> list[Path]:
    """Every pair record left: in the simulated usbmuxd's store and in the daemon's record_dir."""
    assert kiosk.daemon.simulator is not None
    stores = [kiosk.daemon.simulator.directory / "usbmuxd", tmp / "state" / "lockdown"]
    return [path for store in stores if store.exists() for path in store.rglob("*.plist")]  # UDID.plist each


async def no_records(kiosk: Kiosk, tmp: Path) -> list[Path]:
    """The records left once the releases that follow an unplug ended."""
    assert kiosk.daemon.phones is not None
    async with asyncio.timeout(GUARD_S):
        await kiosk.daemon.phones.forgotten()
    return records(kiosk, tmp)


def state(kiosk_ports: dict[str, phones_pb2.Port], port: str) -> str:
    return P.PortState.Name(kiosk_ports[port].state)


async def test_every_iphone_profile_is_identified_with_its_profile_values(tmp_path: Path) -> None:
    assert {locked(p) for p in PROFILES.values()} == {True, False}  # both outcomes are exercised
    ports = {name: f"1-1.{i + 1}" for i, name in enumerate(sorted(PROFILES))}
    async with simulated_kiosk(tmp_path) as kiosk:
        for name, port in ports.items():  # a simulated iPhone makes its keys as it is plugged: give it time
            request = simulator_pb2.PlugPhoneRequest(profile=name, port=port, trust="accept")
            await kiosk.sim.PlugPhone(request, timeout=GUARD_S)
        final = await kiosk.final(*ports.values())
    wrong = {}
    for name, port in ports.items():
        want = "PORT_STATE_LOCKED" if locked(PROFILES[name]) else "PORT_STATE_READY"
        got = final[port]
        if state(final, port) != want or got.platform != P.PLATFORM_IOS:
            wrong[name] = (state(final, port), got.reason, got.detail)
        elif diff := mismatches(got.report, PROFILES[name]):
            wrong[name] = diff  # type: ignore[assignment]
    assert wrong == {}


async def test_a_locked_iphone_says_why_and_what_to_do(tmp_path: Path) -> None:
    async with simulated_kiosk(tmp_path) as kiosk:
        await kiosk.plug("iphone-13-activation-locked", "1-1.1")
        port = (await kiosk.final("1-1.1"))["1-1.1"]
    assert port.state == P.PORT_STATE_LOCKED
    assert port.reason == "ACTIVATION_LOCK"
    assert "Find My" in port.recovery_hint


async def test_a_refused_trust_is_denied(tmp_path: Path) -> None:
    async with simulated_kiosk(tmp_path) as kiosk:
        await kiosk.plug(ANY_PROFILE, "1-1.1", trust="refuse", delay=0.2)
        port = (await kiosk.final("1-1.1"))["1-1.1"]
    assert (port.state, port.reason) == (P.PORT_STATE_DENIED, "TRUST_REFUSED")


async def test_the_usb_reset_after_trust_keeps_the_session(tmp_path: Path) -> None:
    async with simulated_kiosk(tmp_path) as kiosk:
        await kiosk.plug(ANY_PROFILE, "1-1.1", delay=0.5)
        waiting = await kiosk.until(lambda ps: "1-1.1" in ps and ps["1-1.1"].state == P.PORT_STATE_AWAITING_TRUST)
        session = waiting["1-1.1"].session_id
        await kiosk.fault("1-1.1", "usb-reset")
        seen: list[phones_pb2.Port] = []

        def ended(ports: dict[str, phones_pb2.Port]) -> bool:
            seen.append(ports["1-1.1"])
            return ports["1-1.1"].state in (P.PORT_STATE_READY, P.PORT_STATE_ABSENT, P.PORT_STATE_ERROR)

        final = (await kiosk.until(ended))["1-1.1"]
    assert (final.state, final.session_id) == (P.PORT_STATE_READY, session)
    assert all(p.session_id == session for p in seen)
    assert P.PORT_STATE_ABSENT not in {p.state for p in seen}


async def test_unplug_mid_read_is_absent_and_leaves_nothing(tmp_path: Path) -> None:
    async with simulated_kiosk(tmp_path) as kiosk:
        await kiosk.plug(ANY_PROFILE, "1-1.1")
        await kiosk.fault("1-1.1", "slow", seconds="1")
        await kiosk.until(lambda ps: "1-1.1" in ps and ps["1-1.1"].state == P.PORT_STATE_IDENTIFYING)
        await kiosk.sim.UnplugPhone(_unplug("1-1.1"), timeout=10)
        absent = await kiosk.until(lambda ps: ps["1-1.1"].state == P.PORT_STATE_ABSENT)
        assert kiosk.daemon.phones is not None
        assert kiosk.daemon.phones.running() == []
        assert await no_records(kiosk, tmp_path) == []
    assert absent["1-1.1"].session_id == ""


async def test_no_pair_record_survives_the_phone(tmp_path: Path) -> None:
    async with simulated_kiosk(tmp_path) as kiosk:
        await kiosk.plug(ANY_PROFILE, "1-1.1")
        assert state(await kiosk.final("1-1.1"), "1-1.1") == "PORT_STATE_READY"
        await kiosk.sim.UnplugPhone(_unplug("1-1.1"), timeout=10)
        await kiosk.until(lambda ps: ps["1-1.1"].state == P.PORT_STATE_ABSENT)
        assert await no_records(kiosk, tmp_path) == []


@pytest.mark.parametrize("fault", ["stall", "drop", "malformed-plist", "huge-length", "slow"])
async def test_a_faulty_iphone_fails_alone(tmp_path: Path, fault: str) -> None:
    params = {"seconds": "30"} if fault == "slow" else {}
    async with simulated_kiosk(tmp_path) as kiosk:
        await kiosk.plug(ANY_PROFILE, "1-1.1", delay=0.3)
        await kiosk.fault("1-1.1", fault, **params)
        await kiosk.plug("iphone-14-pro", "1-1.2")
        final = await kiosk.final("1-1.1", "1-1.2")
        health = await kiosk.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert (state(final, "1-1.1"), bool(final["1-1.1"].reason)) == ("PORT_STATE_ERROR", True)
    assert final["1-1.1"].reason != "OK"
    assert state(final, "1-1.2") == "PORT_STATE_READY"
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def _unplug(port: str) -> simulator_pb2.UnplugPhoneRequest:
    return simulator_pb2.UnplugPhoneRequest(port=port)
