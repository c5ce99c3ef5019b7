"""The reference cable carousel controller over Modbus RTU (docs/hardware/carousel.md)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from hwd.drivers.modbus import RtuLink, decode_firmware, write_command
from hwd.errors import InvalidArgument
from hwd.model import CableTest, CarouselState, CommandResult, Connector, ControllerIdentity

log = logging.getLogger(__name__)

# Input registers (function 04)
VENDOR_ID = 0
MODEL = 1
FIRMWARE = 2
SLOT_COUNT = 3
STATUS = 4
FAULT_CODE = 5
CURRENT_SLOT = 6
TARGET_SLOT = 7
COMMAND_COUNTER = 8
LAST_RESULT = 9
CONNECTOR = 10
PORT_CURRENT_MA = 30
CABLE_TEST = 50
MAX_SLOTS = 16

# Holding registers (functions 03, 06, 16)
COMMAND = 100
ARGUMENT = 101
OVER_CURRENT_LIMIT_MA = 102
STEP_TIME_MS = 103

# COMMAND values
HOME = 1
MOVE = 2
STOP = 3
TEST_CABLE = 4
CLEAR_FAULT = 5

# STATUS bits
HOMED = 1 << 0
MOVING = 1 << 1
IN_POSITION = 1 << 2
FAULT = 1 << 3
JAM = 1 << 4
OVER_CURRENT = 1 << 5
TESTING = 1 << 6

NO_SLOT = 0xFFFF


def decode_connector(code: int) -> Connector:
    """:param code: a CONNECTOR register. :returns: the connector (UNKNOWN for an undefined code)."""
    try:
        return Connector(code)
    except ValueError:
        return Connector.UNKNOWN


def decode_state(head: Sequence[int], connectors: Sequence[int]) -> CarouselState:
    """Builds the state from the input registers.

    :param head: registers 0..9 (VENDOR_ID to LAST_RESULT).
    :param connectors: registers CONNECTOR[0..SLOT_COUNT-1].
    :returns: the state.
    """
    status = head[STATUS]
    try:
        last_result = CommandResult(head[LAST_RESULT])
    except ValueError:
        last_result = CommandResult.UNKNOWN
    return CarouselState(
        homed=bool(status & HOMED),
        moving=bool(status & MOVING),
        in_position=bool(status & IN_POSITION),
        testing=bool(status & TESTING),
        fault=bool(status & FAULT),
        fault_code=head[FAULT_CODE],
        jam=bool(status & JAM),
        over_current=bool(status & OVER_CURRENT),
        current_slot=None if head[CURRENT_SLOT] == NO_SLOT else head[CURRENT_SLOT],
        target_slot=None if head[TARGET_SLOT] == NO_SLOT else head[TARGET_SLOT],
        slot_count=head[SLOT_COUNT],
        connectors=tuple(decode_connector(c) for c in connectors),
        command_counter=head[COMMAND_COUNTER],
        last_result=last_result,
    )


class ModbusCarousel:
    """The carousel controller at ``unit`` on ``link`` (a CarouselController).

    :param link: the RS-485 line, shared with the other controllers; opened by its owner too.
    :param unit: the controller's unit id.
    """

    def __init__(self, link: RtuLink, unit: int = 1) -> None:
        self.link = link
        self.unit = unit
        self._slot_count: int | None = None

    async def open(self) -> None:
        """Opens the line (a no-op when already open). :raises DeviceUnavailable: the port cannot be opened."""
        await self.link.open()

    async def close(self) -> None:
        """Forgets cached facts; the line stays open for the other units (its owner closes it)."""
        self._slot_count = None

    async def identity(self) -> ControllerIdentity:
        """:returns: vendor, model, firmware. :raises DeviceUnavailable: no reply."""
        vendor, model, firmware = await self.link.read_input(self.unit, VENDOR_ID, 3)
        return ControllerIdentity(vendor=vendor, model=model, firmware=decode_firmware(firmware))

    async def state(self) -> CarouselState:
        """Reads the state in two transactions (status block, connector block).

        :returns: the state.
        :raises DeviceUnavailable: no reply.
        """
        head = await self.link.read_input(self.unit, VENDOR_ID, LAST_RESULT + 1)
        count = min(head[SLOT_COUNT], MAX_SLOTS)
        self._slot_count = count
        connectors = await self.link.read_input(self.unit, CONNECTOR, count) if count else []
        return decode_state(head, connectors)

    async def home(self) -> int:
        """Starts HOME. :returns: the command counter. :raises DeviceNotReady: busy."""
        return await self._command(HOME)

    async def move(self, slot: int) -> int:
        """Starts MOVE to ``slot``.

        :returns: the command counter.
        :raises InvalidArgument: no such slot.
        :raises DeviceNotReady: not homed, faulted, or homing.
        """
        await self._check_slot(slot)
        return await self._command(MOVE, slot)

    async def stop(self) -> int:
        """Stops at the next slot boundary. :returns: the command counter."""
        return await self._command(STOP)

    async def test_cable(self, slot: int) -> int:
        """Starts TEST_CABLE of ``slot``.

        :returns: the command counter.
        :raises InvalidArgument: no such slot.
        :raises DeviceNotReady: ``slot`` is not in position.
        """
        await self._check_slot(slot)
        return await self._command(TEST_CABLE, slot)

    async def cable_test(self, slot: int) -> CableTest:
        """:returns: the last cable test of ``slot``. :raises InvalidArgument: no such slot."""
        await self._check_slot(slot)
        (code,) = await self.link.read_input(self.unit, CABLE_TEST + slot, 1)
        try:
            return CableTest(code)
        except ValueError:
            log.warning("carousel unit %s: undefined CABLE_TEST code %s for slot %s", self.unit, code, slot)
            return CableTest.NEVER

    async def clear_fault(self) -> int:
        """Clears the fault. :returns: the command counter."""
        return await self._command(CLEAR_FAULT)

    async def _command(self, command: int, argument: int = 0) -> int:
        return await write_command(self.link, self.unit, COMMAND, COMMAND_COUNTER, [command, argument])

    async def _check_slot(self, slot: int) -> None:
        if self._slot_count is None:
            (self._slot_count,) = await self.link.read_input(self.unit, SLOT_COUNT, 1)
        if not 0 <= slot < self._slot_count:
            raise InvalidArgument(
                f"slot {slot} is not in 0..{self._slot_count - 1}", device=f"carousel unit {self.unit}"
            )
