"""The Phones service of a real daemon on the simulated kiosk: simulated phones plugged into simulated
ports reach READY (or LOCKED) over gRPC with their profile's values, refusals and ignored prompts are
DENIED, an unplug mid-read leaves nothing behind, and a faulty phone fails alone."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hwd.config import load_config
from hwd.daemon import Daemon
from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc
from hwd.rpc.pb.hwd.v1 import common_pb2, kiosk_pb2, kiosk_pb2_grpc, phones_pb2, phones_pb2_grpc
from simulators.android.profiles import AndroidProfile, load_profiles
from tests.helpers import error_info

P = phones_pb2
FINAL = {P.PORT_STATE_READY, P.PORT_STATE_LOCKED, P.PORT_STATE_DENIED, P.PORT_STATE_UNSUPPORTED, P.PORT_STATE_ERROR}
AVAILABILITY_NAMES = {"UNKNOWN", "NOT_SUPPORTED_ON_OS", "NEEDS_TRUST"}
GUARD_S = 60  # ends a hung test; not a timing goal


@dataclass
class Kiosk:
    """A daemon on the simulated kiosk, in the test's event loop, with stubs on ui.sock and the simulator."""

    daemon: Daemon
    phones: phones_pb2_grpc.PhonesStub
    kiosk: kiosk_pb2_grpc.KioskStub
    health: health_pb2_grpc.HealthStub
    sim: simulator_pb2_grpc.SimulatorStub
    watch: AsyncIterator[phones_pb2.Port]

    async def plug(self, profile: str, port: str, trust: str = "accept", delay: float = 0.0) -> simulator_pb2.SimPhone:
        request = simulator_pb2.PlugPhoneRequest(profile=profile, port=port, trust=trust, trust_delay_s=delay)
        return (await self.sim.PlugPhone(request, timeout=10)).phone

    async def fault(self, port: str, fault: str, **params: str) -> None:
        request = simulator_pb2.FaultRequest(device="phones", fault=fault, params={"port": port, **params})
        await self.sim.Fault(request, timeout=10)

    async def until(self, done: Callable[[dict[str, phones_pb2.Port]], bool]) -> dict[str, phones_pb2.Port]:
        """Follows WatchPorts until ``done`` holds for the latest state of every port."""
        latest: dict[str, phones_pb2.Port] = {}
        async with asyncio.timeout(GUARD_S):
            async for port in self.watch:
                latest[port.port] = port
                if done(latest):
                    return latest
        raise AssertionError("WatchPorts ended")

    async def final(self, *ports: str) -> dict[str, phones_pb2.Port]:
        """Waits until every port of ``ports`` ended its session (READY, LOCKED, DENIED, UNSUPPORTED, ERROR)."""
        return await self.until(lambda latest: all(p in latest and latest[p].state in FINAL for p in ports))


@contextlib.asynccontextmanager
async def simulated_kiosk(tmp: Path, **phones: Any) -> AsyncIterator[Kiosk]:
    """Starts ``hwd serve --simulated``'s daemon in this loop, with short phone deadlines; stops it on exit."""
    dirs = {"socket_dir": tmp / "run", "state_dir": tmp / "state"}
    sections = {"daemon": dirs, "phones": {"trust_timeout_s": 2.0, "identify_timeout_s": 4.0, **phones}}
    daemon = Daemon(load_config(None, env={}, overrides=sections), simulated=True)
    task = asyncio.create_task(daemon.run(handle_signals=False))
    ready = asyncio.create_task(daemon.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()
    assert daemon.simulator is not None
    async with (
        grpc.aio.insecure_channel(f"unix:{dirs['socket_dir'] / 'ui.sock'}") as ui,
        grpc.aio.insecure_channel(daemon.simulator.endpoints["control"]) as control,
    ):
        call = phones_pb2_grpc.PhonesStub(ui).WatchPorts(P.WatchPortsRequest())
        try:
            yield Kiosk(
                daemon, phones_pb2_grpc.PhonesStub(ui), kiosk_pb2_grpc.KioskStub(ui), health_pb2_grpc.HealthStub(ui),
                simulator_pb2_grpc.SimulatorStub(control), aiter(call),
            )  # fmt: skip
        finally:
            call.cancel()
            daemon.stopping.set()
            await task


def _field_matches(field: phones_pb2.ReportField, expected: Any) -> bool:
    """Whether a report field says what the profile expects: a value, or an availability by name."""
    if isinstance(expected, str) and expected in AVAILABILITY_NAMES:
        return P.Availability.Name(field.availability) == f"AVAILABILITY_{expected}"
    which = field.WhichOneof("value")
    if field.availability != P.AVAILABILITY_AVAILABLE or which is None:
        return False
    value = getattr(field, which)
    if isinstance(expected, float):
        return which == "number" and math.isclose(value, expected, rel_tol=1e-6)
    return type(value) is type(expected) and value == expected


def _mismatches(report: phones_pb2.PhoneReport, profile: AndroidProfile) -> dict[str, tuple[Any, str]]:
    expected = {
        "manufacturer": profile.manufacturer, "model": profile.model, "os_version": profile.os_version,
        "serial": profile.serial, **profile.expected,
    }  # fmt: skip
    names = {f.name for f in P.PhoneReport.DESCRIPTOR.fields}
    return {
        name: (want, str(getattr(report, name)).replace("\n", " "))
        for name, want in expected.items()
        if name in names and not _field_matches(getattr(report, name), want)
    }


def _profiles() -> dict[str, AndroidProfile]:
    return load_profiles()


# --- every profile ------------------------------------------------------------------------------


async def test_every_android_profile_is_identified_with_its_profile_values(tmp_path: Path) -> None:
    async with simulated_kiosk(tmp_path) as k:
        listed = (await k.sim.ListProfiles(simulator_pb2.ListProfilesRequest(), timeout=10)).profiles
        android = {p.name: p for p in listed if p.platform == "android"}
        profiles = _profiles()
        assert set(android) == set(profiles)
        ports = {name: f"1-1.{n}" for n, name in enumerate(sorted(android), start=1)}
        for name, port in ports.items():
            await k.plug(name, port)

        latest = await k.final(*ports.values())

        for name, port in ports.items():
            got, profile = latest[port], profiles[name]
            locked = profile.expected.get("frp_likely") is True
            want = P.PORT_STATE_LOCKED if locked else P.PORT_STATE_READY
            assert (got.state, got.reason) == (want, "FRP_LIKELY" if locked else "OK"), (name, got.detail)
            assert (got.platform, got.report.platform) == (P.PLATFORM_ANDROID, P.PLATFORM_ANDROID)
            assert len(got.session_id) == 32
            assert (got.report.manufacturer.text, got.report.model.text) == (android[name].manufacturer,
                                                                            android[name].model)  # fmt: skip
            assert _mismatches(got.report, profile) == {}, name
        listed_ports = (await k.phones.ListPorts(P.ListPortsRequest(), timeout=10)).ports
        assert [p.port for p in listed_ports] == sorted(ports.values())
        status = await k.kiosk.GetStatus(kiosk_pb2.GetStatusRequest(), timeout=10)
        rows = {d.device: d.state for d in status.devices if d.device.startswith("port:")}
        assert rows == {f"port:{port}": common_pb2.DEVICE_STATE_ONLINE for port in ports.values()}


# --- trust ----------------------------------------------------------------------------------------


async def test_a_refused_prompt_is_denied(tmp_path: Path) -> None:
    async with simulated_kiosk(tmp_path) as k:
        await k.plug("pixel-7", "1-1.5", trust="refuse")

        denied = (await k.final("1-1.5"))["1-1.5"]

        assert (denied.state, denied.reason) == (P.PORT_STATE_DENIED, "TRUST_REFUSED")
        assert denied.recovery_hint


async def test_an_ignored_prompt_waits_with_a_deadline_then_is_denied(tmp_path: Path) -> None:
    async with simulated_kiosk(tmp_path, trust_timeout_s=1.5) as k:
        await k.plug("galaxy-s21", "1-1.7", trust="ignore")

        waiting = (await k.until(lambda s: "1-1.7" in s and s["1-1.7"].state == P.PORT_STATE_AWAITING_TRUST))["1-1.7"]
        assert waiting.trust_prompt
        assert waiting.HasField("trust_deadline")
        assert waiting.trust_deadline.ToNanoseconds() > waiting.since.ToNanoseconds()
        got = await k.phones.GetPort(P.GetPortRequest(port="1-1.7"), timeout=10)
        assert got.port.session_id == waiting.session_id
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await k.phones.Refresh(P.RefreshRequest(port="1-1.7"), timeout=10)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION

        denied = (await k.final("1-1.7"))["1-1.7"]
        assert (denied.state, denied.reason) == (P.PORT_STATE_DENIED, "TRUST_TIMEOUT")
        assert not denied.HasField("trust_deadline")


# --- unplug, refresh -----------------------------------------------------------------------------


def _sockets_to(endpoint: str) -> int:
    """How many TCP connections this process holds to ``endpoint`` ("tcp:127.0.0.1:PORT")."""
    port = int(endpoint.rsplit(":", 1)[1])
    inodes: set[str] = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table, encoding="ascii") as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if int(cols[2].rsplit(":", 1)[1], 16) == port:
                    inodes.add(cols[9])
    mine = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            mine.add(os.readlink(f"/proc/self/fd/{fd}").removeprefix("socket:[").removesuffix("]"))
    return len(inodes & mine)


async def test_an_unplug_mid_identification_is_absent_and_leaves_nothing(tmp_path: Path) -> None:
    async with simulated_kiosk(tmp_path, trust_timeout_s=30.0, identify_timeout_s=60.0) as k:
        phone = await k.plug("pixel-7", "1-1.3", delay=0.5)
        await k.until(lambda s: "1-1.3" in s and s["1-1.3"].state == P.PORT_STATE_AWAITING_TRUST)
        await k.fault("1-1.3", "slow", seconds="3")  # every packet 3 s late: the read takes long
        await k.until(lambda s: s["1-1.3"].state == P.PORT_STATE_IDENTIFYING)
        assert _sockets_to(phone.endpoint) >= 1

        await k.sim.UnplugPhone(simulator_pb2.UnplugPhoneRequest(port="1-1.3"), timeout=10)
        absent = (await k.until(lambda s: s["1-1.3"].state == P.PORT_STATE_ABSENT))["1-1.3"]

        assert (absent.session_id, absent.HasField("report")) == ("", False)
        assert k.daemon.phones is not None
        assert k.daemon.phones.running() == []
        assert _sockets_to(phone.endpoint) == 0

        again = await k.plug("pixel-7", "1-1.3")
        ready = (await k.final("1-1.3"))["1-1.3"]
        assert ready.state == P.PORT_STATE_READY
        assert ready.session_id not in ("", absent.session_id)
        assert again.port == "1-1.3"


async def test_refresh_reads_a_ready_phone_again_in_its_session(tmp_path: Path) -> None:
    async with simulated_kiosk(tmp_path) as k:
        await k.plug("moto-g", "1-1.2")
        ready = (await k.final("1-1.2"))["1-1.2"]

        again = (await k.phones.Refresh(P.RefreshRequest(port="1-1.2"), timeout=30)).port

        assert (again.state, again.session_id) == (P.PORT_STATE_READY, ready.session_id)
        assert again.report.serial == ready.report.serial
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await k.phones.GetPort(P.GetPortRequest(port="7-7"), timeout=10)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_info(unknown.value).reason == "UNKNOWN_PORT"


# --- faults ---------------------------------------------------------------------------------------

FAULTS: dict[str, dict[str, str]] = {
    "stall": {}, "drop": {}, "garbage": {}, "bad-checksum": {}, "oversized": {}, "endless": {},
    "slow": {"seconds": "10"},
}  # fmt: skip


async def test_each_fault_fails_its_port_only_while_another_phone_is_read(tmp_path: Path) -> None:
    async with simulated_kiosk(tmp_path) as k:
        ports = {fault: f"1-1.{n}" for n, fault in enumerate(FAULTS, start=1)}
        for port in ports.values():
            await k.plug("pixel-7", port)
        ready = await k.final(*ports.values())
        assert {p.state for p in ready.values()} == {P.PORT_STATE_READY}
        for fault, port in ports.items():  # the phone trusts the kiosk now: the fault hits the next read
            await k.fault(port, fault, **FAULTS[fault])

        refreshed = await asyncio.gather(
            *(k.phones.Refresh(P.RefreshRequest(port=port), timeout=GUARD_S) for port in ports.values())
        )
        await k.plug("galaxy-a52", "1-1.20")
        healthy = (await k.final("1-1.20"))["1-1.20"]

        failed = {fault: (r.port.state, r.port.reason) for fault, r in zip(ports, refreshed, strict=True)}
        assert {fault: state for fault, (state, _) in failed.items()} == dict.fromkeys(FAULTS, P.PORT_STATE_ERROR)
        assert all(reason.startswith("PHONE_") for _, reason in failed.values()), failed
        assert all(r.port.session_id == ready[r.port.port].session_id for r in refreshed)
        assert healthy.state == P.PORT_STATE_READY
        assert healthy.report.model.text == _profiles()["galaxy-a52"].model
        health = await k.health.Check(health_pb2.HealthCheckRequest(service="hwd.v1.Phones"), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        status = await k.kiosk.GetStatus(kiosk_pb2.GetStatusRequest(), timeout=10)
        assert status.daemon.state == common_pb2.DEVICE_STATE_ONLINE
        assert k.daemon.phones is not None
        assert k.daemon.phones.running() == []


async def test_a_prompt_never_answered_is_denied_for_timeout(tmp_path: Path) -> None:
    async with simulated_kiosk(tmp_path, trust_timeout_s=1.5) as k:
        await k.plug("nokia-7-1", "1-1.9", delay=1.0)
        await k.fault("1-1.9", "prompt-never-answered")  # before the daemon reaches the prompt

        denied = (await k.final("1-1.9"))["1-1.9"]

        assert (denied.state, denied.reason) == (P.PORT_STATE_DENIED, "TRUST_TIMEOUT")
