"""SimulatorPhones against a real simulated kiosk (``python -m simulators``): its WatchPhones stream
becomes the same PortEvents udev gives on a kiosk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import grpc
import pytest

from hwd.discovery import SimulatorPhones
from hwd.errors import DeviceUnavailable
from hwd.model.phones import Platform, PortEvent
from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc
from tests.integration.test_simulator_process import RPC_TIMEOUT_S, SimProcess, simulator_fixtures

kiosk, control = simulator_fixtures("simbus")
EVENT_TIMEOUT_S = 10.0


async def next_event(stream: AsyncGenerator[PortEvent, None]) -> PortEvent:
    async with asyncio.timeout(EVENT_TIMEOUT_S):
        return await anext(stream)


async def until_error(stream: AsyncGenerator[PortEvent, None]) -> tuple[list[PortEvent], DeviceUnavailable]:
    """The events a stream gives before it fails, and its error (a stream that stays open fails the test)."""
    seen: list[PortEvent] = []
    try:
        while True:
            seen.append(await next_event(stream))
    except DeviceUnavailable as exc:
        return seen, exc


def plug(stub: simulator_pb2_grpc.SimulatorStub, profile: str, port: str = "") -> simulator_pb2.SimPhone:
    request = simulator_pb2.PlugPhoneRequest(profile=profile, port=port)
    return stub.PlugPhone(request, timeout=RPC_TIMEOUT_S).phone


def attached(phone: simulator_pb2.SimPhone) -> PortEvent:
    """What discovery must say about a phone the simulator plugged in."""
    assert phone.platform == "android"
    assert phone.endpoint.startswith("tcp:127.0.0.1:")
    return PortEvent(
        port=phone.port,
        attached=True,
        platform=Platform.ANDROID,
        serial=phone.serial,
        endpoint=phone.endpoint,
        description=f"simulated {phone.profile}",
    )


async def test_phones_plugged_before_the_stream_come_first_then_each_plug_and_unplug(
    kiosk: dict[str, Any], control: simulator_pb2_grpc.SimulatorStub
) -> None:
    first = plug(control, "pixel-7", "1-1.3")
    stream = SimulatorPhones(kiosk["control"]).events()
    try:
        assert await next_event(stream) == attached(first)
        second = plug(control, "galaxy-s21")
        assert await next_event(stream) == attached(second)
        assert second.port != first.port
        control.UnplugPhone(simulator_pb2.UnplugPhoneRequest(port=first.port), timeout=RPC_TIMEOUT_S)
        assert await next_event(stream) == PortEvent(first.port, attached=False)
    finally:
        await stream.aclose()


async def test_a_stopped_simulator_ends_the_stream_with_an_error(tmp_path: Path) -> None:
    sim = SimProcess(tmp_path / "sim")
    try:
        target = sim.ready()["control"]
        with grpc.insecure_channel(target) as channel:
            phone = plug(simulator_pb2_grpc.SimulatorStub(channel), "pixel-7")
        stream = SimulatorPhones(target).events()
        assert await next_event(stream) == attached(phone)  # the stream is open
        sim.proc.terminate()
        seen, error = await until_error(stream)
        await stream.aclose()
        assert seen in ([], [PortEvent(phone.port, attached=False)])  # it may unplug its phone as it stops
        assert "phone stream" in error.message
    finally:
        rc, _ = sim.finish()
    assert rc == 0, sim.stderr


async def test_an_unreachable_simulator_is_unavailable(tmp_path: Path) -> None:
    stream = SimulatorPhones(f"unix:{tmp_path / 'absent.sock'}").events()
    with pytest.raises(DeviceUnavailable, match="UNAVAILABLE"):
        await next_event(stream)
    await stream.aclose()
