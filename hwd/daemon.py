"""The composition root: reads the config, builds everything, runs it, and stops it cleanly.

This is the only module that wires concrete drivers into services.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import logging
import os
import signal
import sys
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path
from typing import IO, Any

from hwd import __version__
from hwd.config import Config, load_config
from hwd.discovery.merge import MergedSource, without
from hwd.discovery.simbus import SimulatorPhones
from hwd.discovery.udev import UdevWatcher
from hwd.discovery.usbmux import UsbmuxWatcher
from hwd.drivers.android.reader import AndroidReader
from hwd.drivers.binlock import ModbusBinLock
from hwd.drivers.camera import OpenCvCamera
from hwd.drivers.carousel import ModbusCarousel
from hwd.drivers.escpos import load_logo, render
from hwd.drivers.ios.parse import lock_state
from hwd.drivers.ios.reader import IosReader
from hwd.drivers.modbus import RtuLink
from hwd.drivers.printer import EscPosPrinter
from hwd.drivers.simkiosk import SimulatorProcess
from hwd.errors import ConfigError, HwdError
from hwd.journal import Journal
from hwd.model import Connector, DaemonLifecycle, DeviceState, LifecyclePhase
from hwd.model.phones import Platform
from hwd.rpc.server import Servers, services, start_servers
from hwd.sdnotify import notify
from hwd.services.binlock import BinLockService
from hwd.services.camera import CameraService
from hwd.services.carousel import CarouselService
from hwd.services.commands import CommandRunner
from hwd.services.events import EventBus
from hwd.services.kiosk import KioskService
from hwd.services.leases import LeaseTable
from hwd.services.phones import PhonesService, PortSource
from hwd.services.printer import PrinterService
from hwd.services.registry import DAEMON, DeviceRegistry
from hwd.services.supervisor import Supervisor

log = logging.getLogger("hwd")

EXIT_CONFIG = 9
SAMPLE_LOGO = Path(__file__).parent / "data" / "logo.png"
# The simulated tray's scale at the simulated camera's native 1920x1080 (MM_PER_PX in simulators/camera/scene.py,
# which hwd does not import): millimetres of tray per pixel, at frames 1920 pixels wide.
SIMULATED_MM_PER_PX = 0.2
SIMULATED_CALIBRATION_WIDTH = 1920


def _lock(directory: Path) -> IO[str]:
    """Takes ``directory``/hwd.lock for this process. :raises HwdError: when another hwd holds it."""
    directory.mkdir(mode=0o750, parents=True, exist_ok=True)
    handle = (directory / "hwd.lock").open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise HwdError(f"another hwd is running with {directory}", hint="Stop it, or pick other directories.") from None
    return handle


class Daemon:
    """One run of the daemon, from start to a clean stop.

    :param cfg: the validated configuration.
    :param simulated: start the simulated kiosk and use it as the hardware.
    """

    def __init__(self, cfg: Config, simulated: bool) -> None:
        self.cfg = cfg
        self.simulated = simulated
        self.stopping = asyncio.Event()
        self.ready = asyncio.Event()
        self.supervisor = Supervisor()
        self.journal = Journal(cfg.state_dir() / "journal.sqlite3")
        self.bus = EventBus(self.journal, cfg.events.subscriber_queue, cfg.events.replay_page)
        self.registry = DeviceRegistry(self.bus)
        self.leases = LeaseTable(self.bus, self.registry, cfg.leases.default_ttl_s, cfg.leases.max_ttl_s)
        self.commands = CommandRunner(self.journal, self.bus)
        self.kiosk = KioskService(self.bus, self.registry, self.leases, self.commands, simulated)
        self.simulator: SimulatorProcess | None = None
        self.carousel: CarouselService | None = None
        self.lock: BinLockService | None = None
        self.printer: PrinterService | None = None
        self.camera: CameraService | None = None
        self.phones: PhonesService | None = None

    async def run(self, handle_signals: bool = True) -> None:
        """Serves until SIGTERM or SIGINT (or until :attr:`stopping` is set), then stops cleanly
        (DESIGN.md section 3)."""
        if handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stopping.set)
        with ExitStack() as locks:
            locks.enter_context(_lock(self.cfg.state_dir()))
            locks.enter_context(_lock(self.cfg.socket_dir()))
            async with AsyncExitStack() as stack:
                await self.journal.open()
                stack.push_async_callback(self.journal.close)
                servers = await self._start(stack)
                self.ready.set()
                await self.stopping.wait()
                await self._stop(servers)

    async def _start(self, stack: AsyncExitStack) -> Servers:
        await self.bus.start()
        await self.registry.set(DAEMON, DeviceState.STARTING, "STARTING", "opening the journal and the devices")
        await self.commands.recover()
        await self.registry.set("journal", DeviceState.ONLINE, detail=str(self.journal.store.path))
        if self.simulated:
            await self._start_simulator(stack)
        self._build_peripherals(stack)
        self._build_printer(stack)
        self._build_camera()
        self._build_phones()
        served = services(self.kiosk, self.carousel, self.lock, self.printer, camera=self.camera, phones=self.phones)
        servers = await start_servers(served, self.cfg.socket_dir(), self.cfg.grpc, self.cfg.daemon.tech_group)
        stack.push_async_callback(servers.stop, self.cfg.grpc.shutdown_grace_s)
        stack.push_async_callback(self.supervisor.stop)
        self.supervisor.start("lease-expiry", self.leases.run_expiry)
        if self.simulator is not None:
            self.supervisor.start("simulator-watch", self._watch_simulator)
        for device in (self.carousel, self.lock, self.printer):
            if device is not None:
                self.supervisor.start(f"{device.name}-poll", device.run)
        if self.camera is not None:  # opens the camera, keeps its status, and closes it when cancelled
            self.supervisor.start("camera", self.camera.run)
        if self.phones is not None:  # consumes discovery; each port's session is a task of the service
            self.supervisor.start("phones", self.phones.run)
        await self.registry.set(DAEMON, DeviceState.ONLINE)
        await self.bus.publish(DAEMON, DaemonLifecycle(LifecyclePhase.STARTED, __version__, self.simulated))
        await servers.set_health(True)
        notify("READY=1", f"STATUS=serving on {self.cfg.socket_dir()}")
        self._announce(servers)
        return servers

    def _build_peripherals(self, stack: AsyncExitStack) -> None:
        """The Modbus line and the controllers on it, when this kiosk has them (always when simulated)."""
        cfg = self.cfg
        carousel_on, lock_on = cfg.carousel.enabled or self.simulated, cfg.binlock.enabled or self.simulated
        if not (carousel_on or lock_on):
            return
        port = cfg.modbus.port
        if self.simulator is not None:
            port = self.simulator.endpoints["devices"]["rs485"]["endpoint"]
        link = RtuLink(port, baudrate=cfg.modbus.baudrate, timeout_s=cfg.modbus.timeout_s, retries=cfg.modbus.retries)
        stack.push_async_callback(link.close)
        shared = (self.registry, self.bus, self.commands, self.leases)
        if carousel_on:
            slots = tuple(Connector[name] for name in cfg.carousel.slots)
            self.carousel = CarouselService(
                ModbusCarousel(link, cfg.carousel.unit), *shared,
                slots=slots, poll_s=cfg.carousel.poll_s, move_timeout_s=cfg.carousel.move_timeout_s,
            )  # fmt: skip
        if lock_on:
            self.lock = BinLockService(
                ModbusBinLock(link, cfg.binlock.unit), *shared,
                poll_s=cfg.binlock.poll_s, door_alarm_s=cfg.binlock.door_alarm_s,
            )  # fmt: skip

    def _build_printer(self, stack: AsyncExitStack) -> None:
        """The receipt printer, when this kiosk has one (always when simulated)."""
        cfg = self.cfg.printer
        if not (cfg.enabled or self.simulated):
            return
        target = cfg.target
        if self.simulator is not None:
            target = self.simulator.endpoints["devices"]["printer"]["endpoint"]
        port = EscPosPrinter(target, timeout_s=cfg.timeout_s)
        stack.push_async_callback(port.close)
        logo_path = cfg.logo or (SAMPLE_LOGO if self.simulated else None)  # the simulated kiosk shows a logo
        logo = load_logo(logo_path) if logo_path else None
        self.printer = PrinterService(
            port, lambda receipt: render(receipt, logo, cfg.profile), self.registry, self.bus, self.commands,
            self.journal, poll_s=cfg.poll_s,
        )  # fmt: skip

    def _build_camera(self) -> None:
        """The inspection camera, when this kiosk has one (always when simulated). Its run() opens it."""
        cfg = self.cfg.camera
        if not (cfg.enabled or self.simulated):
            return
        source, mm_per_px, width = cfg.source, cfg.mm_per_px, cfg.calibration_width
        if self.simulator is not None:
            source = self.simulator.endpoints["devices"]["camera"]["endpoint"]
            mm_per_px, width = SIMULATED_MM_PER_PX, SIMULATED_CALIBRATION_WIDTH
        self.camera = CameraService(
            OpenCvCamera(
                source, timeout_s=cfg.timeout_s, idle_close_s=cfg.idle_close_s, idle_probe_s=cfg.idle_probe_s
            ),
            self.registry, self.bus, self.journal,
            state_dir=self.cfg.state_dir(), session_of=self._session_of, evidence_max_files=cfg.evidence_max_files,
            timeout_s=cfg.timeout_s, preview_max_fps=cfg.preview_max_fps, mm_per_px=mm_per_px,
            calibration_width=width,
        )  # fmt: skip

    def _session_of(self, port: str) -> str | None:
        """The session of the phone on ``port``, for evidence (None when no phone is there)."""
        return self.phones.session_of(port) if self.phones is not None else None

    def _build_phones(self) -> None:
        """The phone ports, when this kiosk reads phones (always when simulated): discovery from udev
        and usbmuxd, or from the simulated kiosk's WatchPhones; Android phones read over ADB with the
        kiosk's key, iPhones over usbmuxd and lockdownd."""
        cfg = self.cfg.phones
        if not (cfg.enabled or self.simulated):
            return
        usbmux = cfg.usbmuxd_address or None
        if self.simulator is not None:
            usbmux = self.simulator.endpoints["devices"]["usbmuxd"]["endpoint"].removeprefix("tcp:")
        keys = cfg.key_dir or self.cfg.state_dir() / "adb"
        android = AndroidReader(keys, cfg.trust_timeout_s, cfg.identify_timeout_s)
        ios = IosReader(usbmux, cfg.record_dir or self.cfg.state_dir() / "lockdown", cfg.trust_timeout_s,
                        cfg.identify_timeout_s)  # fmt: skip
        # The readers keep their own deadlines (connect, prompt, each read); this bound only catches a stuck one.
        last_resort_s = cfg.trust_timeout_s + 4 * cfg.identify_timeout_s
        self.phones = PhonesService(
            self._port_source(), {Platform.ANDROID: android, Platform.IOS: ios}, self.registry, self.bus,
            ports=cfg.ports, identify_deadline_s=last_resort_s, reset_grace_s=cfg.ios_reset_grace_s,
            lock_rules={Platform.IOS: lock_state},
        )  # fmt: skip

    def _port_source(self) -> PortSource:
        """The simulated kiosk's WatchPhones; on a real kiosk udev for Android and usbmuxd for iPhones
        (udev's iPhones are left to usbmuxd, so that none is announced twice)."""
        if self.simulator is not None:
            return SimulatorPhones(self.simulator.endpoints["control"])
        udev = UdevWatcher()
        address = self.cfg.phones.usbmuxd_address
        if not address:
            return udev
        usbmux = UsbmuxWatcher(address)
        return MergedSource((lambda: without(udev.events(), Platform.IOS), usbmux.events), ("udev", "usbmuxd"))

    async def _start_simulator(self, stack: AsyncExitStack) -> None:
        self.simulator = SimulatorProcess(self.cfg.socket_dir() / "sim")
        stack.push_async_callback(self.simulator.stop)
        await self.simulator.start(self.cfg.simulator.startup_timeout_s)
        log.info("simulated kiosk ready: control %s", self.simulator.endpoints["control"])

    async def _watch_simulator(self) -> None:
        assert self.simulator is not None
        code = await self.simulator.wait()
        log.error("the simulated kiosk exited with code %s", code)
        await self.registry.set(
            DAEMON, DeviceState.HARDWARE_ERROR, "SIMULATOR_EXITED", f"the simulated kiosk exited with code {code}",
            "Restart the daemon (`make run`).",
        )  # fmt: skip

    async def _stop(self, servers: Servers) -> None:
        """Stop accepting work, go NOT_SERVING, bring hardware to a safe state, then let the
        exit stack stop the servers (with the grace period), the tasks, the simulator and the journal."""
        log.info("stopping")
        notify("STOPPING=1", "STATUS=stopping")
        await servers.set_health(False)
        await self.registry.set(DAEMON, DeviceState.STOPPING, "STOPPING", "the daemon is stopping")
        for device in (self.carousel, self.lock):  # the bin ends locked, the carousel still
            if device is not None:
                await device.safe_stop()
        if self.phones is not None:  # no phone session, task or connection outlives the daemon
            await self.phones.stop()
        await self.supervisor.stop()  # no more polling: the STOPPING event is the journal's last word
        await self.bus.publish(DAEMON, DaemonLifecycle(LifecyclePhase.STOPPING, __version__, self.simulated))
        self.bus.close()

    def _announce(self, servers: Servers) -> None:
        cli = sys.argv[0] if Path(sys.argv[0]).name == "hwd" else f"{sys.executable} -m hwd"
        where = f"--socket-dir {self.cfg.socket_dir()}"
        lines = [
            f"hwd {__version__} serving{' the simulated kiosk' if self.simulated else ''}",
            *(f"  {role + '.sock':10} {path}" for role, path in servers.sockets.items()),
            f"  {'journal':10} {self.journal.store.path}",
            "Try, in another terminal:",
            f"  {cli} {where} probe",
            f"  {cli} {where} events --follow",
            f"  {cli} {where} note 'hello from the technician'",
        ]
        if self.simulated:
            lines.append(f"  {cli} {where} sim status")
        lines.append("Stop with Ctrl-C.")
        print("\n".join(lines), flush=True)


def _absolute(text: str) -> Path:
    return Path(text).absolute()


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hwd serve", description="Run the hwd daemon.")
    parser.add_argument("--config", type=Path, help="TOML configuration file (see docs/config.example.toml)")
    parser.add_argument("--simulated", action="store_true", help="start the simulated kiosk and serve it")
    parser.add_argument("--socket-dir", type=_absolute, help="directory of ui.sock and tech.sock (env HWD_SOCKET_DIR)")
    parser.add_argument("--state-dir", type=_absolute, help="directory of the journal (env HWD_STATE_DIR)")
    return parser.parse_args(argv)


def _setup_logging(level: str) -> None:
    # Under systemd the journal adds its own timestamps.
    fmt = "%(levelname)s %(name)s: %(message)s"
    if "JOURNAL_STREAM" not in os.environ:
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr)


def main(argv: list[str]) -> int:
    """``hwd serve``. :returns: the process exit code (0 after a clean stop, 9 for a bad config)."""
    args = _parse(argv)
    flags: dict[str, Any] = {k: v for k, v in (("socket_dir", args.socket_dir), ("state_dir", args.state_dir)) if v}
    try:
        cfg = load_config(args.config, overrides={"daemon": flags})
    except ConfigError as exc:
        print(f"hwd: invalid configuration: {exc.message}", file=sys.stderr)
        return EXIT_CONFIG
    _setup_logging(cfg.daemon.log_level)
    try:
        asyncio.run(Daemon(cfg, args.simulated).run())
    except HwdError as exc:
        log.error("%s%s", exc.message, f" ({exc.hint})" if exc.hint else "")
        return 1
    return 0
