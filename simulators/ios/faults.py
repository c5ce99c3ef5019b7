"""Faults of one simulated iPhone, injected on demand and shared by its lockdownd and service connections."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from simulators.device import check_params, seconds_param

#: One-shot faults: each happens once, at the next reply, then is gone.
ONE_SHOT = ("drop", "malformed-plist", "huge-length")
#: Every fault an iPhone takes (besides the ``port`` parameter that picks the phone).
FAULTS = ("usb-reset", "stall", *ONE_SHOT, "slow", "clear")
#: The longest "slow" delay.
MAX_DELAY_S = 60.0
#: The length prefix ``huge-length`` sends: far above any cap.
HUGE_LENGTH = 0x7FFFFFF0


class IphoneFaults:
    """What is wrong with an iPhone right now.

    - ``usb-reset``: the phone drops off USB and comes back with a new usbmuxd DeviceID right
      after its customer trusts a computer (at once when it trusts one already).
    - ``stall``: no more replies on any connection (sockets stay open) until ``clear``.
    - ``drop``: the next request is cut off by closing its connection (inside TLS if a session is up).
    - ``malformed-plist``: the next reply's plist is not a plist.
    - ``huge-length``: the next reply's length prefix is :data:`HUGE_LENGTH`, with nothing after it.
    - ``slow``: every reply is sent ``seconds`` late (default 1) until ``clear``.
    - ``clear``: all of the above are gone (a reset armed for the next trust too).
    """

    def __init__(self) -> None:
        self._armed: set[str] = set()
        self.reset_after_trust = False
        self.delay_s = 0.0
        self._running = asyncio.Event()
        self._running.set()

    def apply(self, name: str, params: Mapping[str, str]) -> None:
        """Inject fault ``name`` (``usb-reset`` is acted on by the phone; this only records it).

        :param params: ``seconds`` for ``slow``; nothing for the others.
        :raises ValueError: an unknown fault or parameter, or a bad value.
        """
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r} for an iPhone; it takes: {', '.join(FAULTS)}")
        check_params(name, params, ("seconds",) if name == "slow" else ())
        if name == "slow":
            self.delay_s = seconds_param(params, "seconds", 1.0, MAX_DELAY_S)
        elif name == "stall":
            self._running.clear()
        elif name == "usb-reset":
            self.reset_after_trust = True
        elif name == "clear":
            self._armed.clear()
            self.reset_after_trust = False
            self.delay_s = 0.0
            self._running.set()
        else:
            self._armed.add(name)

    def take(self, name: str) -> bool:
        """Whether one-shot fault ``name`` is armed; it is disarmed by being taken."""
        if name in self._armed:
            self._armed.discard(name)
            return True
        return False

    def take_reset(self) -> bool:
        """Whether a reset after trust is armed; disarmed by being taken."""
        armed, self.reset_after_trust = self.reset_after_trust, False
        return armed

    @property
    def stalled(self) -> bool:
        """Whether the phone has stopped answering."""
        return not self._running.is_set()

    async def before_reply(self) -> None:
        """Wait as the faults say before a reply goes out: while stalled, then the slow delay."""
        await self._running.wait()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)

    def active(self) -> list[str]:
        """The faults in effect, e.g. ``["stall", "slow 2s", "usb-reset"]``."""
        names = ["stall"] if self.stalled else []
        if self.delay_s:
            names.append(f"slow {self.delay_s:g}s")
        if self.reset_after_trust:
            names.append("usb-reset")
        return names + sorted(self._armed)
