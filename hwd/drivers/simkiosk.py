"""The simulated kiosk as a child process: started, awaited until ready, and stopped.

The simulator prints its endpoints as one JSON line on stdout once everything listens, so the
daemon waits on that line (with a deadline) instead of polling for a file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from hwd.errors import DeviceUnavailable

log = logging.getLogger(__name__)

MAX_READY_LINE = 1024 * 1024


class SimulatorProcess:
    """``python -m simulators`` run as a child of the daemon.

    :param directory: where it puts its control socket and endpoints file.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.endpoints: dict[str, Any] = {}
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float) -> dict[str, Any]:
        """Starts the simulator and waits for its endpoints.

        :returns: the endpoints document.
        :raises DeviceUnavailable: when it exits, prints garbage, or is not ready within ``timeout``.
        """
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "simulators", "--dir", str(self.directory), "--parent-pid", str(os.getpid()),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, limit=MAX_READY_LINE,
            start_new_session=True,  # Ctrl-C in the terminal reaches the daemon, which stops it in order
        )  # fmt: skip
        assert self._proc.stdout is not None
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), timeout)
            self.endpoints = json.loads(line)
            if not isinstance(self.endpoints, dict) or "control" not in self.endpoints:
                raise ValueError("no control endpoint")
        except (TimeoutError, ValueError) as exc:
            await self.stop()
            raise DeviceUnavailable(
                f"simulated kiosk did not start: {exc or f'no endpoints within {timeout:.0f} s'}",
                device="simulator",
                hint="Run `python -m simulators --dir /tmp/sim` by hand to see its error.",
            ) from exc
        return self.endpoints

    async def wait(self) -> int:
        """Waits for the process to exit. :returns: its exit code."""
        assert self._proc is not None
        return await self._proc.wait()

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            log.warning("simulator did not stop within %.1f s: killing it", grace)
            proc.kill()
            await proc.wait()
