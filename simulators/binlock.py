"""The simulated bin lock controller (Modbus unit 2), as a pure register model.

The register map is docs/hardware/binlock.md. The model does no I/O: an RTU line serves it
through :class:`simulators.registers.RegisterUnit`, and the kiosk drives it as a
:class:`simulators.device.SimDevice`.

Physics are lazy: the bolt's travel, the relock countdown and the time the door has been open are
derived from ``clock()`` whenever a public method runs, so no background task runs and a fake
clock makes it deterministic. The bolt sensor (BOLT_EXTENDED) changes when the bolt completes its
0.3 s travel; the bolt only extends into a closed door.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping

from simulators.registers import ILLEGAL_DATA_ADDRESS, ILLEGAL_DATA_VALUE, ModbusError

UNIT_ID = 2

# Input registers (function 04).
VENDOR_ID = 0
MODEL = 1
FIRMWARE = 2
STATUS = 3
FAULT_CODE = 4
COMMAND_COUNTER = 5
RELOCK_REMAINING_S = 6
DOOR_OPEN_S = 7
INPUT_END = 8

# Holding registers (functions 03, 06, 16).
COMMAND = 100
ARGUMENT = 101
RELOCK_DEFAULT_S = 102
HOLDING_END = 103

VENDOR_HW = 0x4857
MODEL_BINLOCK = 0x0B01
FIRMWARE_1_3 = 0x0103

# STATUS bits.
BOLT_EXTENDED = 1 << 0
DOOR_CLOSED = 1 << 1
UNLOCK_OUTPUT = 1 << 2
TAMPER = 1 << 3
FORCED = 1 << 4
RELOCK_PENDING = 1 << 5
FAULT = 1 << 6

# FAULT_CODE values.
FAULT_NONE = 0
FAULT_BOLT_JAMMED = 1
FAULT_SENSORS_DISAGREE = 2

# COMMAND values.
CMD_UNLOCK = 1
CMD_LOCK = 2
CMD_CLEAR_TAMPER = 3

DEFAULT_RELOCK_S = 30
RELOCK_RANGE = range(5, 601)
UNLOCK_RANGE = range(601)
BOLT_TRAVEL_S = 0.3
#: How long the bolt may take to reach its commanded position before FAULT_CODE 1.
BOLT_DEADLINE_S = 1.0
FAULTS = ("open-door", "close-door", "force-door", "tamper", "tamper-clear", "jam-bolt", "clear", "power-cycle")
#: Tolerance on times, so float sums of a fake clock land on their events.
EPS = 1e-6


def _check_range(address: int, count: int, start: int, end: int) -> None:
    if count < 1:
        raise ModbusError(ILLEGAL_DATA_VALUE, f"quantity {count}")
    if address < start or address + count > end:
        raise ModbusError(ILLEGAL_DATA_ADDRESS, f"registers {address}..{address + count - 1} are not in the map")


class BinLockSim:
    """The reference bin lock: ``RegisterUnit`` for unit id 2, and a ``SimDevice``.

    Faults (:meth:`fault`, none takes parameters): ``open-door`` / ``close-door`` (a person opens
    or closes the door; opening it while BOLT_EXTENDED reads set is a forced door, FORCED
    latches), ``force-door`` (the same as ``open-door``, named for the case of a locked door),
    ``tamper`` / ``tamper-clear`` (the tamper switch opens / closes), ``jam-bolt`` (the bolt stops
    moving: a commanded position not reached within 1 s gives FAULT_CODE 1), ``clear`` (the bolt
    is free again and completes its travel) and ``power-cycle``.

    A power cycle clears all controller state (output off, no relock, FORCED, FAULT, latched
    TAMPER, counter, holding registers back to defaults); only the physical world survives: the
    door, the bolt's position, a jammed bolt and the tamper switch, so TAMPER reads set again
    at once if the switch is still open. With the output off the bolt extends once the door is
    closed (fail-secure).
    """

    def __init__(self, endpoint: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        """:param endpoint: where the RTU line serves the unit, e.g. ``modbus-rtu:/run/hwd/sim/rs485?unit=2``.
        :param clock: seconds, monotonic; every timing is derived from it.
        """
        self._endpoint = endpoint
        self._clock = clock
        self._now = 0.0
        self._reset_world()
        self._power_on()

    def _reset_world(self) -> None:
        """The physical side: door shut, bolt out, switch closed, nothing jammed."""
        self._door_closed = True
        self._door_opened_at = 0.0
        self._bolt_extended = True
        self._bolt_move: tuple[bool, float] | None = None  # (extending, since)
        self._bolt_jammed = False
        self._tamper_open = False

    def _power_on(self) -> None:
        """The controller side, as after power-on: output off, nothing pending, defaults."""
        self._output = False
        self._relock_at: float | None = None
        self._tamper_latched = self._tamper_open
        self._forced = False
        self._fault_code = FAULT_NONE
        self._counter = 0
        self._command = 0
        self._argument = 0
        self._relock_default = DEFAULT_RELOCK_S
        self._bolt_move = None
        self._aim_bolt(self._now)

    # SimDevice

    @property
    def name(self) -> str:
        return "binlock"

    @property
    def kind(self) -> str:
        return "modbus-binlock"

    @property
    def endpoint(self) -> str:
        return self._endpoint

    @property
    def unit_id(self) -> int:
        return UNIT_ID

    @property
    def state(self) -> str:
        """E.g. ``"locked, door closed"``, ``"unlocked, relock in 12 s"``, ``"tampered"``."""
        self._settle()
        door = "door closed" if self._door_closed else "door open"
        alarms = [(self._tamper_latched or self._tamper_open, "tampered"), (self._forced, "forced")]
        alarms.append((self._fault_code != FAULT_NONE, "fault: bolt jammed"))
        for on, alarm in alarms:
            if on:
                return alarm
        if self._bolt_move is not None:
            return f"{'locking' if self._bolt_move[0] else 'unlocking'}, {door}"
        if self._bolt_extended:
            return f"locked, {door}"
        if self._relock_at is not None:
            return f"unlocked, relock in {self._relock_remaining()} s"
        return f"unlocked, {door}"

    async def start(self) -> None:
        """Nothing to open: the RTU line that serves the unit owns the transport."""

    async def stop(self) -> None:
        """Nothing to release."""

    async def reset(self) -> None:
        """Back to the power-on state: locked, door closed, every injected fault gone."""
        self._settle()
        self._reset_world()
        self._power_on()

    # Faults

    @property
    def faults(self) -> list[str]:
        """Names :meth:`fault` accepts."""
        return list(FAULTS)

    async def fault(self, name: str, params: Mapping[str, str]) -> None:
        """Inject ``name`` (see the class docstring) now.

        :raises ValueError: an unknown fault, or any parameter (none is accepted).
        """
        handlers: dict[str, Callable[[], None]] = {
            "open-door": self._open_door,
            "close-door": self._close_door,
            "force-door": self._open_door,
            "tamper": self._tamper,
            "tamper-clear": self._tamper_clear,
            "jam-bolt": self._jam_bolt,
            "clear": self._unjam_bolt,
            "power-cycle": self._power_on,
        }
        handler = handlers.get(name)
        if handler is None:
            raise ValueError(f"unknown bin lock fault {name!r}; accepted: {', '.join(FAULTS)}")
        if params:
            raise ValueError(f"bin lock faults take no parameters, got {sorted(params)}")
        self._settle()
        handler()

    def _open_door(self) -> None:
        if not self._door_closed:
            return
        if self._bolt_extended:
            self._forced = True
        if self._bolt_move is not None and self._bolt_move[0]:
            self._bolt_move = None  # the bolt cannot extend into an open door; it waits
            self._clear_bolt_fault()
        self._door_closed = False
        self._door_opened_at = self._now

    def _close_door(self) -> None:
        if self._door_closed:
            return
        self._door_closed = True
        self._aim_bolt(self._now)

    def _tamper(self) -> None:
        self._tamper_open = True
        self._tamper_latched = True

    def _tamper_clear(self) -> None:
        self._tamper_open = False

    def _jam_bolt(self) -> None:
        self._bolt_jammed = True

    def _unjam_bolt(self) -> None:
        self._bolt_jammed = False
        if self._bolt_move is not None:
            self._bolt_move = (self._bolt_move[0], self._now)

    # RegisterUnit

    def read_input(self, address: int, count: int) -> list[int]:
        """Input registers ``address`` .. ``address + count - 1`` (0..7 are in the map).

        :raises ModbusError: ILLEGAL_DATA_ADDRESS for a range that leaves the map.
        """
        self._settle()
        _check_range(address, count, 0, INPUT_END)
        registers = [VENDOR_HW, MODEL_BINLOCK, FIRMWARE_1_3, self._status(), self._fault_code, self._counter]
        registers += [self._relock_remaining(), self._door_open_s()]
        return registers[address : address + count]

    def read_holding(self, address: int, count: int) -> list[int]:
        """Holding registers 100..102.

        :raises ModbusError: ILLEGAL_DATA_ADDRESS for a range that leaves the map.
        """
        self._settle()
        _check_range(address, count, COMMAND, HOLDING_END)
        registers = [self._command, self._argument, self._relock_default]
        return registers[address - COMMAND : address - COMMAND + count]

    def write_holding(self, address: int, values: list[int]) -> None:
        """Write holding registers; a write that covers COMMAND runs it after storing the others.

        The write is taken whole or not at all.

        :raises ModbusError: ILLEGAL_DATA_ADDRESS outside 100..102; ILLEGAL_DATA_VALUE for
            RELOCK_DEFAULT_S outside 5..600, an UNLOCK argument above 600 or an unknown command.
        """
        self._settle()
        _check_range(address, len(values), COMMAND, HOLDING_END)
        written = dict(zip(range(address, address + len(values)), values, strict=True))
        if RELOCK_DEFAULT_S in written and written[RELOCK_DEFAULT_S] not in RELOCK_RANGE:
            raise ModbusError(ILLEGAL_DATA_VALUE, f"RELOCK_DEFAULT_S {written[RELOCK_DEFAULT_S]} not in 5..600")
        if any(not 0 <= value <= 0xFFFF for value in values):
            raise ModbusError(ILLEGAL_DATA_VALUE, "values are 16-bit")
        saved = (self._argument, self._relock_default)
        self._argument = written.get(ARGUMENT, self._argument)
        self._relock_default = written.get(RELOCK_DEFAULT_S, self._relock_default)
        if COMMAND in written:
            try:
                self._execute(written[COMMAND], self._argument)
            except ModbusError:
                self._argument, self._relock_default = saved
                raise

    # Time

    def _settle(self) -> None:
        """Bring the model up to ``clock()``: the relock falls due, the bolt arrives or jams."""
        self._now = now = self._clock()
        if self._relock_at is not None and self._relock_at <= now + EPS:
            due = self._relock_at
            self._advance_bolt(due)
            self._relock_at = None
            self._output = False
            self._aim_bolt(due)
        self._advance_bolt(now)

    def _advance_bolt(self, t: float) -> None:
        if self._bolt_move is None:
            return
        extending, since = self._bolt_move
        if self._bolt_jammed:
            if since + BOLT_DEADLINE_S <= t + EPS and self._fault_code == FAULT_NONE:
                self._fault_code = FAULT_BOLT_JAMMED
            return
        if since + BOLT_TRAVEL_S <= t + EPS:
            self._bolt_extended = extending
            self._bolt_move = None
            self._clear_bolt_fault()

    def _aim_bolt(self, t: float) -> None:
        """Drive the bolt toward what the output commands: in when energised, out into a closed door."""
        if self._output:
            want = False
        elif self._door_closed:
            want = True
        else:
            return  # output off with the door open: the bolt waits for the door
        if self._bolt_move is not None and self._bolt_move[0] == want:
            return
        if self._bolt_extended == want:
            self._bolt_move = None  # a reversed command: the bolt never left
            self._clear_bolt_fault()
            return
        self._bolt_move = (want, t)

    def _clear_bolt_fault(self) -> None:
        """FAULT_CODE 1 lasts while the bolt is away from its commanded position."""
        if self._fault_code == FAULT_BOLT_JAMMED:
            self._fault_code = FAULT_NONE

    # Derived values

    def _status(self) -> int:
        bits = [
            (self._bolt_extended, BOLT_EXTENDED),
            (self._door_closed, DOOR_CLOSED),
            (self._output, UNLOCK_OUTPUT),
            (self._tamper_latched or self._tamper_open, TAMPER),
            (self._forced, FORCED),
            (self._relock_at is not None, RELOCK_PENDING),
            (self._fault_code != FAULT_NONE, FAULT),
        ]
        return sum(bit for on, bit in bits if on)

    def _relock_remaining(self) -> int:
        """Whole seconds to the relock, rounded up; 0 when none is pending."""
        if self._relock_at is None:
            return 0
        return max(0, math.ceil(self._relock_at - self._now - EPS))

    def _door_open_s(self) -> int:
        if self._door_closed:
            return 0
        return min(0xFFFF, math.floor(self._now - self._door_opened_at + EPS))

    # Commands

    def _execute(self, command: int, argument: int) -> None:
        """Run ``command``; it raises before changing anything when it refuses."""
        if command == CMD_UNLOCK:
            if argument not in UNLOCK_RANGE:
                raise ModbusError(ILLEGAL_DATA_VALUE, f"UNLOCK {argument} not in 0..600")
            self._output = True
            self._relock_at = self._now + (argument or self._relock_default)
            self._aim_bolt(self._now)
        elif command == CMD_LOCK:
            self._output = False
            self._relock_at = None
            self._aim_bolt(self._now)
        elif command == CMD_CLEAR_TAMPER:
            self._tamper_latched = self._tamper_open  # a clear does not take while the enclosure is open
            self._forced = False
        else:
            raise ModbusError(ILLEGAL_DATA_VALUE, f"unknown command {command}")
        self._command = command
        self._counter = (self._counter + 1) & 0xFFFF
