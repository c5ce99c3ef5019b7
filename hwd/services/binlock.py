"""The bin lock service: journaled unlocks with their reason, sensor events, alarms, fail-secure stop."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from hwd.errors import HardwareFault, HwdError, InvalidArgument
from hwd.model import Alarm, DeviceState, LockCommanded, LockSensors, LockState
from hwd.services.commands import CommandRunner
from hwd.services.controllers import BinLockController
from hwd.services.events import EventBus
from hwd.services.leases import LeaseTable
from hwd.services.polled import ControllerDevice
from hwd.services.registry import DeviceRegistry

log = logging.getLogger(__name__)

NAME = "lock"
MAX_REASON = 256
MAX_RELOCK_S = 600
BOLT_TIMEOUT_S = 2.0  # the reference bolt moves in 0.3 s and reports a jam after 1 s
TAMPER_HINT = (
    "Inspect the bin and its door, then lock it from the technician socket (hwd lock lock) to clear the alarm."
)


class BinLockService(ControllerDevice[LockState]):
    """Drives one bin lock controller.

    :param door_alarm_s: seconds the door may stay open before a DOOR_LEFT_OPEN alarm.
    """

    def __init__(
        self,
        controller: BinLockController,
        registry: DeviceRegistry,
        bus: EventBus,
        commands: CommandRunner,
        leases: LeaseTable,
        *,
        poll_s: float = 0.2,
        door_alarm_s: float = 120.0,
    ) -> None:
        super().__init__(NAME, controller, registry, poll_s)
        self.controller = controller
        self.bus = bus
        self.commands = commands
        self.leases = leases
        self.door_alarm_s = door_alarm_s
        self._sensors: LockSensors | None = None
        self._alarmed: set[str] = set()

    async def observe(self, state: LockState) -> None:
        sensors = LockSensors(state.bolt_extended, state.door_closed, state.unlock_output, state.tamper, state.forced)
        if sensors != self._sensors:
            self._sensors = sensors
            await self.bus.publish(NAME, sensors)
        await self._alarms(state)
        await self.registry.set(NAME, *self.status_of(state))

    async def _alarms(self, st: LockState) -> None:
        """Raises each alarm once per occurrence (a door left open alarms again after it closed)."""
        wanted = {
            "DOOR_FORCED": (st.forced, "the door was opened while the bolt was out"),
            "TAMPER": (st.tamper, "the tamper switch tripped"),
            "DOOR_LEFT_OPEN": (st.door_open_s >= self.door_alarm_s, f"the door has been open {st.door_open_s} s"),
        }
        for code, (active, detail) in wanted.items():
            if active and code not in self._alarmed:
                self._alarmed.add(code)
                await self.bus.publish(NAME, Alarm(code, detail))
            elif not active:
                self._alarmed.discard(code)

    def status_of(self, st: LockState) -> tuple[DeviceState, str, str, str]:
        """The DeviceStatus fields (state, reason, detail, hint) for a reading."""
        if st.forced or st.tamper:
            reason = "DOOR_FORCED" if st.forced else "TAMPER"
            return DeviceState.TAMPERED, reason, "the bin was tampered with", TAMPER_HINT
        if st.fault:
            hint = "Check the bolt and its sensor; the bin may not be secure."
            return DeviceState.HARDWARE_ERROR, st.fault_name, f"controller fault {st.fault_name}", hint
        if not st.door_closed and st.door_open_s >= self.door_alarm_s:
            return DeviceState.USER_ERROR, "DOOR_LEFT_OPEN", f"open for {st.door_open_s} s", "Close the bin door."
        if st.locked:
            return DeviceState.ONLINE, "LOCKED", "door closed, bolt out", ""
        detail = f"door {'closed' if st.door_closed else 'open'}, bolt {'out' if st.bolt_extended else 'in'}"
        if st.relock_pending:
            detail += f", relock in {st.relock_remaining_s} s"
        return DeviceState.ONLINE, "UNLOCKED", detail, ""

    # -- commands ----------------------------------------------------------------------------

    async def unlock(
        self, request_id: str, role: str, lease_id: str | None, reason: str, relock_after_s: int
    ) -> dict[str, Any]:
        """Unlocks once per request id; the intent and the reason are journaled before the output moves.

        :raises InvalidArgument: naming the field, for a missing reason or a relock delay out of range.
        """
        if not reason.strip() or len(reason) > MAX_REASON:
            raise InvalidArgument(f"reason: 1 to {MAX_REASON} characters are required", metadata={"field": "reason"})
        if not 0 <= relock_after_s <= MAX_RELOCK_S:
            raise InvalidArgument(f"relock_after: 0 to {MAX_RELOCK_S} s", metadata={"field": "relock_after"})
        self.leases.check(NAME, lease_id)

        async def act() -> dict[str, Any]:
            await self.bus.publish(NAME, LockCommanded("unlock", reason, role, request_id, relock_after_s))
            await self.controller.unlock(relock_after_s)
            return {"counter": (await self._bolt_moved(extended=False)).command_counter}

        params = {"reason": reason, "relock_after_s": relock_after_s}
        return await self.commands.run(
            request_id, "/hwd.v1.BinLock/Unlock", params, role, lambda: self.one_at_a_time(act)
        )

    async def lock(self, request_id: str, role: str, lease_id: str | None, *, clear_alarm: bool) -> dict[str, Any]:
        """Locks once per request id; with ``clear_alarm`` (a technician) it also clears a latched tamper alarm."""
        self.leases.check(NAME, lease_id)

        async def act() -> dict[str, Any]:
            await self.bus.publish(NAME, LockCommanded("lock", "", role, request_id, 0))
            await self.controller.lock()
            latched = await self.refresh()  # not the last poll's reading: it may predate the alarm
            if clear_alarm and (latched.tamper or latched.forced):
                await self.controller.clear_tamper()
            st = await self.refresh()
            if st.door_closed:  # with the door open the bolt waits for it; nothing to wait for here
                st = await self._bolt_moved(extended=True)
            return {"counter": st.command_counter}

        return await self.commands.run(request_id, "/hwd.v1.BinLock/Lock", {}, role, lambda: self.one_at_a_time(act))

    async def _bolt_moved(self, *, extended: bool) -> LockState:
        """Reads the lock until the bolt is out (``extended``) or in; a bolt that does not move is a fault."""
        deadline = time.monotonic() + BOLT_TIMEOUT_S
        while (st := await self.refresh()).bolt_extended != extended and not st.fault:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(self.command_poll_s)
        if st.bolt_extended != extended:
            where = "extend: the bin is NOT locked" if extended else "retract: the bin is still locked"
            hint = "Check the bolt and its sensor."
            raise HardwareFault(f"the bolt did not {where} ({st.fault_name})", device=NAME, hint=hint)
        return st

    async def safe_stop(self) -> None:
        """Fail-secure on daemon stop: lock (the controller's own timer relocks anyway)."""
        try:
            await self.controller.lock()
        except HwdError as exc:
            log.warning("could not lock the bin on stop: %s (its relock timer still will)", exc.message)
