"""What a phone port's states mean outside the port table: the device registry's view of them, the
outcome of an identification (state, reason, hint), and the bounded queues of port watchers."""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from hwd.errors import HwdError, PhoneError, ShuttingDown
from hwd.model import DeviceState
from hwd.model.phones import PhoneReport, Platform, PortEvent, PortState, PortStatus

PromptCallback = Callable[[str, float], Awaitable[None]]
IdentifyingCallback = Callable[[], Awaitable[None]]


class PortSource(Protocol):
    """Discovery: USB devices arriving on and leaving ports (udev, the simulated kiosk)."""

    def events(self) -> AsyncIterator[PortEvent]:
        """Every device present now (attached), then each arrival and removal, until cancelled."""
        ...


class PhoneReader(Protocol):
    """Reads one phone of one platform (Android over ADB, iOS over usbmuxd and lockdownd)."""

    async def identify(
        self, event: PortEvent, on_prompt: PromptCallback, on_identifying: IdentifyingCallback
    ) -> PhoneReport:
        """Connects to the phone of ``event`` and reads its report.

        :param on_prompt: awaited with what the customer sees and the seconds until the prompt
            times out, when the phone asks the customer to allow the kiosk.
        :param on_identifying: awaited once connected, before the report is read.
        :raises PhoneError: with ``code`` such as TRUST_REFUSED, TRUST_TIMEOUT, PHONE_STALLED.
        """
        ...


TRUST_HINT = "Unlock the phone and answer the prompt on its screen."  # when the reader gives no text
WAITING_DETAIL = "waiting for the customer to allow the kiosk on the phone"
DEBUGGING_HINT = (
    "On the phone, open Settings > About phone and tap Build number seven times, then turn on "
    "Settings > System > Developer options > USB debugging, and plug the phone in again."
)
NOT_A_PHONE_HINT = "This is not a phone the kiosk can read: unplug it."
NO_READER_HINT = "This kiosk cannot read this kind of phone yet: hand the phone back to the customer."
IOS_LOCK_HINT = (
    "Ask the customer to turn off Find My (Settings > their name > Find My), sign out of their Apple ID and "
    "remove any device management profile before the phone is taken in."
)
RESET_DETAIL = "the phone is restarting its USB connection after Trust"
FRP_HINT = "Ask the customer to remove their Google account (Settings > Accounts) before the phone is taken in."
RETRY_HINT = "Unplug the phone and plug it in again; if it fails again, restart the phone."
DENIED_HINTS = {
    "TRUST_REFUSED": "Unplug the phone, plug it in again and tap Allow on the phone.",
    "TRUST_TIMEOUT": "Unplug the phone, plug it in again, unlock it and tap Allow when it asks.",
}

# How each port state shows in the device registry (device "port:<path>"): a port with nothing in
# it is NO_DEVICE; a session in progress keeps the port BUSY; the customer must act on DENIED and
# UNSUPPORTED; a phone that fails mid-read is a fault of what is on the port.
DEVICE_STATES: dict[PortState, DeviceState] = {
    PortState.ABSENT: DeviceState.NO_DEVICE,
    PortState.ENUMERATING: DeviceState.BUSY,
    PortState.AWAITING_TRUST: DeviceState.BUSY,
    PortState.IDENTIFYING: DeviceState.BUSY,
    PortState.READY: DeviceState.ONLINE,
    PortState.LOCKED: DeviceState.ONLINE,
    PortState.DENIED: DeviceState.USER_ERROR,
    PortState.UNSUPPORTED: DeviceState.USER_ERROR,
    PortState.ERROR: DeviceState.HARDWARE_ERROR,
}


def device_name(port: str) -> str:
    """The registry and event source name of a port: ``port:<path>``."""
    return f"port:{port}"


def registry_status(status: PortStatus) -> tuple[DeviceState, str, str, str]:
    """The (state, reason, detail, hint) a port shows in the device registry.

    A state in progress without a reason of its own is named by the state (e.g. ``AWAITING_TRUST``),
    so that `hwd probe` says what the port is doing.
    """
    reason = status.reason
    if reason == "OK" and status.state not in (PortState.READY, PortState.LOCKED):
        reason = status.state.value
    return DEVICE_STATES[status.state], reason, status.detail or status.trust_prompt, status.recovery_hint


@dataclass(frozen=True)
class Outcome:
    """Where a session ends: the port's final state with its reason, detail, hint and report."""

    state: PortState
    reason: str = "OK"
    detail: str = ""
    hint: str = ""
    report: PhoneReport | None = None


#: Whether a complete report is locked, and why: a stable UPPER_SNAKE_CASE reason or a sentence.
LockRule = Callable[[PhoneReport], tuple[bool, str]]
_REASON = re.compile(r"[A-Z][A-Z0-9_]{1,63}")


def frp_rule(report: PhoneReport) -> tuple[bool, str]:
    """Android: LOCKED when Factory Reset Protection is likely (a Google account is on the phone)."""
    locked = report.frp_likely.available and report.frp_likely.value is True
    return locked, "FRP_LIKELY" if locked else ""


#: The lock rules built in; others (iOS's activation lock) come from the daemon, which knows the drivers.
LOCK_RULES: dict[Platform, LockRule] = {Platform.ANDROID: frp_rule}
_LOCKS = {
    Platform.ANDROID: ("FRP_LIKELY", "a Google account is on the phone", FRP_HINT),
    Platform.IOS: ("ACTIVATION_LOCK", "the phone may be locked to its owner", IOS_LOCK_HINT),
}


def identified(platform: Platform, report: PhoneReport, rules: Mapping[Platform, LockRule] = LOCK_RULES) -> Outcome:
    """The outcome of a complete report: LOCKED when the platform's lock rule holds, else READY.

    :param rules: the lock rule of each platform; a rule that fails counts as locked (an unknown is
        never reported as unlocked).
    """
    rule = rules.get(platform)
    if rule is None:
        return Outcome(PortState.READY, report=report)
    try:
        locked, why = rule(report)
    except Exception as exc:  # a bug in a rule must not let a locked phone through
        locked, why = True, f"the lock state could not be decided ({type(exc).__name__})"
    if not locked:
        return Outcome(PortState.READY, report=report)
    reason, detail, hint = _LOCKS[platform]
    if _REASON.fullmatch(why):
        reason = why
    elif why:
        detail = why
    return Outcome(PortState.LOCKED, reason, detail, hint, report)


def failed(error: HwdError) -> Outcome:
    """The outcome of a failed identification: DENIED for a refused or ignored prompt, UNSUPPORTED
    for USB debugging off, else ERROR with the phone's reason (``PhoneError.code``) or the error's own."""
    if isinstance(error, PhoneError):
        if error.code == "USB_DEBUGGING_OFF":  # the reader found no ADB interface after all
            return Outcome(PortState.UNSUPPORTED, error.code, error.message, DEBUGGING_HINT)
        if error.code in DENIED_HINTS:
            return Outcome(PortState.DENIED, error.code, error.message, DENIED_HINTS[error.code])
        return Outcome(PortState.ERROR, error.code, error.message, error.hint or RETRY_HINT)
    return Outcome(PortState.ERROR, error.reason, error.message, error.hint or RETRY_HINT)


def unsupported(event: PortEvent, readable: frozenset[Platform]) -> Outcome | None:
    """The UNSUPPORTED outcome of a device the kiosk cannot read, or None when it can try.

    :param readable: the platforms the service has a reader for.
    """
    what = event.description or "a USB device"
    if event.platform is None:
        return Outcome(PortState.UNSUPPORTED, "NOT_A_PHONE", f"{what} is not a phone", NOT_A_PHONE_HINT)
    if event.platform is Platform.ANDROID and not event.debuggable:
        detail = "the phone offers no USB debugging interface (only file transfer)"
        return Outcome(PortState.UNSUPPORTED, "USB_DEBUGGING_OFF", detail, DEBUGGING_HINT)
    if event.platform not in readable:
        detail = f"this kiosk has no reader for {event.platform.value} phones"
        return Outcome(PortState.UNSUPPORTED, "PLATFORM_NOT_SUPPORTED", detail, NO_READER_HINT)
    return None


class PortWatcher:
    """One WatchPorts subscriber's backlog of port states.

    While it keeps up it gets every state; past ``cap`` waiting states the backlog is compacted to
    the newest state of each port, so a slow watcher loses intermediate states but always gets the
    latest, and its memory stays bounded by the number of ports.
    """

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._items: deque[PortStatus] = deque()
        self._wake = asyncio.Event()
        self._closed = False

    def offer(self, status: PortStatus) -> None:
        """Queues ``status`` (never blocks)."""
        self._items.append(status)
        if len(self._items) > self._cap:
            latest: dict[str, PortStatus] = {}
            for item in self._items:
                latest.pop(item.port, None)  # re-inserted at the end: ordered by their newest change
                latest[item.port] = item
            self._items = deque(latest.values())
        self._wake.set()

    def close(self) -> None:
        """Ends the subscription: :meth:`next` raises ShuttingDown once the backlog is read."""
        self._closed = True
        self._wake.set()

    async def next(self) -> PortStatus:
        """The next state. :raises ShuttingDown: once closed and drained."""
        while not self._items:
            if self._closed:
                raise ShuttingDown("the daemon is stopping")
            self._wake.clear()
            await self._wake.wait()
        return self._items.popleft()


class PortWatchers:
    """Every WatchPorts subscriber, each with its own :class:`PortWatcher` of ``cap`` waiting states."""

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._open: set[PortWatcher] = set()
        self._closed = False

    def subscribe(self, now: Iterable[PortStatus]) -> AsyncIterator[PortStatus]:
        """``now``, then every state offered from here on; subscribed at the call, so nothing between
        the call and the first read is missed.

        :raises ShuttingDown: (from the iterator) once closed and drained.
        """
        watcher = PortWatcher(self._cap)
        for status in now:
            watcher.offer(status)
        if self._closed:
            watcher.close()
        self._open.add(watcher)
        return self._follow(watcher)

    async def _follow(self, watcher: PortWatcher) -> AsyncIterator[PortStatus]:
        try:
            while True:
                yield await watcher.next()
        finally:
            self._open.discard(watcher)

    def offer(self, status: PortStatus) -> None:
        """Queues ``status`` for every subscriber (never blocks)."""
        for watcher in self._open:
            watcher.offer(status)

    def close(self) -> None:
        """Ends every subscription, and those made later, once each has read its backlog."""
        self._closed = True
        for watcher in self._open:
            watcher.close()
