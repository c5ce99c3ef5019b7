"""The simulated carousel controller against docs/hardware/carousel.md, on a fake clock."""

from __future__ import annotations

import pytest

from simulators import carousel as c
from simulators.device import SimDevice
from simulators.registers import ILLEGAL_DATA_ADDRESS, ILLEGAL_DATA_VALUE, SLAVE_DEVICE_BUSY, ModbusError

ENDPOINT = "modbus-rtu:/run/hwd/sim/rs485?unit=1"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> c.CarouselSim:
    return c.CarouselSim(ENDPOINT, clock=clock)


def reg(sim: c.CarouselSim, address: int) -> int:
    return sim.read_input(address, 1)[0]


def status(sim: c.CarouselSim) -> int:
    return reg(sim, c.STATUS)


def command(sim: c.CarouselSim, cmd: int, arg: int = 0) -> None:
    sim.write_holding(c.COMMAND, [cmd, arg])


def homed(sim: c.CarouselSim, clock: FakeClock) -> c.CarouselSim:
    command(sim, c.CMD_HOME)
    clock.advance(1.0)
    return sim


def move(sim: c.CarouselSim, clock: FakeClock, slot: int) -> None:
    command(sim, c.CMD_MOVE, slot)
    clock.advance(5.0)
    assert reg(sim, c.CURRENT_SLOT) == slot


def test_identity_and_power_on_state(sim: c.CarouselSim) -> None:
    assert sim.read_input(0, 4) == [0x4857, 0x0C01, 0x0102, 8]
    assert sim.read_input(c.STATUS, 6) == [0, 0, 0xFFFF, 0xFFFF, 0, 0]
    assert sim.read_input(c.CONNECTOR, 20) == [1, 2, 3, 1, 2, 3, 4, 0] + [0] * 12
    assert sim.read_input(c.PORT_CURRENT_MA, 20) == [0] * 20
    assert sim.read_input(c.CABLE_TEST, 20) == [0] * 20
    assert sim.read_holding(100, 4) == [0, 0, 1500, 150]
    assert len(sim.read_input(0, 70)) == 70
    assert (sim.name, sim.kind, sim.endpoint, sim.unit_id) == ("carousel", "modbus-carousel", ENDPOINT, 1)
    assert sim.state == "not homed"
    assert isinstance(sim, SimDevice)


def test_custom_slots(clock: FakeClock) -> None:
    sim = c.CarouselSim(ENDPOINT, clock=clock, slots=(4, 0, 1))
    assert sim.read_input(c.SLOT_COUNT, 1) == [3]
    assert sim.read_input(c.CONNECTOR, 4) == [4, 0, 1, 0]
    with pytest.raises(ValueError, match="slots"):
        c.CarouselSim(ENDPOINT, clock=clock, slots=(5,))
    with pytest.raises(ValueError, match="slots"):
        c.CarouselSim(ENDPOINT, clock=clock, slots=(1,) * 17)


def test_home_takes_one_second_from_slot_zero(sim: c.CarouselSim, clock: FakeClock) -> None:
    command(sim, c.CMD_HOME)
    assert status(sim) == c.MOVING
    assert reg(sim, c.LAST_RESULT) == c.RESULT_RUNNING
    assert sim.state == "homing"
    clock.advance(0.99)
    assert status(sim) & c.MOVING
    clock.advance(0.01)
    assert status(sim) == c.HOMED | c.IN_POSITION
    assert sim.read_input(c.CURRENT_SLOT, 1) == [0]
    assert reg(sim, c.LAST_RESULT) == c.RESULT_OK
    assert sim.state == "homed at slot 0"
    assert sim.read_holding(c.COMMAND, 1) == [c.CMD_HOME]


def test_home_adds_one_step_per_slot_away_the_shorter_way(sim: c.CarouselSim, clock: FakeClock) -> None:
    move(homed(sim, clock), clock, 3)
    command(sim, c.CMD_HOME)
    assert not status(sim) & c.HOMED
    clock.advance(1.0 + 3 * 0.15 - 0.01)
    assert status(sim) & c.MOVING
    clock.advance(0.02)
    assert reg(sim, c.CURRENT_SLOT) == 0
    move(sim, clock, 6)  # two slots away backwards
    command(sim, c.CMD_HOME)
    clock.advance(1.0 + 2 * 0.15 - 0.01)
    assert status(sim) & c.MOVING
    clock.advance(0.02)
    assert status(sim) == c.HOMED | c.IN_POSITION


def test_move_takes_the_shorter_way(sim: c.CarouselSim, clock: FakeClock) -> None:
    homed(sim, clock)
    command(sim, c.CMD_MOVE, 7)
    assert status(sim) == c.HOMED | c.MOVING
    assert sim.read_input(c.CURRENT_SLOT, 2) == [0xFFFF, 7]
    assert sim.state == "moving to 7"
    clock.advance(0.14)
    assert reg(sim, c.CURRENT_SLOT) == 0xFFFF
    clock.advance(0.01)
    assert sim.read_input(c.STATUS, 6) == [c.HOMED | c.IN_POSITION, 0, 7, 7, 2, 0]
    command(sim, c.CMD_MOVE, 3)  # 4 forward or 4 back: either takes 4 steps
    clock.advance(4 * 0.15 - 0.01)
    assert reg(sim, c.CURRENT_SLOT) == 0xFFFF
    clock.advance(0.01)
    assert reg(sim, c.CURRENT_SLOT) == 3


def test_move_while_moving_retargets(sim: c.CarouselSim, clock: FakeClock) -> None:
    homed(sim, clock)
    command(sim, c.CMD_MOVE, 4)
    clock.advance(0.3)  # at slot 2
    command(sim, c.CMD_MOVE, 1)
    assert reg(sim, c.TARGET_SLOT) == 1
    clock.advance(0.15)
    assert sim.read_input(c.CURRENT_SLOT, 1) == [1]
    assert reg(sim, c.COMMAND_COUNTER) == 3


def test_move_refused_when_not_homed_or_out_of_range(sim: c.CarouselSim, clock: FakeClock) -> None:
    with pytest.raises(ModbusError) as refused:
        command(sim, c.CMD_MOVE, 2)
    assert refused.value.code == ILLEGAL_DATA_VALUE
    assert sim.read_input(c.COMMAND_COUNTER, 2) == [0, 0]
    assert sim.read_holding(c.COMMAND, 2) == [0, 0]  # the write is taken whole or not at all
    homed(sim, clock)
    with pytest.raises(ModbusError) as refused:
        command(sim, c.CMD_MOVE, 8)
    assert refused.value.code == ILLEGAL_DATA_VALUE
    assert reg(sim, c.COMMAND_COUNTER) == 1


def test_unknown_command_and_bad_values(sim: c.CarouselSim) -> None:
    for address, values in [(100, [0]), (100, [6, 0]), (102, [99]), (102, [3001]), (103, [19]), (103, [2001])]:
        with pytest.raises(ModbusError) as refused:
            sim.write_holding(address, values)
        assert refused.value.code == ILLEGAL_DATA_VALUE, (address, values)
    sim.write_holding(102, [100, 2000])
    assert sim.read_holding(102, 2) == [100, 150]  # STEP_TIME_MS: accepted, ignored
    assert reg(sim, c.COMMAND_COUNTER) == 0


def test_out_of_map_addresses(sim: c.CarouselSim) -> None:
    for address, count in [(70, 1), (60, 11), (200, 1), (99, 1)]:
        with pytest.raises(ModbusError) as refused:
            sim.read_input(address, count)
        assert refused.value.code == ILLEGAL_DATA_ADDRESS
    for address, count in [(99, 1), (99, 2), (104, 1), (103, 2), (0, 1)]:
        with pytest.raises(ModbusError) as refused:
            sim.read_holding(address, count)
        assert refused.value.code == ILLEGAL_DATA_ADDRESS
        with pytest.raises(ModbusError) as refused:
            sim.write_holding(address, [1] * count)
        assert refused.value.code == ILLEGAL_DATA_ADDRESS
    assert sim.read_input(69, 1) == [0]


def test_argument_write_and_single_command_write(sim: c.CarouselSim, clock: FakeClock) -> None:
    homed(sim, clock)
    sim.write_holding(c.ARGUMENT, [5])
    assert reg(sim, c.COMMAND_COUNTER) == 1
    sim.write_holding(c.COMMAND, [c.CMD_MOVE])  # FC06 uses the stored ARGUMENT
    clock.advance(3 * 0.15)
    assert reg(sim, c.CURRENT_SLOT) == 5
    assert sim.read_holding(c.COMMAND, 2) == [c.CMD_MOVE, 5]


def test_counter_counts_accepted_commands_and_wraps(sim: c.CarouselSim) -> None:
    for _ in range(65535):
        command(sim, c.CMD_STOP)
    assert reg(sim, c.COMMAND_COUNTER) == 65535
    command(sim, c.CMD_CLEAR_FAULT)
    assert reg(sim, c.COMMAND_COUNTER) == 0


def test_busy_during_home_except_stop(sim: c.CarouselSim, clock: FakeClock) -> None:
    command(sim, c.CMD_HOME)
    for cmd in (c.CMD_HOME, c.CMD_MOVE, c.CMD_TEST_CABLE, c.CMD_CLEAR_FAULT):
        with pytest.raises(ModbusError) as refused:
            command(sim, cmd)
        assert refused.value.code == SLAVE_DEVICE_BUSY
    assert reg(sim, c.COMMAND_COUNTER) == 1
    command(sim, c.CMD_STOP)
    assert sim.read_input(c.STATUS, 1) == [0]  # homing abandoned: not homed
    clock.advance(2.0)
    assert status(sim) == 0
    assert reg(sim, c.COMMAND_COUNTER) == 2


def test_stop_ends_a_move_at_the_next_slot(sim: c.CarouselSim, clock: FakeClock) -> None:
    homed(sim, clock)
    command(sim, c.CMD_MOVE, 4)
    clock.advance(0.2)  # between slot 1 and 2
    command(sim, c.CMD_STOP)
    assert status(sim) & c.MOVING
    assert reg(sim, c.LAST_RESULT) == c.RESULT_RUNNING
    clock.advance(0.1)
    assert sim.read_input(c.STATUS, 6) == [c.HOMED | c.IN_POSITION, 0, 2, 4, 3, 0]


async def test_jam_mid_move_then_clear_and_home(sim: c.CarouselSim, clock: FakeClock) -> None:
    homed(sim, clock)
    command(sim, c.CMD_MOVE, 3)
    clock.advance(0.2)  # past slot 1
    await sim.fault("jam", {})
    clock.advance(0.05)  # halfway between 1 and 2 at 0.225 s
    jammed = c.HOMED | c.FAULT | c.JAM
    assert sim.read_input(c.STATUS, 6) == [jammed, c.FAULT_JAM, 0xFFFF, 3, 2, c.RESULT_FAILED]
    assert sim.state == "fault: jam"
    with pytest.raises(ModbusError) as refused:
        command(sim, c.CMD_MOVE, 0)
    assert refused.value.code == ILLEGAL_DATA_VALUE
    command(sim, c.CMD_HOME)  # still obstructed: homing fails
    clock.advance(3.0)
    assert status(sim) & c.FAULT
    assert reg(sim, c.LAST_RESULT) == c.RESULT_FAILED
    await sim.fault("clear", {})
    command(sim, c.CMD_HOME)
    clock.advance(1.0 + 1.5 * 0.15)
    assert sim.read_input(c.STATUS, 3) == [c.HOMED | c.IN_POSITION, 0, 0]


async def test_jam_before_a_move_and_clear_fault_loses_the_index(sim: c.CarouselSim, clock: FakeClock) -> None:
    homed(sim, clock)
    await sim.fault("jam", {})
    command(sim, c.CMD_MOVE, 2)
    clock.advance(0.075)
    assert sim.read_input(c.STATUS, 3) == [c.HOMED | c.FAULT | c.JAM, c.FAULT_JAM, 0xFFFF]
    command(sim, c.CMD_CLEAR_FAULT)
    assert sim.read_input(c.STATUS, 3) == [0, 0, 0xFFFF]
    with pytest.raises(ModbusError):
        command(sim, c.CMD_MOVE, 2)


async def test_over_current_fault_cuts_the_port(sim: c.CarouselSim, clock: FakeClock) -> None:
    move(homed(sim, clock), clock, 2)
    await sim.fault("over-current", {})
    assert sim.read_input(c.STATUS, 2) == [c.HOMED | c.IN_POSITION | c.FAULT | c.OVER_CURRENT, c.FAULT_OVER_CURRENT]
    assert sim.state == "fault: over-current"
    with pytest.raises(ModbusError):
        command(sim, c.CMD_MOVE, 1)
    with pytest.raises(ModbusError):
        command(sim, c.CMD_TEST_CABLE, 2)  # port cut
    command(sim, c.CMD_HOME)  # HOME does not clear over-current
    clock.advance(1.0 + 2 * 0.15)
    assert reg(sim, c.FAULT_CODE) == c.FAULT_OVER_CURRENT
    command(sim, c.CMD_CLEAR_FAULT)
    assert sim.read_input(c.STATUS, 3) == [c.HOMED | c.IN_POSITION, 0, 0]


async def test_test_cable_pass_open_short(sim: c.CarouselSim, clock: FakeClock) -> None:
    homed(sim, clock)
    await sim.fault("bad-cable", {"slot": "1"})
    await sim.fault("short-cable", {"slot": "2"})
    command(sim, c.CMD_TEST_CABLE, 0)
    assert status(sim) & c.TESTING
    assert sim.read_input(c.PORT_CURRENT_MA, 2) == [450, 0]
    clock.advance(0.2)
    assert status(sim) == c.HOMED | c.IN_POSITION
    assert sim.read_input(c.PORT_CURRENT_MA, 1) == [0]
    assert sim.read_input(c.CABLE_TEST, 3) == [c.TEST_PASS, 0, 0]
    assert reg(sim, c.LAST_RESULT) == c.RESULT_OK
    move(sim, clock, 1)
    command(sim, c.CMD_TEST_CABLE, 1)
    assert reg(sim, c.PORT_CURRENT_MA + 1) == 0
    clock.advance(0.2)
    assert reg(sim, c.CABLE_TEST + 1) == c.TEST_OPEN
    move(sim, clock, 2)
    command(sim, c.CMD_TEST_CABLE, 2)
    assert reg(sim, c.PORT_CURRENT_MA + 2) > 1500
    clock.advance(0.2)
    assert sim.read_input(c.CABLE_TEST, 3) == [c.TEST_PASS, c.TEST_OPEN, c.TEST_SHORT]
    assert sim.read_input(c.STATUS, 2) == [c.HOMED | c.IN_POSITION | c.FAULT | c.OVER_CURRENT, 2]
    assert reg(sim, c.LAST_RESULT) == c.RESULT_FAILED
    assert reg(sim, c.PORT_CURRENT_MA + 2) == 0


def test_test_cable_needs_the_slot_in_position(sim: c.CarouselSim, clock: FakeClock) -> None:
    with pytest.raises(ModbusError) as refused:
        command(sim, c.CMD_TEST_CABLE, 0)
    assert refused.value.code == ILLEGAL_DATA_VALUE
    homed(sim, clock)
    for slot in (1, 8, 0xFFFF):
        with pytest.raises(ModbusError):
            command(sim, c.CMD_TEST_CABLE, slot)
    assert reg(sim, c.COMMAND_COUNTER) == 1


def test_empty_slot_tests_open(clock: FakeClock) -> None:
    sim = c.CarouselSim(ENDPOINT, clock=clock, slots=(0, 1))
    homed(sim, clock)
    command(sim, c.CMD_TEST_CABLE, 0)
    clock.advance(0.2)
    assert reg(sim, c.CABLE_TEST) == c.TEST_OPEN


async def test_fault_api(sim: c.CarouselSim, clock: FakeClock) -> None:
    assert sim.faults == ["jam", "over-current", "bad-cable", "short-cable", "clear", "power-cycle"]
    with pytest.raises(ValueError, match="accepted: jam, over-current"):
        await sim.fault("melt", {})
    with pytest.raises(ValueError, match="slot"):
        await sim.fault("over-current", {})  # not homed: no slot in position
    with pytest.raises(ValueError, match="slot"):
        await sim.fault("bad-cable", {"slot": "8"})
    with pytest.raises(ValueError, match="parameters"):
        await sim.fault("bad-cable", {"slot": "1", "port": "2"})
    with pytest.raises(ValueError, match="parameters"):
        await sim.fault("jam", {"slot": "1"})


async def test_power_cycle_and_reset(sim: c.CarouselSim, clock: FakeClock) -> None:
    move(homed(sim, clock), clock, 2)
    sim.write_holding(c.OVER_CURRENT_LIMIT_MA, [900])
    await sim.fault("power-cycle", {})
    assert sim.read_input(c.STATUS, 6) == [0, 0, 0xFFFF, 0xFFFF, 0, 0]
    assert sim.read_holding(100, 3) == [0, 0, 1500]
    command(sim, c.CMD_HOME)  # the turntable stayed at slot 2
    clock.advance(1.0 + 2 * 0.15)
    assert reg(sim, c.CURRENT_SLOT) == 0
    await sim.fault("jam", {})
    await sim.reset()
    move(homed(sim, clock), clock, 1)  # the obstruction went with the reset
    await sim.start()
    await sim.stop()
