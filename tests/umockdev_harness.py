"""Drives :mod:`tests.udev_watch` under a live umockdev test bed: devices plugged and unplugged on command.

Runs in the system Python (``umockdev-wrapper /usr/bin/python3 tests/umockdev_harness.py
VENV_PYTHON [--load FILE]...``): GObject introspection for UMockdev is only there. It creates a
``UMockdev.Testbed``, loads the ``--load`` files, starts the watcher in VENV_PYTHON as its child
(the wrapper's preload library reaches it through the environment; ``UMOCKDEV_DIR`` is passed
explicitly), then reads JSON commands from stdin, one per line:

- ``{"op": "plug", "file": PATH}``: adds the devices of a ``.umockdev`` file (umockdev sends "add");
- ``{"op": "unplug", "syspath": PATH}``: for the device's interfaces, then the device, as the kernel
  does: a "remove" uevent, then the removal from the test bed.

Its stdout carries the watcher's lines unchanged, ``{"ack": OP}`` after each command, and
``{"exit": RC}`` once stdin closed and the watcher exited.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import GLib, UMockdev  # noqa: E402

WATCHER = Path(__file__).resolve().parent / "udev_watch.py"
EXIT_TIMEOUT_S = 20.0
_out = threading.Lock()


def emit(line: str) -> None:
    with _out:
        sys.stdout.write(line if line.endswith("\n") else line + "\n")
        sys.stdout.flush()


def relay(stream: object) -> None:
    for line in stream:  # type: ignore[attr-defined]
        emit(line)


def unplug(bed: UMockdev.Testbed, syspath: str) -> None:
    device = Path(bed.get_root_dir() + syspath)
    for child in sorted(device.glob(f"{device.name}:*")):
        bed.uevent(f"{syspath}/{child.name}", "remove")
        bed.remove_device(f"{syspath}/{child.name}")  # the device's removal leaves its interfaces' links
    bed.uevent(syspath, "remove")
    bed.remove_device(syspath)


def command(bed: UMockdev.Testbed, doc: dict[str, str]) -> None:
    if doc["op"] == "plug":
        if not bed.add_from_file(doc["file"]):
            raise RuntimeError(f"umockdev could not load {doc['file']}")
    elif doc["op"] == "unplug":
        unplug(bed, doc["syspath"])
    else:
        raise ValueError(f"unknown op {doc['op']!r}")
    emit(json.dumps({"ack": doc["op"]}))


def main(argv: list[str]) -> int:
    python, loads = argv[0], [argv[i + 1] for i, a in enumerate(argv) if a == "--load"]
    bed = UMockdev.Testbed.new()
    for path in loads:
        if not bed.add_from_file(path):
            raise RuntimeError(f"umockdev could not load {path}")
    env = {**os.environ, "UMOCKDEV_DIR": bed.get_root_dir()}
    child = subprocess.Popen([python, str(WATCHER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
    relaying = threading.Thread(target=relay, args=(child.stdout,))
    relaying.start()
    for line in sys.stdin:
        try:
            command(bed, json.loads(line))
        except (RuntimeError, ValueError, KeyError, GLib.Error) as exc:
            emit(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
    assert child.stdin is not None
    child.stdin.close()
    try:
        rc = child.wait(EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.kill()
        rc = child.wait()
    relaying.join()
    emit(json.dumps({"exit": rc}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
