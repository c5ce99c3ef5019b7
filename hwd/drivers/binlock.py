"""The reference bin lock controller over Modbus RTU (docs/hardware/binlock.md)."""

from __future__ import annotations

from collections.abc import Sequence

from hwd.drivers.modbus import RtuLink, decode_firmware, write_command
from hwd.errors import InvalidArgument
from hwd.model import ControllerIdentity, LockState

# Input registers (function 04)
VENDOR_ID = 0
MODEL = 1
FIRMWARE = 2
STATUS = 3
FAULT_CODE = 4
COMMAND_COUNTER = 5
RELOCK_REMAINING_S = 6
DOOR_OPEN_S = 7

# Holding registers (functions 03, 06, 16)
COMMAND = 100
ARGUMENT = 101
RELOCK_DEFAULT_S = 102

# COMMAND values
UNLOCK = 1
LOCK = 2
CLEAR_TAMPER = 3

# STATUS bits
BOLT_EXTENDED = 1 << 0
DOOR_CLOSED = 1 << 1
UNLOCK_OUTPUT = 1 << 2
TAMPER = 1 << 3
FORCED = 1 << 4
RELOCK_PENDING = 1 << 5
FAULT = 1 << 6

MAX_RELOCK_S = 600


def decode_state(regs: Sequence[int]) -> LockState:
    """Builds the state from the input registers.

    :param regs: registers 0..7 (VENDOR_ID to DOOR_OPEN_S).
    :returns: the state.
    """
    status = regs[STATUS]
    return LockState(
        bolt_extended=bool(status & BOLT_EXTENDED),
        door_closed=bool(status & DOOR_CLOSED),
        unlock_output=bool(status & UNLOCK_OUTPUT),
        tamper=bool(status & TAMPER),
        forced=bool(status & FORCED),
        relock_pending=bool(status & RELOCK_PENDING),
        fault=bool(status & FAULT),
        fault_code=regs[FAULT_CODE],
        relock_remaining_s=regs[RELOCK_REMAINING_S],
        door_open_s=regs[DOOR_OPEN_S],
        command_counter=regs[COMMAND_COUNTER],
    )


class ModbusBinLock:
    """The bin lock controller at ``unit`` on ``link`` (a BinLockController).

    :param link: the RS-485 line, shared with the other controllers; opened by its owner too.
    :param unit: the controller's unit id.
    """

    def __init__(self, link: RtuLink, unit: int = 2) -> None:
        self.link = link
        self.unit = unit

    async def open(self) -> None:
        """Opens the line (a no-op when already open). :raises DeviceUnavailable: the port cannot be opened."""
        await self.link.open()

    async def close(self) -> None:
        """Nothing to release: the line stays open for the other units (its owner closes it)."""

    async def identity(self) -> ControllerIdentity:
        """:returns: vendor, model, firmware. :raises DeviceUnavailable: no reply."""
        vendor, model, firmware = await self.link.read_input(self.unit, VENDOR_ID, 3)
        return ControllerIdentity(vendor=vendor, model=model, firmware=decode_firmware(firmware))

    async def state(self) -> LockState:
        """Reads the state in one transaction. :returns: the state. :raises DeviceUnavailable: no reply."""
        return decode_state(await self.link.read_input(self.unit, VENDOR_ID, DOOR_OPEN_S + 1))

    async def unlock(self, relock_after_s: int) -> int:
        """Starts UNLOCK; the controller relocks after ``relock_after_s`` (0: RELOCK_DEFAULT_S).

        :returns: the command counter.
        :raises InvalidArgument: ``relock_after_s`` outside 0..600.
        :raises DeviceUnavailable: no reply.
        """
        if not 0 <= relock_after_s <= MAX_RELOCK_S:
            raise InvalidArgument(
                f"relock_after_s {relock_after_s} is not in 0..{MAX_RELOCK_S}", device=f"bin lock unit {self.unit}"
            )
        return await self._command(UNLOCK, relock_after_s)

    async def lock(self) -> int:
        """Drops the unlock output (the bolt extends once the door is closed). :returns: the command counter."""
        return await self._command(LOCK)

    async def clear_tamper(self) -> int:
        """Clears TAMPER and FORCED. :returns: the command counter."""
        return await self._command(CLEAR_TAMPER)

    async def _command(self, command: int, argument: int = 0) -> int:
        return await write_command(self.link, self.unit, COMMAND, COMMAND_COUNTER, [command, argument])
