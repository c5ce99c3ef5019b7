"""The simulated bin lock controller against docs/hardware/binlock.md, on a fake clock."""

from __future__ import annotations

import pytest

from simulators import binlock as b
from simulators.device import SimDevice
from simulators.registers import ILLEGAL_DATA_ADDRESS, ILLEGAL_DATA_VALUE, ModbusError

ENDPOINT = "modbus-rtu:/run/hwd/sim/rs485?unit=2"
LOCKED = b.BOLT_EXTENDED | b.DOOR_CLOSED


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> b.BinLockSim:
    return b.BinLockSim(ENDPOINT, clock=clock)


def status(sim: b.BinLockSim) -> int:
    return sim.read_input(b.STATUS, 1)[0]


def command(sim: b.BinLockSim, cmd: int, arg: int = 0) -> None:
    sim.write_holding(b.COMMAND, [cmd, arg])


def test_identity_and_power_on_state(sim: b.BinLockSim) -> None:
    assert sim.read_input(0, 8) == [0x4857, 0x0B01, 0x0103, LOCKED, 0, 0, 0, 0]
    assert sim.read_holding(100, 3) == [0, 0, 30]
    assert (sim.name, sim.kind, sim.endpoint, sim.unit_id) == ("binlock", "modbus-binlock", ENDPOINT, 2)
    assert sim.state == "locked, door closed"
    assert isinstance(sim, SimDevice)


def test_out_of_map_and_bad_values(sim: b.BinLockSim) -> None:
    for address, count in [(8, 1), (7, 2), (100, 1), (70, 1)]:
        with pytest.raises(ModbusError) as refused:
            sim.read_input(address, count)
        assert refused.value.code == ILLEGAL_DATA_ADDRESS
    for address, count in [(99, 1), (102, 2), (103, 1), (0, 1)]:
        with pytest.raises(ModbusError) as refused:
            sim.read_holding(address, count)
        assert refused.value.code == ILLEGAL_DATA_ADDRESS
        with pytest.raises(ModbusError) as refused:
            sim.write_holding(address, [5] * count)
        assert refused.value.code == ILLEGAL_DATA_ADDRESS
    for address, values in [(100, [4, 0]), (100, [0]), (100, [b.CMD_UNLOCK, 601]), (102, [4]), (102, [601])]:
        with pytest.raises(ModbusError) as refused:
            sim.write_holding(address, values)
        assert refused.value.code == ILLEGAL_DATA_VALUE, (address, values)
    assert sim.read_holding(100, 3) == [0, 0, 30]
    assert sim.read_input(b.COMMAND_COUNTER, 1) == [0]


def test_unlock_retracts_then_relocks_after_the_countdown(sim: b.BinLockSim, clock: FakeClock) -> None:
    command(sim, b.CMD_UNLOCK, 12)
    unlocking = LOCKED | b.UNLOCK_OUTPUT | b.RELOCK_PENDING
    assert sim.read_input(b.STATUS, 5) == [unlocking, 0, 1, 12, 0]
    clock.advance(0.29)
    assert status(sim) & b.BOLT_EXTENDED
    clock.advance(0.01)
    assert status(sim) == b.DOOR_CLOSED | b.UNLOCK_OUTPUT | b.RELOCK_PENDING
    assert sim.read_input(b.RELOCK_REMAINING_S, 1) == [12]  # 11.7 s, rounded up
    assert sim.state == "unlocked, relock in 12 s"
    clock.advance(11.0)
    assert sim.read_input(b.RELOCK_REMAINING_S, 1) == [1]
    clock.advance(0.7)  # the countdown ends: output off, the bolt starts out
    assert sim.read_input(b.STATUS, 4) == [b.DOOR_CLOSED, 0, 1, 0]
    clock.advance(0.3)
    assert status(sim) == LOCKED


def test_unlock_zero_uses_relock_default(sim: b.BinLockSim, clock: FakeClock) -> None:
    sim.write_holding(b.RELOCK_DEFAULT_S, [5])
    sim.write_holding(b.ARGUMENT, [0])
    sim.write_holding(b.COMMAND, [b.CMD_UNLOCK])
    assert sim.read_input(b.RELOCK_REMAINING_S, 1) == [5]
    assert sim.read_holding(100, 3) == [b.CMD_UNLOCK, 0, 5]
    clock.advance(5.3)
    assert status(sim) == LOCKED


async def test_relock_waits_for_the_door(sim: b.BinLockSim, clock: FakeClock) -> None:
    command(sim, b.CMD_UNLOCK, 5)
    clock.advance(0.5)
    await sim.fault("open-door", {})
    assert status(sim) == b.UNLOCK_OUTPUT | b.RELOCK_PENDING
    clock.advance(2.0)
    assert sim.read_input(b.DOOR_OPEN_S, 1) == [2]
    clock.advance(10.0)  # the countdown ended with the door open
    assert sim.read_input(b.STATUS, 5) == [0, 0, 1, 0, 12]
    assert sim.state == "unlocked, door open"
    await sim.fault("close-door", {})
    assert sim.read_input(b.STATUS, 1) == [b.DOOR_CLOSED]
    assert sim.read_input(b.DOOR_OPEN_S, 1) == [0]
    clock.advance(0.3)
    assert status(sim) == LOCKED


def test_lock_cancels_the_countdown(sim: b.BinLockSim, clock: FakeClock) -> None:
    command(sim, b.CMD_UNLOCK, 30)
    clock.advance(1.0)
    command(sim, b.CMD_LOCK)
    assert sim.read_input(b.STATUS, 4) == [b.DOOR_CLOSED, 0, 2, 0]
    clock.advance(0.3)
    assert status(sim) == LOCKED
    assert sim.read_holding(b.COMMAND, 1) == [b.CMD_LOCK]


def test_counter_wraps(sim: b.BinLockSim) -> None:
    for _ in range(65536):
        command(sim, b.CMD_CLEAR_TAMPER)
    assert sim.read_input(b.COMMAND_COUNTER, 1) == [0]
    command(sim, b.CMD_LOCK)
    assert sim.read_input(b.COMMAND_COUNTER, 1) == [1]


async def test_forced_door_latches_until_clear_tamper(sim: b.BinLockSim, clock: FakeClock) -> None:
    await sim.fault("force-door", {})
    assert status(sim) == b.BOLT_EXTENDED | b.FORCED
    assert sim.state == "forced"
    await sim.fault("close-door", {})
    clock.advance(3.0)
    assert status(sim) == LOCKED | b.FORCED
    command(sim, b.CMD_CLEAR_TAMPER)
    assert status(sim) == LOCKED


async def test_opening_a_locked_door_is_forced(sim: b.BinLockSim) -> None:
    await sim.fault("open-door", {})
    assert status(sim) & b.FORCED


async def test_tamper_stays_while_the_switch_is_open(sim: b.BinLockSim) -> None:
    await sim.fault("tamper", {})
    assert status(sim) == LOCKED | b.TAMPER
    assert sim.state == "tampered"
    command(sim, b.CMD_CLEAR_TAMPER)
    assert status(sim) == LOCKED | b.TAMPER
    await sim.fault("tamper-clear", {})
    assert status(sim) == LOCKED | b.TAMPER  # latched
    command(sim, b.CMD_CLEAR_TAMPER)
    assert status(sim) == LOCKED


async def test_jammed_bolt_faults_after_one_second(sim: b.BinLockSim, clock: FakeClock) -> None:
    await sim.fault("jam-bolt", {})
    command(sim, b.CMD_UNLOCK, 20)
    clock.advance(0.99)
    assert sim.read_input(b.STATUS, 2) == [LOCKED | b.UNLOCK_OUTPUT | b.RELOCK_PENDING, 0]
    clock.advance(0.01)
    assert sim.read_input(b.STATUS, 2) == [LOCKED | b.UNLOCK_OUTPUT | b.RELOCK_PENDING | b.FAULT, 1]
    assert sim.state == "fault: bolt jammed"
    await sim.fault("clear", {})
    clock.advance(0.3)
    assert sim.read_input(b.STATUS, 2) == [b.DOOR_CLOSED | b.UNLOCK_OUTPUT | b.RELOCK_PENDING, 0]


async def test_power_cycle_is_fail_secure(sim: b.BinLockSim, clock: FakeClock) -> None:
    command(sim, b.CMD_UNLOCK, 60)
    clock.advance(0.3)
    await sim.fault("tamper", {})
    await sim.fault("power-cycle", {})
    assert sim.read_input(b.STATUS, 4) == [b.DOOR_CLOSED | b.TAMPER, 0, 0, 0]  # the switch is still open
    clock.advance(0.3)
    assert status(sim) == LOCKED | b.TAMPER
    await sim.fault("tamper-clear", {})
    await sim.fault("power-cycle", {})
    assert status(sim) == LOCKED


async def test_power_cycle_with_the_door_open_waits(sim: b.BinLockSim, clock: FakeClock) -> None:
    command(sim, b.CMD_UNLOCK, 60)
    clock.advance(0.3)
    await sim.fault("open-door", {})
    await sim.fault("power-cycle", {})
    clock.advance(1.0)
    assert status(sim) == 0
    await sim.fault("close-door", {})
    clock.advance(0.3)
    assert status(sim) == LOCKED


async def test_fault_api_and_reset(sim: b.BinLockSim, clock: FakeClock) -> None:
    assert "force-door" in sim.faults
    with pytest.raises(ValueError, match="accepted: open-door"):
        await sim.fault("earthquake", {})
    with pytest.raises(ValueError, match="parameters"):
        await sim.fault("tamper", {"level": "2"})
    await sim.fault("tamper", {})
    await sim.fault("jam-bolt", {})
    await sim.fault("open-door", {})
    clock.advance(100_000.0)
    assert sim.read_input(b.DOOR_OPEN_S, 1) == [65535]
    await sim.reset()
    assert sim.read_input(0, 8) == [0x4857, 0x0B01, 0x0103, LOCKED, 0, 0, 0, 0]
    command(sim, b.CMD_UNLOCK, 10)
    clock.advance(0.3)
    assert status(sim) == b.DOOR_CLOSED | b.UNLOCK_OUTPUT | b.RELOCK_PENDING
    await sim.start()
    await sim.stop()
