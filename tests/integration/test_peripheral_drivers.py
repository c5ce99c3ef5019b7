"""The carousel and bin lock drivers against the simulated RS-485 line of ``python -m simulators``."""

from __future__ import annotations

import asyncio
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest

from hwd.drivers.binlock import ModbusBinLock
from hwd.drivers.carousel import ModbusCarousel
from hwd.drivers.modbus import RtuLink
from hwd.errors import DeviceNotReady, DeviceUnavailable
from hwd.model import CarouselState, CommandResult, ControllerIdentity, LockState
from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
READY_DEADLINE_S = 20.0
RPC_TIMEOUT_S = 10.0
#: Longest wait for the simulated hardware to get somewhere (a HOME plus a move of 4 slots).
MOTION_DEADLINE_S = 10.0
POLL_S = 0.05
TIMEOUT_S = 0.25
RETRIES = 2

T = TypeVar("T")


@dataclass
class Sim:
    """One simulator process: its control stub and the path of its RS-485 line."""

    proc: subprocess.Popen[bytes]
    channel: grpc.Channel
    control: simulator_pb2_grpc.SimulatorStub
    line: str

    def fault(self, device: str, fault: str, **params: str) -> None:
        self.control.Fault(simulator_pb2.FaultRequest(device=device, fault=fault, params=params), timeout=RPC_TIMEOUT_S)


def read_ready_line(proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    assert proc.stdout is not None
    fd, line = proc.stdout.fileno(), b""
    deadline = time.monotonic() + READY_DEADLINE_S
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        chunk = os.read(fd, 1) if remaining > 0 and select.select([fd], [], [], remaining)[0] else b""
        if not chunk:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"simulator not ready; stderr:\n{err.decode(errors='replace')}")
        line += chunk
    document: dict[str, Any] = json.loads(line)
    return document


def endpoint_of(devices: dict[str, Any], name: str) -> str:
    entry = devices[name]
    return str(entry if isinstance(entry, str) else entry["endpoint"])


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    """One simulator for the module; each test starts from Reset."""
    directory = tmp_path_factory.mktemp("sim")
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulators", "--dir", str(directory)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    try:
        document = read_ready_line(proc)
        with grpc.insecure_channel(document["control"]) as channel:
            yield Sim(
                proc, channel, simulator_pb2_grpc.SimulatorStub(channel), endpoint_of(document["devices"], "rs485")
            )
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=READY_DEADLINE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


@pytest.fixture
def fresh(sim: Sim) -> Sim:
    """The simulator, Reset: adapter plugged in, no faults, controllers as after power-on."""
    sim.control.Reset(simulator_pb2.ResetRequest(), timeout=RPC_TIMEOUT_S)
    return sim


@pytest.fixture
async def link(fresh: Sim) -> AsyncIterator[RtuLink]:
    """The line, opened (the port is locked exclusively: one owner at a time)."""
    line = RtuLink(fresh.line, timeout_s=TIMEOUT_S, retries=RETRIES, backoff_s=0.01)
    await line.open()
    yield line
    await line.close()


async def until(read: Callable[[], Any], done: Callable[[T], bool], what: str) -> T:
    """Reads until ``done`` holds: how a Modbus master sees progress (the slave cannot tell it)."""
    last: T | None = None
    try:
        async with asyncio.timeout(MOTION_DEADLINE_S):
            while True:
                last = await read()
                if done(last):
                    return last
                await asyncio.sleep(POLL_S)  # the bus has no notifications: polling is the protocol
    except TimeoutError:
        pytest.fail(f"{what} not reached within {MOTION_DEADLINE_S} s; last state {last}")


def at_slot(slot: int) -> Callable[[CarouselState], bool]:
    return lambda s: s.current_slot == slot and s.in_position and not s.moving


async def test_identities(link: RtuLink) -> None:
    assert await ModbusCarousel(link).identity() == ControllerIdentity(vendor=0x4857, model=0x0C01, firmware="1.2")
    assert await ModbusBinLock(link).identity() == ControllerIdentity(vendor=0x4857, model=0x0B01, firmware="1.3")


async def test_home_then_move(link: RtuLink) -> None:
    carousel = ModbusCarousel(link)
    await carousel.open()
    state = await carousel.state()
    assert state.slot_count == len(state.connectors) > 4
    with pytest.raises(DeviceNotReady):
        await carousel.move(1)  # not homed: refused, not counted
    assert (await carousel.state()).command_counter == state.command_counter
    counter = await carousel.home()
    assert counter == (state.command_counter + 1) % 65536
    await until(carousel.state, at_slot(0), "home")
    assert await carousel.move(3) == counter + 1
    final = await until(carousel.state, at_slot(3), "slot 3")
    assert (final.homed, final.target_slot, final.last_result) == (True, 3, CommandResult.OK)
    await carousel.close()


class GarbleFirstWrite(RtuLink):
    """A link that has the line corrupt the reply of its first register write."""

    def __init__(self, sim: Sim, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sim = sim
        self.armed = True
        self.writes = 0

    async def write_registers(
        self, unit: int, address: int, values: Sequence[int], *, retries: int | None = None
    ) -> None:
        if self.armed:
            self.armed = False
            self.sim.fault("rs485", "garbage")
        self.writes += 1
        await super().write_registers(unit, address, values, retries=retries)


async def test_lost_reply_does_not_double_a_command(fresh: Sim) -> None:
    garbling = GarbleFirstWrite(fresh, fresh.line, timeout_s=TIMEOUT_S, retries=RETRIES, backoff_s=0.01)
    await garbling.open()
    try:
        carousel = ModbusCarousel(garbling)
        before = (await carousel.state()).command_counter
        assert await carousel.home() == (before + 1) % 65536
        assert garbling.writes == 1, "the retry must see the counter moved and not write again"
        assert (await carousel.state()).command_counter == (before + 1) % 65536
    finally:
        await garbling.close()


async def test_unplug_then_replug_same_link(sim: Sim, link: RtuLink) -> None:
    lock = ModbusBinLock(link)
    await lock.state()
    sim.fault("rs485", "unplug")
    deadline = (RETRIES + 1) * (TIMEOUT_S + 0.1) + 1.0
    started = time.monotonic()
    with pytest.raises(DeviceUnavailable) as info:
        async with asyncio.timeout(deadline):
            await lock.state()
    assert time.monotonic() - started < deadline
    assert sim.line in info.value.message
    assert "RS-485" in info.value.hint
    sim.fault("rs485", "replug")
    state = await lock.state()
    assert state.bolt_extended


async def test_jam_shows_in_state(sim: Sim, link: RtuLink) -> None:
    carousel = ModbusCarousel(link)
    await carousel.home()
    await until(carousel.state, at_slot(0), "home")
    await carousel.move(4)
    sim.fault("carousel", "jam")
    state = await until(carousel.state, lambda s: s.jam, "jam")
    assert (state.fault, state.fault_name, state.moving, state.current_slot) == (True, "JAM", False, None)
    assert state.last_result is CommandResult.FAILED
    with pytest.raises(DeviceNotReady):
        await carousel.move(1)
    await carousel.clear_fault()
    state = await carousel.state()
    assert (state.jam, state.fault, state.homed) == (False, False, False)


async def test_bin_lock_unlock_lock_and_door(sim: Sim, link: RtuLink) -> None:
    lock = ModbusBinLock(link)
    state = await lock.state()
    assert (state.bolt_extended, state.door_closed, state.unlock_output) == (True, True, False)
    counter = await lock.unlock(60)
    state = await until(lock.state, lambda s: not s.bolt_extended, "bolt retracted")
    assert (state.unlock_output, state.relock_pending, state.command_counter) == (True, True, counter)
    assert 0 < state.relock_remaining_s <= 60
    sim.fault("binlock", "open-door")
    await lock.lock()
    state = await lock.state()
    assert (state.door_closed, state.unlock_output, state.bolt_extended) == (False, False, False)
    sim.fault("binlock", "close-door")
    state = await until(lock.state, lambda s: s.bolt_extended, "bolt extended")
    assert state.locked
    assert not state.forced


async def test_forced_door_latches_until_cleared(sim: Sim, link: RtuLink) -> None:
    lock = ModbusBinLock(link)
    sim.fault("binlock", "force-door")
    state: LockState = await until(lock.state, lambda s: s.forced, "forced")
    sim.fault("binlock", "close-door")
    await lock.clear_tamper()
    state = await until(lock.state, lambda s: not s.forced, "forced cleared")
    assert state.door_closed
