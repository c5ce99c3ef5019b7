"""The phone ports: one session per plug, from discovery to a complete report (DESIGN.md section 5).

A port's session moves ABSENT -> ENUMERATING -> AWAITING_TRUST -> IDENTIFYING -> READY, or ends
LOCKED, DENIED, UNSUPPORTED or ERROR; an unplug returns it to ABSENT at once. Each session is one
task owned by the service; every transition is a PortChanged event and a registry update.

An iPhone resets its USB connection once the customer taps Trust: it leaves and comes back on the
same port with the same UDID. While its session waits for Trust or reads it, a removal holds the
session for ``reset_grace_s``; the same phone back within it continues the session (the reader
reconnects by UDID on its own). When a phone leaves for good, the reader's ``release`` forgets it
(an iPhone's pair records), so nothing of the customer's phone stays on the kiosk.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hwd.errors import DeviceNotReady, DeviceUnavailable, HwdError, UnknownPort
from hwd.model import PortChanged
from hwd.model.phones import Platform, PortEvent, PortState, PortStatus
from hwd.services.events import EventBus
from hwd.services.phones_release import Releases
from hwd.services.phones_states import (
    LOCK_RULES,
    RESET_DETAIL,
    TRUST_HINT,
    WAITING_DETAIL,
    LockRule,
    Outcome,
    PhoneReader,
    PortSource,
    PortWatchers,
    device_name,
    failed,
    identified,
    registry_status,
    unsupported,
)
from hwd.services.registry import DeviceRegistry

__all__ = ["CANCEL_GRACE_S", "WATCH_BACKLOG", "PhoneReader", "PhonesService", "PortSource"]

log = logging.getLogger(__name__)

# How long an unplug waits for a cancelled session to release its connection before it moves on.
CANCEL_GRACE_S = 2.0
# How long a reader may take to forget a phone that left (delete its pair records).
RELEASE_DEADLINE_S = 5.0
RESET_BACK_DETAIL = "the phone is back after restarting its USB connection"
# Waiting states a WatchPorts subscriber may lag before its backlog keeps only each port's newest.
WATCH_BACKLOG = 64
# States in which the phone is not connected yet: Refresh is refused there.
_NOT_CONNECTED = (PortState.ABSENT, PortState.ENUMERATING, PortState.AWAITING_TRUST)


@dataclass
class _Port:
    """One row of the port table: its status, the device on it, its session task, and the run
    number that makes a stale task's late transitions no-ops."""

    status: PortStatus
    event: PortEvent | None = None
    task: asyncio.Task[None] | None = None
    run: int = 0
    leaving: asyncio.Task[None] | None = None  # an iPhone's USB reset: the session is held until it ends


class PhonesService:
    """The port table and the phone sessions on it.

    :param source: where arrivals and removals come from.
    :param readers: a reader per platform; a phone of another platform is UNSUPPORTED.
    :param ports: ports that always show, ABSENT while empty (the kiosk's cabled ports).
    :param identify_deadline_s: a last-resort bound on one identification, prompt included (the
        readers keep their own deadlines); past it the port is ERROR ``PHONE_TOO_SLOW``. None: no bound.
    :param reset_grace_s: how long an iOS session waiting for Trust or identifying survives a removal
        (the USB reset after Trust); 0: a removal always ends the session at once.
    :param lock_rules: which complete reports are LOCKED, by platform, over the built-in ones.
    :param release_deadline_s: how long a reader's ``release`` may take once a phone left.
    """

    def __init__(
        self,
        source: PortSource,
        readers: Mapping[Platform, PhoneReader],
        registry: DeviceRegistry,
        bus: EventBus,
        *,
        ports: Iterable[str] = (),
        identify_deadline_s: float | None = None,
        reset_grace_s: float = 0.0,
        lock_rules: Mapping[Platform, LockRule] | None = None,
        release_deadline_s: float = RELEASE_DEADLINE_S,
    ) -> None:
        self._source = source
        self._readers = dict(readers)
        self._registry = registry
        self._bus = bus
        self._deadline_s = identify_deadline_s
        self._grace_s = reset_grace_s
        self._lock_rules = {**LOCK_RULES, **(lock_rules or {})}
        self._releases = Releases(release_deadline_s)
        self._ports = {port: _Port(PortStatus(port, since_ns=time.time_ns())) for port in ports}
        self._configured = tuple(self._ports)
        self._publishing = asyncio.Lock()  # one transition at a time: events leave in the order of the table
        self._watchers = PortWatchers(WATCH_BACKLOG)
        self._dying: set[asyncio.Task[None]] = set()
        self._stopped = False

    # --- reading the table -------------------------------------------------------------------------

    def ports(self) -> list[PortStatus]:
        """Every known port (configured, or seen since start), sorted by port path."""
        return [self._ports[port].status for port in sorted(self._ports)]

    def get(self, port: str) -> PortStatus:
        """One port's status. :raises UnknownPort:"""
        return self._slot(port).status

    def session_of(self, port: str) -> str | None:
        """The session id of the phone on ``port``, or None when the port is empty or unknown."""
        slot = self._ports.get(port)
        return (slot.status.session_id or None) if slot is not None else None

    def running(self) -> list[str]:
        """Ports whose session task still runs (including cancelled ones still closing)."""
        busy = {port for port, slot in self._ports.items() if slot.task is not None and not slot.task.done()}
        return sorted(busy | {t.get_name().removeprefix("phone-session:") for t in self._dying})

    def watch(self) -> AsyncIterator[PortStatus]:
        """Every port now, then each change as it happens; subscribed at the call, so nothing
        between the call and the first read is missed.

        :raises ShuttingDown: (from the iterator) when the service stops.
        """
        return self._watchers.subscribe(self.ports())

    def _slot(self, port: str) -> _Port:
        slot = self._ports.get(port)
        if slot is None:
            raise UnknownPort(
                f"no phone port {port!r}", device=device_name(port), hint="List the ports with ListPorts."
            )
        return slot

    # --- discovery ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Consumes the port source until cancelled (a supervised task).

        :raises DeviceUnavailable: when discovery ends; every port is then ABSENT (the supervisor
            restarts it, and discovery announces the phones still there as new sessions).
        """
        for port in self._configured:
            await self._registry.set(device_name(port), *registry_status(self._ports[port].status))
        try:
            await self._consume()
        except asyncio.CancelledError:
            await self.stop()
            raise
        except Exception:
            await self._forget_all()
            raise
        if self._stopped:
            return
        await self._forget_all()
        raise DeviceUnavailable("phone discovery ended", device="phones")

    async def _consume(self) -> None:
        events = self._source.events()
        try:
            async for event in events:
                if self._stopped:
                    return
                await (self._plug(event) if event.attached else self._removed(event.port))
        finally:
            close: Any = getattr(events, "aclose", None)  # an async generator holds a stream: close it now
            if close is not None:
                await close()

    async def _forget_all(self) -> None:
        """Discovery was lost: nothing on any port can be trusted to be there."""
        for port, slot in list(self._ports.items()):
            if slot.event is not None and not self._stopped:
                await self._unplug(port)

    async def _plug(self, event: PortEvent) -> None:
        slot = self._ports.setdefault(event.port, _Port(PortStatus(event.port, since_ns=time.time_ns())))
        if slot.leaving is not None and await self._back(slot, event):
            return
        if slot.event == event:
            return  # the same device announced again (a discovery restart): its session goes on
        if slot.event is not None:
            await self._unplug(event.port)  # another device took the port without a removal between
        slot.event = event
        slot.run += 1
        await self._set(event.port, slot.run, PortState.ENUMERATING, platform=event.platform,
                        session_id=uuid.uuid4().hex, detail=event.description)  # fmt: skip
        self._start(slot, event)

    async def _removed(self, port: str) -> None:
        """Discovery saw the device on ``port`` leave: the session ends, or is held across a USB reset."""
        slot = self._ports.get(port)
        if slot is None or slot.event is None or slot.leaving is not None:
            return
        busy = slot.task is not None and not slot.task.done()
        held = slot.status.state in (PortState.AWAITING_TRUST, PortState.IDENTIFYING)
        if not (self._grace_s > 0 and slot.event.platform is Platform.IOS and busy and held):
            await self._unplug(port)
            return
        slot.leaving = asyncio.create_task(self._reset_over(port, slot.run), name=f"phone-reset:{port}")
        await self._annotate(port, slot.run, RESET_DETAIL)

    async def _reset_over(self, port: str, run: int) -> None:
        """The phone did not come back within the grace: it left."""
        await asyncio.sleep(self._grace_s)  # a one-shot timer, cancelled when the phone comes back
        slot = self._ports[port]
        if slot.run == run and slot.leaving is asyncio.current_task():
            slot.leaving = None
            await self._unplug(port)

    async def _back(self, slot: _Port, event: PortEvent) -> bool:
        """Ends ``slot``'s USB reset; True when ``event`` is the same phone back (its session goes on)."""
        leaving, slot.leaving = slot.leaving, None
        if leaving is not None:
            leaving.cancel()
        old = slot.event
        if old is None or (old.platform, old.serial) != (event.platform, event.serial) or not old.serial:
            return False
        slot.event = event
        await self._annotate(event.port, slot.run, RESET_BACK_DETAIL)
        return True

    async def _unplug(self, port: str) -> None:
        slot = self._ports.get(port)
        if slot is None or slot.event is None:
            return
        event, slot.event, task, slot.task = slot.event, None, slot.task, None
        if slot.leaving is not None:
            slot.leaving.cancel()
            slot.leaving = None
        slot.run += 1  # from here on the old session's transitions are ignored
        self._retire(task)
        await self._set(port, slot.run, PortState.ABSENT, platform=None, session_id="")
        if task is not None and not task.done():
            # A little time for the cancelled session to close its connection; one that takes
            # longer is awaited at stop(), so that one stuck phone does not stall discovery.
            done, _ = await asyncio.wait({task}, timeout=CANCEL_GRACE_S)
            if not done:
                log.warning("the session on %s did not end within %.1f s of its cancellation", port, CANCEL_GRACE_S)
        self._releases.start(self._readers.get(event.platform) if event.platform else None, event)

    def _retire(self, task: asyncio.Task[None] | None) -> None:
        """Cancels a session task and keeps it, until it ends, among those :meth:`stop` awaits."""
        if task is None or task.done():
            return
        task.cancel()
        self._dying.add(task)
        task.add_done_callback(self._dying.discard)

    # --- sessions ----------------------------------------------------------------------------------

    def _start(self, slot: _Port, event: PortEvent, *, again: bool = False) -> None:
        if self._stopped:  # stop() ran while the plug was being published
            return
        task = asyncio.create_task(self._session(event, slot.run, again), name=f"phone-session:{event.port}")
        task.add_done_callback(_log_crash)
        slot.task = task

    async def _session(self, event: PortEvent, run: int, again: bool) -> None:
        if again:
            await self._set(event.port, run, PortState.IDENTIFYING)
        outcome = unsupported(event, frozenset(self._readers)) or await self._identify(event, run)
        await self._set(event.port, run, outcome.state, reason=outcome.reason, detail=outcome.detail,
                        hint=outcome.hint, report=outcome.report)  # fmt: skip

    async def _identify(self, event: PortEvent, run: int) -> Outcome:
        assert event.platform is not None
        port = event.port

        async def on_prompt(text: str, seconds: float) -> None:
            deadline = time.time_ns() + int(max(seconds, 0.0) * 1e9)
            await self._set(port, run, PortState.AWAITING_TRUST, detail=WAITING_DETAIL, hint=text or TRUST_HINT,
                            trust_prompt=text or TRUST_HINT, trust_deadline_ns=deadline)  # fmt: skip

        async def on_identifying() -> None:
            await self._set(port, run, PortState.IDENTIFYING)

        try:
            async with asyncio.timeout(self._deadline_s):
                report = await self._readers[event.platform].identify(event, on_prompt, on_identifying)
        except TimeoutError:
            detail = f"no complete report within {self._deadline_s:g} s"
            return Outcome(PortState.ERROR, "PHONE_TOO_SLOW", detail, "Unplug the phone and plug it in again.")
        except HwdError as exc:
            return failed(exc)
        except Exception:  # a bug in a reader must not leave the port IDENTIFYING for ever
            log.exception("reading the phone on %s failed", port)
            return Outcome(PortState.ERROR, "INTERNAL", "reading the phone failed; see the daemon log")
        return identified(event.platform, report, self._lock_rules)

    async def refresh(self, port: str) -> PortStatus:
        """Reads the phone on ``port`` again (same session) and waits for the outcome.

        An identification already in progress is awaited rather than restarted.

        :returns: the port once the identification ended (ABSENT if the phone was unplugged meanwhile).
        :raises UnknownPort: for a port the service does not know.
        :raises DeviceNotReady: when no phone is there or it is not connected yet.
        """
        slot = self._slot(port)
        state = slot.status.state
        if slot.event is None or state in _NOT_CONNECTED:
            raise DeviceNotReady(f"no connected phone on port {port} ({state.value})", device=device_name(port),
                                 hint="Wait for the phone to be READY, or plug one in.")  # fmt: skip
        if slot.task is None or slot.task.done() or state is not PortState.IDENTIFYING:
            # No await between the check and the new task: two refreshes cannot both start one.
            self._retire(slot.task)
            slot.run += 1
            self._start(slot, slot.event, again=True)
        assert slot.task is not None
        await asyncio.wait({slot.task})  # not cancelled with the caller: the session goes on
        return slot.status

    async def forgotten(self) -> None:
        """Waits until the phones that left are forgotten (their readers' releases ended)."""
        await self._releases.wait()

    async def stop(self) -> None:
        """Ends every session (no task or connection is left) and every watcher; later arrivals are
        ignored. The ports keep their last state: the daemon is stopping, not the phones leaving."""
        self._stopped = True
        tasks = set(self._dying)
        for slot in self._ports.values():
            slot.run += 1
            tasks.update(task for task in (slot.leaving, slot.task) if task is not None)
            slot.leaving = slot.task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._releases.wait()  # a phone that left just before the stop is still forgotten
        self._watchers.close()

    # --- transitions -------------------------------------------------------------------------------

    async def _set(self, port: str, run: int, state: PortState, **changes: Any) -> None:
        """Moves ``port`` to ``state`` unless ``run`` is stale; fields not given are reset, except the
        platform and session, which carry over. Publishes the change (event, registry, watchers)."""
        async with self._publishing:
            slot = self._ports[port]
            if run != slot.run:
                return
            old = slot.status
            keep = {"platform": old.platform, "session_id": old.session_id}
            fields = {"reason": "OK", "detail": "", "recovery_hint": changes.pop("hint", ""), **keep, **changes}
            new = PortStatus(port, state, since_ns=time.time_ns(), **fields)
            if dataclasses.replace(new, since_ns=old.since_ns) == old:
                return  # nothing changed: no event
            await self._commit(slot, new)

    async def _annotate(self, port: str, run: int, detail: str) -> None:
        """Publishes a new detail for ``port``'s current state, every other field kept (unless ``run`` is stale)."""
        async with self._publishing:
            slot = self._ports[port]
            if run != slot.run or slot.status.detail == detail:
                return
            await self._commit(slot, dataclasses.replace(slot.status, detail=detail, since_ns=time.time_ns()))

    async def _commit(self, slot: _Port, status: PortStatus) -> None:
        """Makes ``status`` the slot's and publishes it (event, registry, watchers); under ``_publishing``."""
        slot.status = status
        try:
            await self._publish(status)
        finally:  # watchers hear of it once it is journaled, as event subscribers do
            self._watchers.offer(status)

    async def _publish(self, status: PortStatus) -> None:
        platform = status.platform.value if status.platform is not None else ""
        change = PortChanged(status.port, status.state.value, status.reason, status.detail, status.session_id, platform)
        try:
            await self._bus.publish(device_name(status.port), change)
            await self._registry.set(device_name(status.port), *registry_status(status))
        except HwdError as exc:  # the journal is down: the port table still serves the live state
            log.warning("port %s is %s but the change was not journaled: %s", status.port, status.state.value,
                        exc.message)  # fmt: skip


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("phone session task %s crashed", task.get_name(), exc_info=exc)
