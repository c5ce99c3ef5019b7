"""Phones on the kiosk's USB ports, from udev: what is plugged in now, then every arrival and removal.

pyudev blocks, so it runs on one thread of its own (the only bridge between udev and the event
loop): it opens the netlink monitor, lists what is present, then waits on the monitor's socket and
a stop pipe, and hands each event to the loop with ``call_soon_threadsafe``. Nothing polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import threading
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Final

import pyudev  # type: ignore[import-untyped]

from hwd.discovery.rules import RULES, Rule, classify, port_of
from hwd.errors import DeviceUnavailable
from hwd.model.phones import PortEvent

log = logging.getLogger(__name__)

ENUMERATE_TIMEOUT_S = 10.0  # listing the present devices reads sysfs and the udev database
STOP_TIMEOUT_S = 5.0
MAX_BACKLOG = 1024  # queued events; past it the stream ends and a restart lists the ports afresh
THREAD_NAME = "udev-watcher"
HINT = "Check that the daemon may open netlink sockets (RestrictAddressFamilies=AF_NETLINK) and that udev runs."


class _Enumerated:
    """Marks the end of the devices present at start."""


_ENUMERATED: Final = _Enumerated()
Item = PortEvent | BaseException | _Enumerated


class _Bridge:
    """The udev thread: it owns every pyudev object and keeps which ports it announced.

    :param deliver: called on the thread with each item; must be thread-safe.
    """

    def __init__(self, rules: tuple[Rule, ...], deliver: Callable[[Item], None]) -> None:
        self._rules = rules
        self._deliver = deliver
        self._announced: dict[str, PortEvent] = {}
        self._stop_r = self._stop_w = -1
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)

    def start(self) -> None:
        """Opens the stop pipe and starts the thread."""
        self._stop_r, self._stop_w = os.pipe()
        self._thread.start()

    async def stop(self) -> None:
        """Wakes the thread, waits for it to end (at most STOP_TIMEOUT_S) and closes the pipe."""
        with contextlib.suppress(OSError):
            os.write(self._stop_w, b"x")
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join, STOP_TIMEOUT_S)
        if self._thread.is_alive():
            log.error("the udev thread did not stop within %s s", STOP_TIMEOUT_S)
            return  # it still reads the pipe: leave it open
        os.close(self._stop_r)
        os.close(self._stop_w)

    def _run(self) -> None:
        try:
            context = pyudev.Context()
            monitor = pyudev.Monitor.from_netlink(context)
            monitor.filter_by(subsystem="usb", device_type="usb_device")
            monitor.start()  # before listing, so a phone plugged in meanwhile is not missed
            for device in context.list_devices(subsystem="usb", DEVTYPE="usb_device"):
                self._seen("add", device.sys_name, dict(device.properties))
            self._deliver(_ENUMERATED)
            self._listen(monitor)
        except Exception as exc:  # delivered to the iterator, which raises it
            self._deliver(exc)

    def _listen(self, monitor: pyudev.Monitor) -> None:
        poller = select.poll()
        poller.register(monitor.fileno(), select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        while True:
            ready = {fd for fd, _ in poller.poll()}  # no timeout: the stop pipe wakes it
            if self._stop_r in ready:
                return
            while (device := monitor.poll(timeout=0)) is not None:
                self._seen(device.action or "", device.sys_name, dict(device.properties))

    def _seen(self, action: str, sys_name: str, props: Mapping[str, str]) -> None:
        port = port_of(sys_name)
        if port is None:
            return
        old = self._announced.get(port)
        if action == "remove":
            if old is not None:
                del self._announced[port]
                self._deliver(PortEvent(port, attached=False))
            return
        if action != "add":
            return
        event = classify(sys_name, props, self._rules)
        if old is not None and old != event:
            # Another device on an occupied port: its removal was missed, so end the old session first.
            del self._announced[port]
            self._deliver(PortEvent(port, attached=False))
        if event is not None and old != event:
            self._announced[port] = event
            self._deliver(event)


class UdevWatcher:
    """Phones on USB ports as udev sees them.

    :param rules: the matching rules (default: :data:`hwd.discovery.rules.RULES`).
    :param enumerate_timeout_s: how long listing the present devices may take.
    """

    def __init__(self, rules: tuple[Rule, ...] = RULES, *, enumerate_timeout_s: float = ENUMERATE_TIMEOUT_S) -> None:
        self._rules = rules
        self._enumerate_timeout_s = enumerate_timeout_s

    async def present(self) -> list[PortEvent]:
        """The phones plugged in now, as attached events (then the udev thread stops).

        :raises DeviceUnavailable: when udev cannot be read or listing takes longer than the timeout.
        """
        stream = self._stream(follow=False)
        return [event async for event in stream]

    def events(self) -> AsyncGenerator[PortEvent, None]:
        """Every phone present now as attached, then each arrival and removal as it happens. A removal
        carries only the port, and only for a port announced before. Closing the iterator stops the
        udev thread.

        :raises DeviceUnavailable: when udev cannot be monitored, listing the devices takes longer
            than the timeout, or the consumer fell MAX_BACKLOG events behind.
        """
        return self._stream(follow=True)

    async def _stream(self, follow: bool) -> AsyncGenerator[PortEvent, None]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Item] = asyncio.Queue()

        overflowed = False

        def push(item: Item) -> None:  # on the loop
            nonlocal overflowed
            if overflowed:  # the stream ends at the error already queued: nothing more is kept
                return
            if queue.qsize() >= MAX_BACKLOG:
                overflowed = True
                item = DeviceUnavailable(f"more than {MAX_BACKLOG} USB events waiting", device="udev")
            queue.put_nowait(item)

        def deliver(item: Item) -> None:  # on the udev thread
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody listens any more
                loop.call_soon_threadsafe(push, item)

        bridge = _Bridge(self._rules, deliver)
        bridge.start()
        try:
            initial = await self._initial(queue)
            for event in initial:
                yield event
            while follow:
                yield _checked(await queue.get())
        finally:
            await bridge.stop()

    async def _initial(self, queue: asyncio.Queue[Item]) -> list[PortEvent]:
        """The events of the devices present at start, once all of them are listed."""
        found: list[PortEvent] = []
        try:
            async with asyncio.timeout(self._enumerate_timeout_s):
                while (item := await queue.get()) is not _ENUMERATED:
                    found.append(_checked(item))
        except TimeoutError:
            raise DeviceUnavailable(
                f"listing the USB devices took more than {self._enumerate_timeout_s} s", device="udev", hint=HINT
            ) from None
        log.info("udev: %d phone(s) present", len(found))
        return found


def _checked(item: Item) -> PortEvent:
    """The event, or the error the udev thread met, raised as DeviceUnavailable."""
    if isinstance(item, PortEvent):
        return item
    if isinstance(item, DeviceUnavailable):
        raise item
    if isinstance(item, BaseException):
        raise DeviceUnavailable(f"udev monitoring failed: {item}", device="udev", hint=HINT) from item
    raise DeviceUnavailable("udev sent its device list twice", device="udev")
