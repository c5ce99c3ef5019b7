"""UdevWatcher against mocked USB devices (umockdev): the phones present at start, then hot plug and unplug.

The device descriptions in tests/data/umockdev look like what ``umockdev-record`` gives for a Pixel 7
with USB debugging on, a Galaxy S21 with it off, an iPhone 13 and a USB keyboard.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parents[1]
DATA = TESTS / "data" / "umockdev"
PIXEL, GALAXY, IPHONE, KEYBOARD = (
    DATA / f"{name}.umockdev" for name in ("pixel-7", "galaxy-s21-debugging-off", "iphone-13", "keyboard")
)
USB = "/sys/devices/pci0000:00/0000:00:14.0/usb1"
SYSPATHS = {
    port: f"{USB}/{port}" if "." not in port else f"{USB}/1-4/{port}" for port in ("1-1", "1-4.2", "1-4.3", "1-4.4")
}
SYSTEM_PYTHON = "/usr/bin/python3"
DEADLINE_S = 20.0

PIXEL_EVENT = {
    "port": "1-4.2",
    "attached": True,
    "platform": "ANDROID",
    "serial": "28161FDH2005LK",
    "endpoint": "usb:1:5",
    "debuggable": True,
    "description": "Google Pixel 7 (18d1:4ee7)",
}
GALAXY_EVENT = {
    "port": "1-4.3",
    "attached": True,
    "platform": "ANDROID",
    "serial": "R5CR10ABCDE",
    "endpoint": "usb:1:6",
    "debuggable": False,
    "description": "SAMSUNG SAMSUNG_Android (04e8:6860)",
}
UDID = "00008110-001A2D3E0C12801E"
IPHONE_EVENT = {
    "port": "1-4.4",
    "attached": True,
    "platform": "IOS",
    "serial": UDID,
    "endpoint": f"usbmux:{UDID}",
    "debuggable": True,
    "description": "Apple Inc. iPhone (05ac:12a8)",
}


def detached(port: str) -> dict[str, Any]:
    return {
        "port": port,
        "attached": False,
        "platform": None,
        "serial": "",
        "endpoint": "",
        "debuggable": True,
        "description": "",
    }


def _gi_umockdev() -> bool:
    probe = "import gi; gi.require_version('UMockdev', '1.0'); from gi.repository import UMockdev"
    return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, check=False).returncode == 0


def test_the_phones_present_at_start_are_listed_and_the_keyboard_is_not() -> None:
    if shutil.which("umockdev-run") is None:
        pytest.skip("umockdev is not installed (apt-get install umockdev)")
    devices = [arg for path in (KEYBOARD, PIXEL, GALAXY, IPHONE) for arg in ("-d", str(path))]
    done = subprocess.run(
        ["umockdev-run", *devices, "--", sys.executable, str(TESTS / "udev_watch.py"), "--list"],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line)["event"] for line in done.stdout.splitlines()]
    assert sorted(events, key=lambda e: e["port"]) == [PIXEL_EVENT, GALAXY_EVENT, IPHONE_EVENT]


class Harness:
    """tests/umockdev_harness.py under umockdev-wrapper, with the watcher as its child."""

    def __init__(self, *loads: Path) -> None:
        args = [arg for path in loads for arg in ("--load", str(path))]
        harness = [SYSTEM_PYTHON, str(TESTS / "umockdev_harness.py"), sys.executable, *args]
        self.proc = subprocess.Popen(
            ["umockdev-wrapper", *harness], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self._buffer = b""

    def send(self, **command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        self.proc.stdin.flush()

    def plug(self, path: Path) -> None:
        self.send(op="plug", file=str(path))

    def unplug(self, port: str) -> None:
        self.send(op="unplug", syspath=SYSPATHS[port])

    def line(self) -> dict[str, Any]:
        """The next line of the harness, read within the deadline."""
        assert self.proc.stdout is not None
        fd, deadline = self.proc.stdout.fileno(), time.monotonic() + DEADLINE_S
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                pytest.fail(f"no line from the harness within {DEADLINE_S} s; stderr: {self.stderr()}")
            chunk = os.read(fd, 65536)
            if not chunk:
                pytest.fail(f"the harness exited; stderr: {self.stderr()}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        doc: dict[str, Any] = json.loads(line)
        assert "error" not in doc, doc
        return doc

    def doc(self, key: str) -> dict[str, Any]:
        """The next line but acknowledgements (they race with the watcher's lines); it must have ``key``."""
        while "ack" in (doc := self.line()):
            pass
        assert key in doc, doc
        return doc

    def next(self, key: str) -> Any:
        """The value of ``key`` in the next line but acknowledgements."""
        return self.doc(key)[key]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def stderr(self) -> str:
        self.kill()
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")[-3000:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def finish(self) -> None:
        self.kill()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def harness_factory() -> Iterator[type[Harness]]:
    if shutil.which("umockdev-wrapper") is None or not _gi_umockdev():
        pytest.skip("umockdev's GObject bindings are missing (apt-get install gir1.2-umockdev-1.0 python3-gi)")
    started: list[Harness] = []

    class Tracked(Harness):
        def __init__(self, *loads: Path) -> None:
            super().__init__(*loads)
            started.append(self)

    yield Tracked
    for harness in started:
        harness.finish()


def test_phones_plugged_and_unplugged_while_watching_give_events_in_order(harness_factory: type[Harness]) -> None:
    harness = harness_factory(KEYBOARD, PIXEL)
    assert harness.next("event") == PIXEL_EVENT  # present at start; the keyboard is not a phone
    harness.plug(IPHONE)
    assert harness.next("event") == IPHONE_EVENT
    harness.plug(GALAXY)
    assert harness.next("event") == GALAXY_EVENT
    harness.unplug("1-4.2")
    assert harness.next("event") == detached("1-4.2")
    harness.unplug("1-1")  # the keyboard leaves: nothing to say
    harness.unplug("1-4.3")
    assert harness.next("event") == detached("1-4.3")
    harness.close()
    assert harness.next("closed")
    assert harness.doc("exit") == {"exit": 0}


def test_a_phone_plugged_back_into_the_same_socket_gets_the_same_port(harness_factory: type[Harness]) -> None:
    harness = harness_factory()
    harness.plug(PIXEL)
    assert harness.next("event") == PIXEL_EVENT
    harness.unplug("1-4.2")
    assert harness.next("event") == detached("1-4.2")
    harness.plug(PIXEL)
    assert harness.next("event") == PIXEL_EVENT
    harness.close()
    assert harness.doc("closed") == {"closed": True, "udev_threads": 0}  # closing the stream stopped the thread
    assert harness.doc("exit") == {"exit": 0}


def test_a_keyboard_plugged_in_while_watching_is_ignored(harness_factory: type[Harness]) -> None:
    harness = harness_factory()
    harness.plug(KEYBOARD)
    harness.plug(GALAXY)
    assert harness.next("event") == GALAXY_EVENT  # the first event: none for the keyboard
