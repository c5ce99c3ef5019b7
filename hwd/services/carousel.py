"""The carousel service: Home, Select and TestCable as journaled commands, status and motion events."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from hwd.errors import DeviceNotReady, HardwareFault, HwdError, InvalidArgument
from hwd.model import CableTest, CarouselMotion, CarouselState, Connector, DeviceState, MotionPhase
from hwd.services.commands import CommandRunner
from hwd.services.controllers import CarouselController
from hwd.services.events import EventBus
from hwd.services.leases import LeaseTable
from hwd.services.polled import ControllerDevice
from hwd.services.registry import DeviceRegistry

log = logging.getLogger(__name__)

NAME = "carousel"
JAM_HINT = "Clear the obstruction in the carousel, then home it (hwd carousel home)."
Status = tuple[DeviceState, str, str, str]


class CarouselService(ControllerDevice[CarouselState]):
    """Drives one carousel controller.

    :param slots: the configured connector of each slot; empty to trust the controller's map.
    :param move_timeout_s: how long a move or homing may take before it counts as failed.
    """

    def __init__(
        self,
        controller: CarouselController,
        registry: DeviceRegistry,
        bus: EventBus,
        commands: CommandRunner,
        leases: LeaseTable,
        *,
        slots: tuple[Connector, ...] = (),
        poll_s: float = 0.1,
        move_timeout_s: float = 30.0,
    ) -> None:
        super().__init__(NAME, controller, registry, poll_s)
        self.controller = controller
        self.bus = bus
        self.commands = commands
        self.leases = leases
        self.configured = slots
        self.move_timeout_s = move_timeout_s
        self.cable_tests: dict[int, CableTest] = {}  # results of TestCable since start

    async def observe(self, state: CarouselState) -> None:
        await self.registry.set(NAME, *self.status_of(state))

    def slot_map(self, state: CarouselState | None) -> tuple[Connector, ...]:
        """The connector of each slot: the configuration's, else the controller's."""
        return self.configured or (state.connectors if state else ())

    def status_of(self, st: CarouselState) -> Status:
        """The DeviceStatus fields (state, reason, detail, hint) for a reading."""
        if st.jam:
            return DeviceState.HARDWARE_ERROR, "JAM", "the carousel jammed between slots", JAM_HINT
        if st.fault:
            hint = "Replace the cable of the slot last tested, then home the carousel."
            return DeviceState.HARDWARE_ERROR, st.fault_name, f"controller fault {st.fault_name}", hint
        mismatch = [
            f"slot {n}: configured {want.name}, controller reports {got.name}"
            for n, (want, got) in enumerate(zip(self.configured, st.connectors, strict=False))
            if want is not got
        ]
        if mismatch or (self.configured and len(self.configured) != st.slot_count):
            detail = "; ".join(mismatch) or f"configured {len(self.configured)} slots, controller has {st.slot_count}"
            hint = "Fix [carousel] slots in the configuration, or re-cable the carousel to match it."
            return DeviceState.HARDWARE_ERROR, "SLOT_MAP_MISMATCH", detail, hint
        if st.moving or st.testing:
            return DeviceState.BUSY, "MOVING" if st.moving else "TESTING", f"target slot {st.target_slot}", ""
        if not st.homed:
            return DeviceState.ONLINE, "NOT_HOMED", "the index position is unknown", "Home the carousel."
        return DeviceState.ONLINE, "OK", f"slot {st.current_slot} in position", ""

    # -- commands ----------------------------------------------------------------------------

    async def home(self, request_id: str, role: str, lease_id: str | None) -> dict[str, Any]:
        """Homes the carousel once per request id. :raises HardwareFault: when homing fails."""
        self.leases.check(NAME, lease_id)
        return await self.commands.run(
            request_id, "/hwd.v1.Carousel/Home", {}, role, lambda: self.one_at_a_time(self._home)
        )

    async def select(
        self, request_id: str, role: str, lease_id: str | None, *, connector: Connector | None, slot: int | None
    ) -> dict[str, Any]:
        """Presents a slot, by connector or number, once per request id.

        :returns: {"slot": n, "connector": name}.
        :raises InvalidArgument: naming the field, for an unknown connector or a slot out of range.
        :raises DeviceNotReady: not homed, or faulted. :raises HardwareFault: the move failed.
        """
        self.leases.check(NAME, lease_id)
        await self._known()
        target = self._resolve(connector, slot)
        params = {"connector": connector.name} if connector is not None else {"slot": slot}
        return await self.commands.run(
            request_id, "/hwd.v1.Carousel/Select", params, role, lambda: self.one_at_a_time(lambda: self._move(target))
        )

    async def test_cable(self, request_id: str, role: str, lease_id: str | None, slot: int) -> dict[str, Any]:
        """Moves to ``slot`` if needed and tests its cable. :returns: {"result": CableTest name}."""
        self.leases.check(NAME, lease_id)
        await self._known()
        self._check_slot(slot)
        return await self.commands.run(
            request_id,
            "/hwd.v1.Carousel/TestCable",
            {"slot": slot},
            role,
            lambda: self.one_at_a_time(lambda: self._test(slot)),
        )

    async def safe_stop(self) -> None:
        """Stops any motion (daemon shutdown); a silent controller is left as it is."""
        if self.current is not None and self.current.moving:
            try:
                await self.controller.stop()
            except HwdError as exc:
                log.warning("could not stop the carousel: %s", exc.message)

    async def _known(self) -> None:
        """Reads the controller when no reading is at hand (before the first poll, or OFFLINE).

        Without one the slot map is unknown and every slot would look out of range.
        :raises DeviceUnavailable: the controller does not answer.
        """
        if self.current is None:
            await self.refresh()

    def _check_slot(self, slot: int) -> None:
        count = len(self.slot_map(self.current)) or (self.current.slot_count if self.current else 0)
        if not 0 <= slot < count:
            raise InvalidArgument(f"slot: {slot} is not in 0..{count - 1}", metadata={"field": "slot"})

    def _resolve(self, connector: Connector | None, slot: int | None) -> int:
        if slot is not None:
            self._check_slot(slot)
            return slot
        if connector is None or connector is Connector.EMPTY:
            raise InvalidArgument("target: a connector or a slot is required", metadata={"field": "target"})
        for n, held in enumerate(self.slot_map(self.current)):
            if held is connector and self.cable_tests.get(n) not in (CableTest.OPEN, CableTest.SHORT):
                return n
        message = f"connector: no working {connector.name} cable in this carousel"
        raise InvalidArgument(message, metadata={"field": "connector"})

    async def _ready(self) -> CarouselState:
        st = await self.refresh()
        if st.fault:
            raise DeviceNotReady(f"carousel fault {st.fault_name}", device=NAME, hint=JAM_HINT)
        if not st.homed:
            raise DeviceNotReady("the carousel is not homed", device=NAME, hint="Home the carousel first.")
        return st

    async def _home(self) -> dict[str, Any]:
        st = await self.refresh()
        if st.fault:
            await self.controller.clear_fault()
        await self.bus.publish(NAME, CarouselMotion(MotionPhase.STARTED, None, None))
        await self.controller.home()
        st = await self._until(lambda s: not s.moving and (s.homed or s.fault), "homing")
        return {"slot": st.current_slot}

    async def _move(self, target: int) -> dict[str, Any]:
        st = await self._ready()
        if st.current_slot != target:
            await self.bus.publish(NAME, CarouselMotion(MotionPhase.STARTED, target, st.current_slot))
            await self.controller.move(target)
            st = await self._until(lambda s: not s.moving and (s.current_slot == target or s.fault), f"slot {target}")
        await self.bus.publish(NAME, CarouselMotion(MotionPhase.ARRIVED, target, target))
        return {"slot": target, "connector": self.slot_map(st)[target].name}

    async def _test(self, slot: int) -> dict[str, Any]:
        await self._move(slot)
        await self.controller.test_cable(slot)
        await self._until(lambda s: not s.testing, f"the cable test of slot {slot}")
        result = await self.controller.cable_test(slot)
        self.cable_tests[slot] = result
        return {"result": result.name}

    async def _until(self, done: Callable[[CarouselState], bool], what: str) -> CarouselState:
        """Reads the controller until ``done``; a fault on the way, or the deadline, fails the move."""
        deadline = time.monotonic() + self.move_timeout_s
        while not done(st := await self.refresh()):
            if time.monotonic() > deadline:
                raise await self._failed(st, f"the carousel did not complete {what} in {self.move_timeout_s:g} s")
            await asyncio.sleep(self.command_poll_s)
        if st.fault and not st.over_current:  # a short found by a cable test is a result, not a failure
            raise await self._failed(st, f"the carousel failed on the way to {what}: {st.fault_name}")
        return st

    async def _failed(self, st: CarouselState, message: str) -> HardwareFault:
        await self.bus.publish(NAME, CarouselMotion(MotionPhase.FAILED, st.target_slot, st.current_slot))
        return HardwareFault(message, device=NAME, hint=JAM_HINT if st.jam else "See the carousel's status.")
