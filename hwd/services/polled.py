"""A device whose controller is read on a schedule (Modbus masters poll: the controllers never push).

One supervised task reads the state, keeps the latest, turns it into a DeviceStatus and events,
and marks the device OFFLINE while it does not answer; watchers are woken on every change.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from hwd.errors import DeviceUnavailable, HwdError
from hwd.model import ControllerIdentity, DeviceState
from hwd.services.registry import DeviceRegistry

log = logging.getLogger(__name__)

# While a command waits for the hardware (a move, the bolt), the controller is read this often:
# a Modbus transaction takes well under a millisecond, and the caller waits on every read.
COMMAND_POLL_S = 0.01

S = TypeVar("S")
S_co = TypeVar("S_co", covariant=True)
T = TypeVar("T")


class Readable(Protocol[S_co]):
    """What polling needs of a controller."""

    async def open(self) -> None: ...

    async def identity(self) -> ControllerIdentity: ...

    async def state(self) -> S_co: ...


class PolledDevice(abc.ABC, Generic[S]):
    """Base of the services of polled devices (carousel, bin lock, printer).

    :param name: the device name in the registry ("carousel", "lock", "printer").
    :param registry: where its DeviceStatus goes.
    :param poll_s: seconds between two reads of the device.
    """

    def __init__(self, name: str, registry: DeviceRegistry, poll_s: float) -> None:
        self.name = name
        self.registry = registry
        self.poll_s = poll_s
        self.current: S | None = None
        self._changed = asyncio.Event()
        self._commanding = asyncio.Lock()

    async def one_at_a_time(self, action: Callable[[], Awaitable[T]]) -> T:
        """Runs a command alone: a controller's command counter has one owner at a time."""
        async with self._commanding:
            return await action()

    @abc.abstractmethod
    async def read(self) -> S:
        """Reads the device once (opening it if needed). :raises DeviceUnavailable:"""

    @abc.abstractmethod
    async def observe(self, state: S) -> None:
        """Turns a fresh reading into status and events."""

    @property
    def command_poll_s(self) -> float:
        """How often a waiting command reads the controller (never slower than the background poll)."""
        return min(self.poll_s, COMMAND_POLL_S)

    async def refresh(self) -> S:
        """Reads the controller now and records the result. :raises DeviceUnavailable:"""
        state = await self.read()
        if state != self.current:
            self.current = state
            self._changed.set()
            self._changed = asyncio.Event()
        await self.observe(state)
        return state

    async def run(self) -> None:
        """The polling task (supervised): runs until cancelled; a silent controller is OFFLINE."""
        while True:
            try:
                await self.refresh()
            except DeviceUnavailable as exc:
                if self.current is not None:
                    self.current = None
                    self._changed.set()
                    self._changed = asyncio.Event()
                await self.registry.set(self.name, DeviceState.OFFLINE, exc.reason, exc.message, exc.hint)
            except HwdError as exc:
                log.warning("reading %s failed: %s", self.name, exc.message)
            await asyncio.sleep(self.poll_s)  # the poll period of the bus, not a wait for our own state

    async def watch(self) -> AsyncIterator[S | None]:
        """The state now, then after every change (None while the controller does not answer)."""
        while True:
            changed = self._changed
            yield self.current
            await changed.wait()


class ControllerDevice(PolledDevice[S]):
    """A polled device behind a controller that identifies itself (the Modbus controllers).

    :param source: the controller to read.
    """

    def __init__(self, name: str, source: Readable[S], registry: DeviceRegistry, poll_s: float) -> None:
        super().__init__(name, registry, poll_s)
        self.identity = ""  # "HW 0x0c01 firmware 1.2" once the controller answered
        self._source = source

    async def read(self) -> S:
        """Reads the controller once, opening and identifying it first when needed.

        :raises DeviceUnavailable: it does not answer (it is opened again on the next read).
        """
        if not self.identity:
            await self._source.open()
            ident = await self._source.identity()
            self.identity = f"HW {ident.model:#06x} firmware {ident.firmware}"
        try:
            return await self._source.state()
        except DeviceUnavailable:
            self.identity = ""
            raise
