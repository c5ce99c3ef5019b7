"""The simulated cable carousel controller (Modbus unit 1, docs/hardware/carousel.md), with no I/O.

An RTU line serves it as a :class:`simulators.registers.RegisterUnit`; the kiosk drives it as a
:class:`simulators.device.SimDevice`. Physics are lazy: a move or a cable test stores when it
began and every public method first brings the model up to ``clock()``, so a fake clock makes it
deterministic. MOVE takes the shorter way round at one step per slot; HOME travels the shorter way
to slot 0, then spends 1 s finding the index; a jam stalls the turntable at the next point halfway
between two slots (a HOME that cannot turn fails with FAULT_CODE 3).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from simulators.registers import ILLEGAL_DATA_ADDRESS, ILLEGAL_DATA_VALUE, SLAVE_DEVICE_BUSY, ModbusError

UNIT_ID = 1

# Input registers (function 04); CONNECTOR, PORT_CURRENT_MA and CABLE_TEST are blocks of 20.
VENDOR_ID, MODEL, FIRMWARE, SLOT_COUNT, STATUS, FAULT_CODE, CURRENT_SLOT, TARGET_SLOT = range(8)
COMMAND_COUNTER, LAST_RESULT = 8, 9
CONNECTOR, PORT_CURRENT_MA, CABLE_TEST, INPUT_END = 10, 30, 50, 70
BLOCK_SIZE = 20
# Holding registers (functions 03, 06, 16).
COMMAND, ARGUMENT, OVER_CURRENT_LIMIT_MA, STEP_TIME_MS = range(100, 104)
HOLDING_END = 104

VENDOR_HW, MODEL_CAROUSEL, FIRMWARE_1_2 = 0x4857, 0x0C01, 0x0102

# STATUS bits 0..6, then the values of FAULT_CODE, COMMAND, LAST_RESULT, CABLE_TEST and CONNECTOR.
HOMED, MOVING, IN_POSITION, FAULT, JAM, OVER_CURRENT, TESTING = (1 << bit for bit in range(7))
FAULT_NONE, FAULT_JAM, FAULT_OVER_CURRENT, FAULT_HOMING_FAILED = range(4)
CMD_HOME, CMD_MOVE, CMD_STOP, CMD_TEST_CABLE, CMD_CLEAR_FAULT = range(1, 6)
RESULT_OK, RESULT_RUNNING, RESULT_FAILED = range(3)
TEST_NEVER, TEST_PASS, TEST_OPEN, TEST_SHORT = range(4)
CONNECTOR_EMPTY, CONNECTOR_TYPES = 0, range(5)  # 1 USB-C, 2 Lightning, 3 micro-USB, 4 USB-A

NO_SLOT = 0xFFFF
DEFAULT_LIMIT_MA, LIMIT_RANGE = 1500, range(100, 3001)
DEFAULT_STEP_MS, STEP_RANGE = 150, range(20, 2001)
STEP_S = DEFAULT_STEP_MS / 1000
HOME_SEARCH_S, CABLE_TEST_S, GOOD_CABLE_MA = 1.0, 0.2, 450
#: What a shorted cable draws while powered: above any allowed OVER_CURRENT_LIMIT_MA.
SHORT_CABLE_MA = 4000
DEFAULT_SLOTS = (1, 2, 3, 1, 2, 3, 4, 0)
FAULTS = ("jam", "over-current", "bad-cable", "short-cable", "clear", "power-cycle")
#: Tolerance on times and positions, so float sums of a fake clock land on their events.
EPS = 1e-6
Clock = Callable[[], float]


@dataclass
class _Motion:
    """One HOME or MOVE: from ``origin`` (slots, unwrapped) ``distance`` slots in ``direction``."""

    homing: bool
    start: float
    origin: float
    direction: int
    distance: float
    target: int
    stall_at: float | None = None

    @property
    def end(self) -> float:
        return self.start + self.distance * STEP_S + (HOME_SEARCH_S if self.homing else 0.0)

    def at(self, t: float) -> float:
        """Position at ``t``, in slots, unwrapped."""
        return self.origin + self.direction * min(self.distance, max(0.0, (t - self.start) / STEP_S))

    def stall_after(self, t: float) -> float:
        """When an obstruction met at ``t`` stops the turntable: at the next half-slot position ahead,
        else a move ends normally (the obstruction waits for the next) and a HOME fails in its search."""
        here = self.at(t)
        half = math.ceil(here - 0.5 - EPS) + 0.5 if self.direction > 0 else math.floor(here + 0.5 + EPS) - 0.5
        if (way := abs(half - self.origin)) < self.distance - EPS:
            return self.start + way * STEP_S
        return max(t, self.end - HOME_SEARCH_S / 2) if self.homing else math.inf


def _shorter_way(position: float, target: int, slots: int) -> tuple[int, float]:
    """Direction (+1/-1) and distance in slots from ``position`` to ``target``; ties go forward."""
    forward, backward = (target - position) % slots, (position - target) % slots
    return (1, forward) if forward <= backward + EPS else (-1, backward)


def _check_range(address: int, count: int, start: int, end: int) -> None:
    if address < start or address + count > end:
        raise ModbusError(ILLEGAL_DATA_ADDRESS, f"registers {address}..{address + count - 1} are not in the map")


def _block(values: list[int] | tuple[int, ...]) -> list[int]:
    return list(values) + [0] * (BLOCK_SIZE - len(values))


class CarouselSim:
    """The reference cable carousel: ``RegisterUnit`` for unit id 1, and a ``SimDevice``.

    Faults: ``jam`` (an obstruction: the current or next move stalls between slots); ``over-current``,
    ``bad-cable``, ``short-cable`` (``slot``, default the slot in position: trips that port / its cable
    is open / shorted, as TEST_CABLE finds); ``clear`` (obstruction and cables fixed, latched faults
    kept); ``power-cycle`` (controller at power-on, not homed; turntable, obstruction, cables unchanged).
    """

    name = "carousel"
    kind = "modbus-carousel"
    unit_id = UNIT_ID

    def __init__(self, endpoint: str, *, clock: Clock = time.monotonic, slots: tuple[int, ...] = DEFAULT_SLOTS) -> None:
        """:param endpoint: where the line serves the unit, e.g. ``modbus-rtu:/run/hwd/sim/rs485?unit=1``.
        :param clock: seconds, monotonic; every timing derives from it.
        :param slots: the connector code (0..4, as in CONNECTOR) of each of 1 to 16 slots.
        :raises ValueError: a bad slot list.
        """
        if not 1 <= len(slots) <= 16 or any(c not in CONNECTOR_TYPES for c in slots):
            raise ValueError(f"slots must be 1 to 16 connector codes 0..4, not {slots!r}")
        self.endpoint = endpoint
        self._clock = clock
        self._slots = tuple(slots)
        self._reset_world()
        self._power_on()

    def _reset_world(self) -> None:
        """The physical side: turntable at slot 0, no obstruction, every cable sound."""
        self._position = 0.0
        self._obstructed = False
        self._open_cables: set[int] = set()
        self._short_cables: set[int] = set()

    def _power_on(self) -> None:
        """The controller side, as after power-on: not homed, defaults, nothing latched."""
        self._homed = False
        self._motion: _Motion | None = None
        self._test: tuple[int, float] | None = None
        self._faults: set[int] = set()
        self._fault_code = FAULT_NONE
        self._cut_ports: set[int] = set()
        self._target = NO_SLOT
        self._counter = self._command = self._argument = 0
        self._last_result = RESULT_OK
        self._limit_ma = DEFAULT_LIMIT_MA
        self._results = [TEST_NEVER] * len(self._slots)

    @property
    def state(self) -> str:
        """E.g. ``"homed at slot 3"``, ``"moving to 5"``, ``"fault: jam"``, ``"not homed"``."""
        self._settle()
        if self._fault_code:
            names = {FAULT_JAM: "jam", FAULT_OVER_CURRENT: "over-current", FAULT_HOMING_FAILED: "homing failed"}
            return f"fault: {names[self._fault_code]}"
        if self._motion is not None:
            return "homing" if self._motion.homing else f"moving to {self._motion.target}"
        if self._test is not None:
            return f"testing cable at slot {self._test[0]}"
        slot = self._current_slot()
        return f"homed at slot {slot}" if slot != NO_SLOT else "not homed"

    async def start(self) -> None:
        """Nothing to open: the RTU line that serves the unit owns the transport."""

    async def stop(self) -> None:
        """Nothing to release."""

    async def reset(self) -> None:
        """Back to the power-on state with the turntable at slot 0 and every injected fault gone."""
        self._settle()
        self._reset_world()
        self._power_on()

    @property
    def faults(self) -> list[str]:
        """Names :meth:`fault` accepts."""
        return list(FAULTS)

    async def fault(self, name: str, params: Mapping[str, str]) -> None:
        """Inject ``name`` (see the class docstring) now.

        :raises ValueError: an unknown fault, a bad parameter, or no ``slot`` and none in position.
        """
        if name not in FAULTS:
            raise ValueError(f"unknown carousel fault {name!r}; accepted: {', '.join(FAULTS)}")
        self._settle()
        act = {"over-current": self._trip, "bad-cable": self._open_cables.add, "short-cable": self._short_cables.add}
        if name in act:
            act[name](self._slot_param(params))
        elif params:
            raise ValueError(f"fault {name!r} takes no parameters, got {sorted(params)}")
        elif name == "power-cycle":
            self._position = self._where()
            self._power_on()
        else:
            self._obstructed = name == "jam"
            if name == "clear":
                self._open_cables.clear()
                self._short_cables.clear()
            if self._motion is not None:
                self._motion.stall_at = self._motion.stall_after(self._now) if self._obstructed else None

    def _slot_param(self, params: Mapping[str, str]) -> int:
        if set(params) - {"slot"}:
            raise ValueError(f"unknown parameters {sorted(set(params) - {'slot'})}; accepted: slot")
        in_position = self._current_slot()
        text = params.get("slot", str(in_position) if in_position != NO_SLOT else "(none in position)")
        if not text.isdigit() or int(text) >= len(self._slots):
            raise ValueError(f"slot must be 0 to {len(self._slots) - 1}, not {text}")
        return int(text)

    def read_input(self, address: int, count: int) -> list[int]:
        """Input registers from ``address`` (0..69 are in the map); ILLEGAL_DATA_ADDRESS outside it."""
        self._settle()
        _check_range(address, count, 0, INPUT_END)
        n = len(self._slots)
        registers = [VENDOR_HW, MODEL_CAROUSEL, FIRMWARE_1_2, n, self._status(), self._fault_code]
        registers += [self._current_slot(), self._target, self._counter, self._last_result]
        registers += _block(self._slots) + _block([self._port_current(slot) for slot in range(n)])
        registers += _block(self._results)
        return registers[address : address + count]

    def read_holding(self, address: int, count: int) -> list[int]:
        """Holding registers from ``address`` (100..103 are in the map); ILLEGAL_DATA_ADDRESS outside it."""
        self._settle()
        _check_range(address, count, COMMAND, HOLDING_END)
        registers = [self._command, self._argument, self._limit_ma, DEFAULT_STEP_MS]
        return registers[address - COMMAND : address - COMMAND + count]

    def write_holding(self, address: int, values: list[int]) -> None:
        """Write holding registers, whole or not at all; COMMAND runs after the others are stored.

        STEP_TIME_MS is range-checked and then ignored, as on the real unit.
        :raises ModbusError: ILLEGAL_DATA_ADDRESS outside 100..103; ILLEGAL_DATA_VALUE for a bad
            value, an unknown command or one refused now; SLAVE_DEVICE_BUSY while a HOME runs.
        """
        self._settle()
        _check_range(address, len(values), COMMAND, HOLDING_END)
        written = dict(zip(range(address, address + len(values)), values, strict=True))
        for register, allowed in ((OVER_CURRENT_LIMIT_MA, LIMIT_RANGE), (STEP_TIME_MS, STEP_RANGE)):
            if register in written and written[register] not in allowed:
                raise ModbusError(ILLEGAL_DATA_VALUE, f"register {register}: {written[register]} out of range")
        if any(not 0 <= value <= 0xFFFF for value in values):
            raise ModbusError(ILLEGAL_DATA_VALUE, "values are 16-bit")
        saved = (self._argument, self._limit_ma)
        self._argument = written.get(ARGUMENT, self._argument)
        self._limit_ma = written.get(OVER_CURRENT_LIMIT_MA, self._limit_ma)
        if COMMAND in written:
            try:
                self._execute(written[COMMAND], self._argument)
            except ModbusError:
                self._argument, self._limit_ma = saved
                raise

    def _settle(self) -> None:
        """Bring the model up to ``clock()``: end the move, stall it, or end the cable test."""
        self._now = now = self._clock()
        motion = self._motion
        if motion is not None and motion.stall_at is not None and motion.stall_at <= now + EPS:
            self._stall(motion, motion.stall_at)
        elif motion is not None and motion.end <= now + EPS:
            self._arrive(motion)
        if self._test is not None and self._test[1] + CABLE_TEST_S <= now + EPS:
            self._finish_test(self._test[0])

    def _stall(self, motion: _Motion, at: float) -> None:
        self._position = motion.at(at) % len(self._slots)
        self._motion = None
        self._latch(FAULT_HOMING_FAILED if motion.homing else FAULT_JAM)
        self._last_result = RESULT_FAILED

    def _arrive(self, motion: _Motion) -> None:
        self._position = float(motion.target)
        self._motion = None
        if motion.homing:
            self._homed = True
            self._unlatch({FAULT_JAM, FAULT_HOMING_FAILED})
        self._last_result = RESULT_OK

    def _finish_test(self, slot: int) -> None:
        self._test = None
        current = self._cable_current(slot)
        self._results[slot] = TEST_SHORT if current > self._limit_ma else TEST_PASS if current else TEST_OPEN
        self._last_result = RESULT_FAILED if current > self._limit_ma else RESULT_OK
        if current > self._limit_ma:
            self._trip(slot)

    def _where(self) -> float:
        """Position of the turntable now, in slots from slot 0 (fractional between slots)."""
        return self._position if self._motion is None else self._motion.at(self._now) % len(self._slots)

    def _current_slot(self) -> int:
        in_position = self._homed and self._motion is None and FAULT_JAM not in self._faults
        slot = round(self._position)
        if in_position and abs(self._position - slot) < EPS:
            return slot % len(self._slots)
        return NO_SLOT

    def _status(self) -> int:
        moving = HOMED * self._homed + MOVING * (self._motion is not None) + TESTING * (self._test is not None)
        faults = FAULT * (self._fault_code != FAULT_NONE) + JAM * (FAULT_JAM in self._faults)
        faults += OVER_CURRENT * (FAULT_OVER_CURRENT in self._faults)
        return moving + faults + IN_POSITION * (self._current_slot() != NO_SLOT)

    def _cable_current(self, slot: int) -> int:
        if slot in self._short_cables:
            return SHORT_CABLE_MA
        if slot in self._open_cables or self._slots[slot] == CONNECTOR_EMPTY:
            return 0
        return GOOD_CABLE_MA

    def _port_current(self, slot: int) -> int:
        if self._test is None or self._test[0] != slot or slot in self._cut_ports:
            return 0
        return self._cable_current(slot)

    def _latch(self, code: int) -> None:
        self._faults.add(code)
        if self._fault_code == FAULT_NONE:
            self._fault_code = code

    def _unlatch(self, codes: set[int]) -> None:
        self._faults -= codes
        self._fault_code = self._fault_code if self._fault_code in self._faults else min(self._faults, default=0)

    def _trip(self, slot: int) -> None:
        """Over-current on ``slot``'s port: power cut, OVER_CURRENT latched."""
        self._cut_ports.add(slot)
        self._latch(FAULT_OVER_CURRENT)

    def _execute(self, command: int, argument: int) -> None:
        """Run ``command``; it raises before changing anything when it refuses."""
        handlers: dict[int, Callable[[int], None]] = {
            CMD_HOME: self._home,
            CMD_MOVE: self._move,
            CMD_STOP: self._stop,
            CMD_TEST_CABLE: self._test_cable,
            CMD_CLEAR_FAULT: self._clear_fault,
        }
        handler = handlers.get(command)
        if handler is None:
            raise ModbusError(ILLEGAL_DATA_VALUE, f"unknown command {command}")
        if self._motion is not None and self._motion.homing and command != CMD_STOP:
            raise ModbusError(SLAVE_DEVICE_BUSY, "homing in progress")
        handler(argument)
        self._command = command
        self._counter = (self._counter + 1) & 0xFFFF

    def _begin(self, homing: bool, target: int) -> None:
        """Start turning from where the turntable is now (a MOVE while moving retargets)."""
        origin = self._where()
        direction, distance = _shorter_way(origin, target, len(self._slots))
        motion = _Motion(homing, self._now, origin, direction, distance, target)
        if self._obstructed:
            motion.stall_at = motion.stall_after(self._now)
        self._motion = motion
        self._test = None
        self._last_result = RESULT_RUNNING

    def _home(self, argument: int) -> None:
        self._begin(homing=True, target=0)
        self._homed = False

    def _move(self, argument: int) -> None:
        if argument >= len(self._slots):
            raise ModbusError(ILLEGAL_DATA_VALUE, f"slot {argument} >= SLOT_COUNT")
        if not self._homed or self._fault_code != FAULT_NONE:
            raise ModbusError(ILLEGAL_DATA_VALUE, "MOVE needs HOMED and no FAULT")
        self._begin(homing=False, target=argument)
        self._target = argument

    def _stop(self, argument: int) -> None:
        """A move ends at the next slot boundary; a HOME is abandoned where it is."""
        motion = self._motion
        if motion is None or motion.homing:
            self._position = self._where()
            self._motion = None
            self._last_result = RESULT_OK
            return
        here = motion.at(self._now)
        boundary = math.ceil(here - EPS) if motion.direction > 0 else math.floor(here + EPS)
        motion.distance = abs(boundary - motion.origin)
        motion.target = boundary % len(self._slots)
        if motion.stall_at is not None and motion.stall_at >= motion.end - EPS:
            motion.stall_at = None
        self._last_result = RESULT_RUNNING

    def _test_cable(self, argument: int) -> None:
        if argument >= len(self._slots) or self._current_slot() != argument or argument in self._cut_ports:
            raise ModbusError(ILLEGAL_DATA_VALUE, f"TEST_CABLE {argument} needs that slot in position, its port on")
        self._test = (argument, self._now)
        self._last_result = RESULT_RUNNING

    def _clear_fault(self, argument: int) -> None:
        if FAULT_JAM in self._faults:
            self._homed = False  # the index is lost after a stall
        self._unlatch(set(self._faults))
        self._cut_ports.clear()
        self._last_result = RESULT_OK
