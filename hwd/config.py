"""Typed configuration: defaults, then a TOML file, then HWD_* environment, then command-line flags.

Every key is documented in docs/config.example.toml. A bad value raises :class:`ConfigError`
naming the file, the key and the reason, so the daemon stops at start instead of misbehaving later.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hwd.errors import ConfigError

ENV_PREFIX = "HWD_"
# Short names for the keys people set most often; every key is also HWD_<SECTION>__<KEY>.
ENV_SHORTCUTS = {"HWD_SOCKET_DIR": ("daemon", "socket_dir"), "HWD_STATE_DIR": ("daemon", "state_dir")}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_numbers(cls, data: Any) -> Any:
        # pydantic reads true as 1.0; a boolean where a number belongs is a mistake in the file.
        for name, value in data.items() if isinstance(data, dict) else ():
            field = cls.model_fields.get(name)
            if isinstance(value, bool) and field is not None and field.annotation in (int, float):
                raise ValueError(f"{name}: expected a number, got {str(value).lower()}")
        return data


class DaemonConfig(_Section):
    """Where the daemon keeps its sockets and state, and how it logs."""

    socket_dir: Path | None = None
    state_dir: Path | None = None
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    # Group given to tech.sock (the daemon must be a member); None leaves the socket directory's group.
    tech_group: str | None = Field(default=None, min_length=1)

    @field_validator("socket_dir", "state_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and (not str(value) or not value.is_absolute()):
            raise ValueError("must be an absolute path")
        return value


class GrpcConfig(_Section):
    """Limits of the gRPC servers."""

    max_message_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024, le=64 * 1024 * 1024)
    max_concurrent_rpcs: int = Field(default=256, ge=8, le=10_000)
    shutdown_grace_s: float = Field(default=5.0, ge=0, le=60)


class EventsConfig(_Section):
    """The event bus and WatchEvents."""

    subscriber_queue: int = Field(default=4096, ge=16, le=1_000_000)
    replay_page: int = Field(default=500, ge=1, le=10_000)


class LeasesConfig(_Section):
    """Lease lifetimes."""

    default_ttl_s: float = Field(default=30.0, gt=0, le=3600)
    max_ttl_s: float = Field(default=300.0, gt=0, le=86_400)

    @model_validator(mode="after")
    def _default_within_max(self) -> LeasesConfig:
        if self.default_ttl_s > self.max_ttl_s:
            raise ValueError("default_ttl_s must not exceed max_ttl_s")
        return self


CONNECTORS = ("EMPTY", "USB_C", "LIGHTNING", "MICRO_USB", "USB_A")


class ModbusConfig(_Section):
    """The RS-485 line shared by the carousel and the bin lock controllers."""

    port: str = "/dev/hwd/modbus"
    baudrate: int = Field(default=115200, ge=1200, le=921_600)
    timeout_s: float = Field(default=0.5, gt=0, le=10)
    retries: int = Field(default=2, ge=0, le=10)


class CarouselConfig(_Section):
    """The cable carousel (Modbus unit on the shared line)."""

    enabled: bool = False
    unit: int = Field(default=1, ge=1, le=247)
    # The connector of each slot, as cabled; checked against what the controller reports. Empty:
    # trust the controller.
    slots: tuple[str, ...] = ()
    poll_s: float = Field(default=0.1, ge=0.01, le=10)
    move_timeout_s: float = Field(default=30.0, gt=0, le=300)

    @field_validator("slots")
    @classmethod
    def _known_connectors(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name not in CONNECTORS:
                raise ValueError(f"unknown connector {name!r}; one of {', '.join(CONNECTORS)}")
        return value


class BinLockConfig(_Section):
    """The bin lock (Modbus unit on the shared line)."""

    enabled: bool = False
    unit: int = Field(default=2, ge=1, le=247)
    poll_s: float = Field(default=0.2, ge=0.01, le=10)
    door_alarm_s: float = Field(default=120.0, gt=0, le=3600)


class PrinterConfig(_Section):
    """The thermal receipt printer (ESC/POS)."""

    enabled: bool = False
    # "tcp:HOST:PORT" (network, port 9100), "serial:/dev/hwd/printer[:BAUD]" or "usb:VID:PID" (hex).
    target: str = "usb:04b8:0202"
    # A python-escpos printer profile (the model's capabilities).
    profile: str = "TM-T88V"
    # A PNG or BMP printed at the top of vouchers; None for no logo.
    logo: Path | None = None
    poll_s: float = Field(default=1.0, ge=0.1, le=60)
    timeout_s: float = Field(default=2.0, gt=0, le=30)

    @field_validator("target")
    @classmethod
    def _known_target(cls, value: str) -> str:
        if not re.fullmatch(r"tcp:[^:]+:\d{1,5}|serial:/\S+|usb:[0-9a-fA-F]{4}:[0-9a-fA-F]{4}", value):
            raise ValueError('expected "tcp:HOST:PORT", "serial:/dev/PATH[:BAUD]" or "usb:VID:PID" (hex)')
        return value


class CameraConfig(_Section):
    """The inspection camera (OpenCV on a V4L2 device or a network stream)."""

    enabled: bool = False
    # A V4L2 device path ("/dev/video0", "/dev/hwd/camera-...") or a stream URL ("http://.../stream.mjpg").
    source: str = Field(default="/dev/video0", min_length=1)
    # Deadline of opening the camera and of reading one frame.
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    # Stills kept as evidence; the oldest files go beyond this.
    evidence_max_files: int = Field(default=1000, ge=1, le=1_000_000)
    # The preview never streams faster than this, whatever a viewer asks.
    preview_max_fps: float = Field(default=30.0, gt=0, le=30)
    # A stream or a video file is released this long after frames were last wanted (a V4L2 device
    # streams all the time); at least 2 s, so a preview at its slowest (1 fps) keeps it open.
    idle_close_s: float = Field(default=10.0, ge=2, le=3600)
    # While released, how often it is checked (opened, one frame read, released) to report a vanished camera.
    idle_probe_s: float = Field(default=15.0, ge=1, le=3600)
    # Calibration: millimetres per pixel in the tray's plane, at frames calibration_width pixels wide;
    # None reports no sizes in millimetres.
    mm_per_px: float | None = Field(default=None, gt=0, le=10)
    calibration_width: int = Field(default=1920, ge=16, le=16384)

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if not re.fullmatch(r"/\S+|(https?|rtsp)://\S+", value):
            raise ValueError('expected a device path such as "/dev/video0" or a stream URL "http://..."')
        return value


class PhonesConfig(_Section):
    """The phone ports: discovery, the ports the kiosk has, and the deadlines of reading a phone."""

    enabled: bool = False
    # Port paths that always show (ABSENT while empty), e.g. ["1-4.1", "1-4.2"]; others show once used.
    ports: tuple[str, ...] = ()
    # How long the customer has to allow the kiosk on the phone ("Allow USB debugging?").
    trust_timeout_s: float = Field(default=60.0, gt=0, le=600)
    # Deadline of reading one phone once it is connected.
    identify_timeout_s: float = Field(default=20.0, gt=0, le=300)
    # The kiosk's ADB key pair (the key a phone is asked to allow); None: STATE_DIR/adb.
    key_dir: Path | None = None
    # How phones are found on a real kiosk.
    discovery: str = Field(default="udev", pattern="^(udev)$")
    # usbmuxd's socket ("/path", "UNIX:/path" or "HOST:PORT"), where iPhones are found; "": no iPhones.
    usbmuxd_address: str = "/var/run/usbmuxd"
    # How long an iPhone's session waiting for Trust survives the USB reset that follows Trust.
    ios_reset_grace_s: float = Field(default=5.0, ge=0, le=60)
    # Where the kiosk keeps iPhone pair records while a phone is plugged in; None: STATE_DIR/lockdown.
    record_dir: Path | None = None

    @field_validator("ports")
    @classmethod
    def _port_paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for port in value:
            if not re.fullmatch(r"\d+-\d+(\.\d+)*", port):
                raise ValueError(f"{port!r} is not a USB port path such as 1-4.2")
        if len(set(value)) != len(value):
            raise ValueError("a port is listed twice")
        return value

    @field_validator("usbmuxd_address")
    @classmethod
    def _usbmuxd_address(cls, value: str) -> str:
        if value and not re.fullmatch(r"(UNIX:)?/\S+|[^\s/]+:\d{1,5}", value):
            raise ValueError('expected a socket path such as "/var/run/usbmuxd", "HOST:PORT", or "" for none')
        return value

    @field_validator("key_dir", "record_dir")
    @classmethod
    def _absolute_key_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError("must be an absolute path")
        return value


class SimulatorConfig(_Section):
    """The simulated kiosk started by `hwd serve --simulated`."""

    startup_timeout_s: float = Field(default=20.0, gt=0, le=300)


class Config(_Section):
    """The whole configuration."""

    daemon: DaemonConfig = DaemonConfig()
    grpc: GrpcConfig = GrpcConfig()
    events: EventsConfig = EventsConfig()
    leases: LeasesConfig = LeasesConfig()
    simulator: SimulatorConfig = SimulatorConfig()
    modbus: ModbusConfig = ModbusConfig()
    carousel: CarouselConfig = CarouselConfig()
    binlock: BinLockConfig = BinLockConfig()
    printer: PrinterConfig = PrinterConfig()
    camera: CameraConfig = CameraConfig()
    phones: PhonesConfig = PhonesConfig()

    def socket_dir(self) -> Path:
        """The runtime directory of ui.sock and tech.sock: /run/hwd as root, else $XDG_RUNTIME_DIR/hwd."""
        return self.daemon.socket_dir or _default_dir("/run/hwd", "XDG_RUNTIME_DIR", "/tmp")

    def state_dir(self) -> Path:
        """The journal's directory: /var/lib/hwd as root, else $XDG_STATE_HOME/hwd."""
        return self.daemon.state_dir or _default_dir(
            "/var/lib/hwd", "XDG_STATE_HOME", str(Path.home() / ".local" / "state")
        )


def _default_dir(as_root: str, xdg_var: str, xdg_default: str) -> Path:
    if os.geteuid() == 0:
        return Path(as_root)
    return Path(os.environ.get(xdg_var) or xdg_default) / "hwd"


def _env_overrides(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, value in sorted(env.items()):
        if name.startswith(ENV_PREFIX) and "__" in name:
            section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
            out.setdefault(section, {})[key] = _env_value(value)
    for name, (section, key) in ENV_SHORTCUTS.items():  # the short names win over the long ones
        if name in env:
            out.setdefault(section, {})[key] = env[name]
    return out


def _env_value(value: str) -> Any:
    """A list is written as a TOML array (``HWD_CAROUSEL__SLOTS='["USB_C", "LIGHTNING"]'``); anything
    else stays a string for pydantic to convert."""
    if value.lstrip().startswith("["):
        try:
            return tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            return value
    return value


def _origin(key: str, path: Path | None, env: Mapping[str, Any], flags: Mapping[str, Any]) -> str:
    """Where the value of dotted ``key`` came from: the last layer that set it wins."""
    section, _, leaf = key.partition(".")
    for name, layer in (("command line", flags), ("environment", env)):
        values = layer.get(section)
        if values is not None and (not leaf or not isinstance(values, Mapping) or leaf.split(".")[0] in values):
            return name
    return str(path or "defaults")


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def load_config(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Builds the configuration.

    :param path: a TOML file, or None for defaults only.
    :param env: the environment to read HWD_* variables from (default: os.environ).
    :param overrides: values from command-line flags, by section and key; they win over everything.
    :returns: the validated configuration.
    :raises ConfigError: naming the file (or "environment"), the key and the reason.
    """
    data = _read_toml(path) if path is not None else {}
    env_data = _env_overrides(os.environ if env is None else env)
    flags = overrides or {}
    try:
        return Config.model_validate(_merge(_merge(data, env_data), flags))
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        origin = _origin(key, path, env_data, flags)
        reason = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{origin}: {key}: {reason}{more}", metadata={"key": key, "origin": origin}) from None
