"""Phones on kiosk ports: the port state machine's states and the report read from a phone.

Every report field says where it came from and whether it could be read (DESIGN.md section 5):
something we could not read is UNKNOWN, never a clean-looking default.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

#: The types a report field's value may have.
Value = str | int | float | bool


class Availability(enum.Enum):
    """Whether a report field could be read (mirrors hwd.v1.Availability)."""

    AVAILABLE = "AVAILABLE"
    UNKNOWN = "UNKNOWN"
    NOT_SUPPORTED_ON_OS = "NOT_SUPPORTED_ON_OS"
    NEEDS_TRUST = "NEEDS_TRUST"


class Platform(enum.Enum):
    """The phone's operating system family (mirrors hwd.v1.Platform)."""

    ANDROID = "ANDROID"
    IOS = "IOS"


class PortState(enum.Enum):
    """Where a port's phone session stands (mirrors hwd.v1.PortState)."""

    ABSENT = "ABSENT"
    ENUMERATING = "ENUMERATING"
    AWAITING_TRUST = "AWAITING_TRUST"
    IDENTIFYING = "IDENTIFYING"
    READY = "READY"
    LOCKED = "LOCKED"
    DENIED = "DENIED"
    UNSUPPORTED = "UNSUPPORTED"
    ERROR = "ERROR"


@dataclass(frozen=True)
class Field:
    """One value of a phone report with its provenance.

    :ivar value: the value, or None unless AVAILABLE.
    :ivar source: where it came from, e.g. ``"adb:getprop ro.serialno"``; for an unavailable
        field, where it was looked for.
    :ivar detail: why it is not available, or how it was derived (e.g. the IMEI strategy).
    """

    availability: Availability
    value: Value | None = None
    source: str = ""
    detail: str = ""

    @classmethod
    def of(cls, value: Value, source: str, detail: str = "") -> Field:
        """An AVAILABLE field."""
        return cls(Availability.AVAILABLE, value, source, detail)

    @classmethod
    def unknown(cls, source: str, detail: str) -> Field:
        """A field that could not be read; ``detail`` says why."""
        return cls(Availability.UNKNOWN, None, source, detail)

    @classmethod
    def unsupported(cls, source: str, detail: str = "this OS version does not expose it") -> Field:
        """A field this phone's OS does not expose."""
        return cls(Availability.NOT_SUPPORTED_ON_OS, None, source, detail)

    @classmethod
    def needs_trust(cls, source: str, detail: str = "readable once the phone trusts the kiosk") -> Field:
        """A field readable only after the customer allows the kiosk on the phone."""
        return cls(Availability.NEEDS_TRUST, None, source, detail)

    @property
    def available(self) -> bool:
        """True when the value was read."""
        return self.availability is Availability.AVAILABLE


NOT_READ = Field(Availability.UNKNOWN, None, "", "not read")


def _unread() -> Field:
    return NOT_READ


@dataclass(frozen=True)
class PhoneReport:
    """What the kiosk knows about one phone. Field names match hwd.v1.PhoneReport.

    Values by field (when AVAILABLE): text unless noted. ``sdk_level``, the ``*_bytes``, the
    ``*_percent``, ``battery_voltage_mv`` and ``battery_cycle_count`` are int;
    ``battery_temperature_c`` is float; ``battery_charging``, ``google_account``, ``frp_likely``,
    ``screen_lock_set``, ``rooted``, ``find_my_associated`` and ``supervised`` are bool.
    """

    platform: Platform
    # identity
    manufacturer: Field = dataclasses.field(default_factory=_unread)
    brand: Field = dataclasses.field(default_factory=_unread)
    model: Field = dataclasses.field(default_factory=_unread)
    marketing_name: Field = dataclasses.field(default_factory=_unread)
    device_code: Field = dataclasses.field(default_factory=_unread)
    serial: Field = dataclasses.field(default_factory=_unread)
    udid: Field = dataclasses.field(default_factory=_unread)
    imei: Field = dataclasses.field(default_factory=_unread)
    imei2: Field = dataclasses.field(default_factory=_unread)
    meid: Field = dataclasses.field(default_factory=_unread)
    model_number: Field = dataclasses.field(default_factory=_unread)
    region: Field = dataclasses.field(default_factory=_unread)
    colour: Field = dataclasses.field(default_factory=_unread)
    # operating system
    os_version: Field = dataclasses.field(default_factory=_unread)
    sdk_level: Field = dataclasses.field(default_factory=_unread)
    build_version: Field = dataclasses.field(default_factory=_unread)
    security_patch: Field = dataclasses.field(default_factory=_unread)
    build_fingerprint: Field = dataclasses.field(default_factory=_unread)
    # storage
    storage_total_bytes: Field = dataclasses.field(default_factory=_unread)
    storage_free_bytes: Field = dataclasses.field(default_factory=_unread)
    # battery
    battery_level_percent: Field = dataclasses.field(default_factory=_unread)
    battery_health: Field = dataclasses.field(default_factory=_unread)
    battery_health_percent: Field = dataclasses.field(default_factory=_unread)
    battery_temperature_c: Field = dataclasses.field(default_factory=_unread)
    battery_voltage_mv: Field = dataclasses.field(default_factory=_unread)
    battery_charging: Field = dataclasses.field(default_factory=_unread)
    battery_cycle_count: Field = dataclasses.field(default_factory=_unread)
    # locks and accounts
    google_account: Field = dataclasses.field(default_factory=_unread)
    frp_likely: Field = dataclasses.field(default_factory=_unread)
    screen_lock_set: Field = dataclasses.field(default_factory=_unread)
    rooted: Field = dataclasses.field(default_factory=_unread)
    activation_state: Field = dataclasses.field(default_factory=_unread)
    find_my_associated: Field = dataclasses.field(default_factory=_unread)
    supervised: Field = dataclasses.field(default_factory=_unread)
    # network
    carrier: Field = dataclasses.field(default_factory=_unread)
    sim_state: Field = dataclasses.field(default_factory=_unread)

    def fields(self) -> dict[str, Field]:
        """Every report field by name, in declaration order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "platform"}


#: The report's field names, in order.
REPORT_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(PhoneReport) if f.name != "platform")


@dataclass(frozen=True)
class PortStatus:
    """One port and its phone session at one instant.

    :ivar port: the physical USB port path, e.g. ``"1-4.2"`` (device name ``port:1-4.2``).
    :ivar session_id: changes at every plug; empty while ABSENT.
    :ivar trust_deadline_ns: while AWAITING_TRUST, when the prompt times out (epoch ns).
    :ivar trust_prompt: while AWAITING_TRUST, what the customer must do on the phone.
    :ivar report: what was read so far (partial while IDENTIFYING, None before).
    """

    port: str
    state: PortState = PortState.ABSENT
    reason: str = "OK"
    detail: str = ""
    recovery_hint: str = ""
    since_ns: int = 0
    platform: Platform | None = None
    session_id: str = ""
    trust_deadline_ns: int = 0
    trust_prompt: str = ""
    report: PhoneReport | None = None


@dataclass(frozen=True)
class PortEvent:
    """A USB device arrived on or left a port; every discovery path (udev, usbmuxd, the simulated
    kiosk) yields these.

    :ivar port: the physical USB port path, e.g. ``"1-4.2"``.
    :ivar attached: True on arrival, False on removal (then only ``port`` matters).
    :ivar platform: the OS family when the device looks like a phone, else None.
    :ivar serial: the USB serial (ADB serial, iOS UDID), "" when unknown.
    :ivar endpoint: how a driver reaches it: ``"tcp:HOST:PORT"`` (simulated ADB phone),
        ``"usb:BUS:ADDRESS"`` (a real one), ``"usbmux:UDID"`` (iOS).
    :ivar debuggable: False for a phone that shows only MTP/PTP interfaces (USB debugging off).
    :ivar description: vendor and product as udev names them, for a technician.
    """

    port: str
    attached: bool
    platform: Platform | None = None
    serial: str = ""
    endpoint: str = ""
    debuggable: bool = True
    description: str = ""


def luhn_valid(digits: str) -> bool:
    """True when ``digits`` (decimal digits only) passes the Luhn check used by IMEIs."""
    if not digits.isdigit() or not digits.isascii():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0
