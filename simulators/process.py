"""``python -m simulators``: run the simulated kiosk until told to stop.

Stdout carries exactly one line, the endpoints document as compact JSON, once everything is
up; whoever started the process reads it to know the simulator is ready. Logs go to stderr.
Exit status: 0 after a clean stop (Shutdown, SIGTERM, SIGINT, parent gone), 1 if it refused
to start or a device failed to start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulators.endpoints import compact_line
from simulators.errors import SimDeviceError, StartupRefused
from simulators.kiosk import SimKiosk, default_devices
from simulators.parent import open_pidfd, watch_pidfd
from simulators.runtime import SimulatorRuntime
from simulators.workdir import claim_workdir, clear_control_socket

log = logging.getLogger("simulators")

CONTROL_SOCKET = "control.sock"
ENDPOINTS_FILE = "endpoints.json"


@dataclass(frozen=True, slots=True)
class Options:
    """The command line, with every path made absolute."""

    directory: Path
    endpoints_file: Path
    parent_pid: int | None

    @property
    def socket_path(self) -> Path:
        """Where the control socket lives: ``DIR/control.sock``."""
        return self.directory / CONTROL_SOCKET


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"not a process id: {text}")
    return value


def parse_args(argv: Sequence[str] | None) -> Options:
    """Parse ``--dir DIR [--endpoints FILE] [--parent-pid PID]``; exits with status 2 on bad usage."""
    parser = argparse.ArgumentParser(prog="python -m simulators", description="Run the simulated kiosk.")
    parser.add_argument("--dir", required=True, type=Path, help="private directory (created 0700 if missing)")
    parser.add_argument("--endpoints", type=Path, help="endpoints file to write (default: DIR/endpoints.json)")
    parser.add_argument("--parent-pid", type=_positive_int, help="stop when this process is gone")
    args = parser.parse_args(argv)
    directory = Path(os.path.abspath(args.dir))
    endpoints = Path(os.path.abspath(args.endpoints)) if args.endpoints else directory / ENDPOINTS_FILE
    return Options(directory=directory, endpoints_file=endpoints, parent_pid=args.parent_pid)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator process; returns its exit status."""
    options = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    pidfd: int | None = None
    lock_fd: int | None = None
    try:
        lock_fd = claim_workdir(options.directory)
        clear_control_socket(options.socket_path)
        if options.parent_pid is not None:
            pidfd = open_pidfd(options.parent_pid)
        return asyncio.run(serve(options, pidfd))
    except (StartupRefused, SimDeviceError) as exc:
        log.error("simulator not started: %s", exc)
        return 1
    finally:
        for fd in (pidfd, lock_fd):
            if fd is not None:
                os.close(fd)


async def serve(options: Options, pidfd: int | None) -> int:
    """Start the kiosk, announce it, wait for a stop request, then stop everything.

    :param pidfd: a pidfd of the parent process to watch, or None.
    :returns: 0 after a clean stop.
    :raises SimDeviceError: a device failed to start (everything already started is stopped).
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _on_signal, signum, stop)
    if pidfd is not None and options.parent_pid is not None:
        watch_pidfd(loop, pidfd, options.parent_pid, stop.set)
    runtime = SimulatorRuntime(
        SimKiosk(default_devices(options.directory)), options.socket_path, options.endpoints_file, stop.set
    )
    try:
        announce(await runtime.start())
        await stop.wait()
    finally:
        if pidfd is not None:
            loop.remove_reader(pidfd)
        await runtime.stop()
    log.info("simulator stopped")
    return 0


def announce(document: dict[str, Any]) -> None:
    """Print the ready line (the endpoints document, compact) to stdout and flush it."""
    try:
        sys.stdout.write(compact_line(document))
        sys.stdout.flush()
    except OSError as exc:
        # Whoever started us stopped reading; keep serving, the endpoints file has it all.
        log.warning("could not print the ready line: %s", exc)
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)


def _on_signal(signum: int, stop: asyncio.Event) -> None:
    log.info("received %s; stopping", signal.Signals(signum).name)
    stop.set()
