"""What the carousel and bin lock services need from their controllers, and a fake of each.

The drivers (hwd/drivers/carousel.py, binlock.py) implement these over Modbus; the fakes act
instantly and in memory, for service tests. Every command returns the controller's command
counter after it (it counts accepted commands, modulo 65536).
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from hwd.errors import DeviceNotReady, DeviceUnavailable, InvalidArgument
from hwd.model import CableTest, CarouselState, CommandResult, Connector, ControllerIdentity, LockState

COUNTER_MODULO = 0x10000
MAX_RELOCK_S = 600
DEFAULT_RELOCK_S = 30


class CarouselController(Protocol):
    """A cable carousel: a turntable of slots presented one at a time at the phone bay."""

    async def open(self) -> None:
        """Connects; a second call does nothing. :raises DeviceUnavailable: not reachable."""

    async def close(self) -> None:
        """Disconnects; safe to call twice."""

    async def identity(self) -> ControllerIdentity:
        """:returns: vendor, model and firmware. :raises DeviceUnavailable: no answer."""

    async def state(self) -> CarouselState:
        """:returns: one consistent reading. :raises DeviceUnavailable: no answer."""

    async def home(self) -> int:
        """Starts homing. :returns: the command counter. :raises DeviceNotReady: busy."""

    async def move(self, slot: int) -> int:
        """Starts a move to ``slot``.

        :returns: the command counter.
        :raises InvalidArgument: no such slot.
        :raises DeviceNotReady: not homed, or a fault is set.
        """

    async def stop(self) -> int:
        """Stops a move at the next slot. :returns: the command counter."""

    async def test_cable(self, slot: int) -> int:
        """Starts a cable test of ``slot`` (read the outcome with cable_test).

        :returns: the command counter.
        :raises DeviceNotReady: ``slot`` is not in position.
        """

    async def cable_test(self, slot: int) -> CableTest:
        """:returns: the outcome of the last cable test of ``slot``. :raises InvalidArgument: no such slot."""

    async def clear_fault(self) -> int:
        """Clears the fault (after a jam, a HOME is needed). :returns: the command counter."""


class BinLockController(Protocol):
    """The fail-secure lock of the bin that holds the phones bought."""

    async def open(self) -> None:
        """Connects; a second call does nothing. :raises DeviceUnavailable: not reachable."""

    async def close(self) -> None:
        """Disconnects; safe to call twice."""

    async def identity(self) -> ControllerIdentity:
        """:returns: vendor, model and firmware. :raises DeviceUnavailable: no answer."""

    async def state(self) -> LockState:
        """:returns: one consistent reading. :raises DeviceUnavailable: no answer."""

    async def unlock(self, relock_after_s: int) -> int:
        """Retracts the bolt; it relocks after ``relock_after_s`` (0: the controller's default).

        :returns: the command counter.
        :raises InvalidArgument: ``relock_after_s`` outside 0..600.
        """

    async def lock(self) -> int:
        """Extends the bolt now (once the door is closed). :returns: the command counter."""

    async def clear_tamper(self) -> int:
        """Clears the latched tamper and forced flags. :returns: the command counter."""


class _FakeBase:
    """Open/close bookkeeping and the command counter shared by the fakes."""

    def __init__(self, identity: ControllerIdentity) -> None:
        self.opened = False
        self.counter = 0
        self._identity = identity

    async def open(self) -> None:
        """Marks the fake open."""
        self.opened = True

    async def close(self) -> None:
        """Marks the fake closed."""
        self.opened = False

    async def identity(self) -> ControllerIdentity:
        """:returns: the identity given at construction. :raises DeviceUnavailable: not open."""
        self._check_open()
        return self._identity

    def _check_open(self) -> None:
        if not self.opened:
            raise DeviceUnavailable("fake controller is not open", device="fake")

    def _accept(self) -> int:
        self._check_open()
        self.counter = (self.counter + 1) % COUNTER_MODULO
        return self.counter


class FakeCarousel(_FakeBase):
    """An in-memory carousel whose moves and tests finish at once.

    :param connectors: one connector per slot.
    :param cable_results: what a cable test of a slot finds (PASS when absent).
    """

    def __init__(
        self,
        connectors: tuple[Connector, ...] = (Connector.USB_C,) * 8,
        cable_results: dict[int, CableTest] | None = None,
    ) -> None:
        super().__init__(ControllerIdentity(vendor=0x4857, model=0x0C01, firmware="1.2"))
        self.cable_results = dict(cable_results or {})
        self._tests: dict[int, CableTest] = {}
        self._state = CarouselState(
            homed=False, moving=False, in_position=False, testing=False, fault=False, fault_code=0, jam=False,
            over_current=False, current_slot=None, target_slot=None, slot_count=len(connectors),
            connectors=connectors, command_counter=0, last_result=CommandResult.OK,
        )  # fmt: skip

    async def state(self) -> CarouselState:
        """:returns: the current state. :raises DeviceUnavailable: not open."""
        self._check_open()
        return dataclasses.replace(self._state, command_counter=self.counter)

    def jam(self) -> None:
        """Simulates a jam: stopped between slots, JAM fault set."""
        self._state = dataclasses.replace(
            self._state, moving=False, in_position=False, current_slot=None, fault=True, fault_code=1, jam=True,
            last_result=CommandResult.FAILED,
        )  # fmt: skip

    async def home(self) -> int:
        """Homes at once to slot 0 (clears a jam). :returns: the command counter."""
        counter = self._accept()
        fault = self._state.fault_code not in (0, 1)
        self._state = dataclasses.replace(
            self._state, homed=True, in_position=True, current_slot=0, jam=False, fault=fault,
            fault_code=self._state.fault_code if fault else 0, last_result=CommandResult.OK,
        )  # fmt: skip
        return counter

    async def move(self, slot: int) -> int:
        """Moves at once to ``slot``. :returns: the command counter.

        :raises InvalidArgument: no such slot. :raises DeviceNotReady: not homed or faulted.
        """
        self._check_slot(slot)
        if not self._state.homed or self._state.fault:
            raise DeviceNotReady("carousel must be homed and free of faults to move", device="fake")
        counter = self._accept()
        self._state = dataclasses.replace(
            self._state, in_position=True, current_slot=slot, target_slot=slot, last_result=CommandResult.OK
        )
        return counter

    async def stop(self) -> int:
        """Nothing moves for long here. :returns: the command counter."""
        return self._accept()

    async def test_cable(self, slot: int) -> int:
        """Tests ``slot`` at once. :returns: the command counter. :raises DeviceNotReady: not in position there."""
        self._check_slot(slot)
        if self._state.current_slot != slot:
            raise DeviceNotReady(f"slot {slot} is not in position", device="fake")
        counter = self._accept()
        self._tests[slot] = result = self.cable_results.get(slot, CableTest.PASS)
        if result is CableTest.SHORT:
            self._state = dataclasses.replace(self._state, fault=True, fault_code=2, over_current=True)
        return counter

    async def cable_test(self, slot: int) -> CableTest:
        """:returns: the last test of ``slot``. :raises InvalidArgument: no such slot."""
        self._check_open()
        self._check_slot(slot)
        return self._tests.get(slot, CableTest.NEVER)

    async def clear_fault(self) -> int:
        """Clears the fault; after a jam the index is lost. :returns: the command counter."""
        counter = self._accept()
        homed = self._state.homed and not self._state.jam
        self._state = dataclasses.replace(
            self._state, fault=False, fault_code=0, jam=False, over_current=False, homed=homed
        )
        return counter

    def _check_slot(self, slot: int) -> None:
        if not 0 <= slot < self._state.slot_count:
            raise InvalidArgument(f"slot {slot} is not in 0..{self._state.slot_count - 1}", device="fake")


class FakeBinLock(_FakeBase):
    """An in-memory bin lock whose bolt moves at once; the relock timer runs only when told."""

    def __init__(self) -> None:
        super().__init__(ControllerIdentity(vendor=0x4857, model=0x0B01, firmware="1.3"))
        self._state = LockState(
            bolt_extended=True, door_closed=True, unlock_output=False, tamper=False, forced=False,
            relock_pending=False, fault=False, fault_code=0, relock_remaining_s=0, door_open_s=0, command_counter=0,
        )  # fmt: skip

    async def state(self) -> LockState:
        """:returns: the current state. :raises DeviceUnavailable: not open."""
        self._check_open()
        return dataclasses.replace(self._state, command_counter=self.counter)

    async def unlock(self, relock_after_s: int) -> int:
        """Retracts the bolt at once. :returns: the command counter. :raises InvalidArgument: bad delay."""
        if not 0 <= relock_after_s <= MAX_RELOCK_S:
            raise InvalidArgument(f"relock_after_s {relock_after_s} is not in 0..{MAX_RELOCK_S}", device="fake")
        counter = self._accept()
        self._state = dataclasses.replace(
            self._state, unlock_output=True, bolt_extended=False, relock_pending=True,
            relock_remaining_s=relock_after_s or DEFAULT_RELOCK_S,
        )  # fmt: skip
        return counter

    async def lock(self) -> int:
        """Drops the unlock output. :returns: the command counter."""
        counter = self._accept()
        self._relock()
        return counter

    async def clear_tamper(self) -> int:
        """Clears TAMPER and FORCED. :returns: the command counter."""
        counter = self._accept()
        self._state = dataclasses.replace(self._state, tamper=False, forced=False)
        return counter

    def expire_relock(self) -> None:
        """Ends the relock countdown now."""
        self._relock()

    def set_door(self, closed: bool) -> None:
        """Opens or closes the door; opening it while the bolt is out sets FORCED."""
        forced = self._state.forced or (not closed and self._state.bolt_extended)
        bolt = self._state.bolt_extended or (closed and not self._state.unlock_output)
        self._state = dataclasses.replace(self._state, door_closed=closed, forced=forced, bolt_extended=bolt)

    def _relock(self) -> None:
        self._state = dataclasses.replace(
            self._state, unlock_output=False, relock_pending=False, relock_remaining_s=0,
            bolt_extended=self._state.door_closed,
        )  # fmt: skip
