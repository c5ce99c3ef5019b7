"""Faults of one simulated Android phone, injected on demand and shared by its connections."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from simulators.device import check_params, seconds_param

#: One-shot faults: each happens once, at the next occasion, then is gone.
ONE_SHOT = ("drop", "garbage", "bad-checksum", "oversized", "endless", "prompt-never-answered")
#: Every fault a phone takes (besides the ``port`` parameter that picks the phone).
FAULTS = ("stall", *ONE_SHOT, "slow", "clear")
#: The longest "slow" delay.
MAX_DELAY_S = 60.0


class PhoneFaults:
    """What is wrong with a phone right now.

    - ``stall``: nothing more is sent on any connection (the sockets stay open) until ``clear``.
    - ``drop``: the next shell command is cut off mid-way by closing its connection.
    - ``garbage``: the next packet sent is replaced by 24 bytes that are not an ADB header.
    - ``bad-checksum``: the next WRTE carries a wrong payload checksum.
    - ``oversized``: the next packet sent is replaced by a header claiming more than the
      negotiated maximum payload.
    - ``endless``: the next shell command's output never ends.
    - ``slow``: every packet is sent ``seconds`` late (default 1) until ``clear``.
    - ``prompt-never-answered``: the next "Allow USB debugging?" prompt is never answered.
    - ``clear``: all of the above are gone; a stalled phone goes on.
    """

    def __init__(self) -> None:
        self._armed: set[str] = set()
        self.delay_s = 0.0
        self._running = asyncio.Event()
        self._running.set()

    def apply(self, name: str, params: Mapping[str, str]) -> None:
        """Inject fault ``name``.

        :param params: ``seconds`` for ``slow``; nothing for the others.
        :raises ValueError: an unknown fault or parameter, or a bad value.
        """
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r} for a phone; it takes: {', '.join(FAULTS)}")
        check_params(name, params, ("seconds",) if name == "slow" else ())
        if name == "slow":
            self.delay_s = seconds_param(params, "seconds", 1.0, MAX_DELAY_S)
        elif name == "stall":
            self._running.clear()
        elif name == "clear":
            self._armed.clear()
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

    @property
    def stalled(self) -> bool:
        """Whether the phone has stopped answering."""
        return not self._running.is_set()

    async def wait_running(self) -> None:
        """Return once the phone is not stalled."""
        await self._running.wait()

    def active(self) -> list[str]:
        """The faults in effect, e.g. ``["stall", "slow 2s"]``."""
        names = ["stall"] if self.stalled else []
        if self.delay_s:
            names.append(f"slow {self.delay_s:g}s")
        return names + sorted(self._armed)
