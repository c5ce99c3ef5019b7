"""Builds a :class:`~hwd.model.phones.PhoneReport` from what an iPhone's lockdownd and
diagnostics_relay answered, and decides whether the phone must be treated as locked.

Pure and total: the answers are hostile input (any plist value where a dictionary, text or
number was expected); anything of the wrong type or shape becomes an UNKNOWN field with the
reason, never an exception. Every field names the domain and key it came from. Before the phone
trusts the kiosk (not paired) lockdownd answers only a few root-domain keys; the rest are
NEEDS_TRUST.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hwd.drivers.ios.models import marketing_name
from hwd.model.phones import Availability, Field, PhoneReport, Platform, Value, luhn_valid

#: Root-domain keys lockdownd answers before pairing (what ``ideviceinfo -s`` shows on an untrusted phone).
UNPAIRED_KEYS = frozenset(
    {
        "BasebandCertId",
        "BasebandSerialNumber",
        "BasebandVersion",
        "BoardId",
        "BuildVersion",
        "CPUArchitecture",
        "ChipID",
        "DeviceClass",
        "DeviceColor",
        "DeviceName",
        "DevicePublicKey",
        "DieID",
        "HardwareModel",
        "HasSiDP",
        "HumanReadableProductVersionString",
        "PartitionType",
        "ProductName",
        "ProductType",
        "ProductVersion",
        "ProductionSOC",
        "ProtocolVersion",
        "SupportedDeviceFamilies",
        "TelephonyCapability",
        "UniqueChipID",
        "UniqueDeviceID",
        "WiFiAddress",
    }
)
BATTERY_DOMAIN = "com.apple.mobile.battery"
DISK_DOMAIN = "com.apple.disk_usage"
FMIP_DOMAIN = "com.apple.fmip"
CHAPERONE_DOMAIN = "com.apple.mobile.chaperone"
IOREG_SOURCE = "diagnostics_relay:IORegistry AppleSmartBattery"
#: The only ActivationState that means the phone is out of Activation Lock.
ACTIVATED = "Activated"
#: Longest text value kept (real ones are far shorter).
MAX_TEXT = 256
_UDID = re.compile(r"[0-9a-fA-F]{40}|[0-9A-F]{8}-[0-9A-F]{16}")
_SERIAL = re.compile(r"[A-Z0-9]{8,20}")
_MEID = re.compile(r"[0-9A-F]{14}")
_UNSUPPORTED = ("sdk_level", "security_patch", "build_fingerprint", "google_account", "frp_likely", "rooted")
_Check = Callable[[object], "Value | str"]


class _Bad(str):
    """A check's verdict that a value is unusable: the text says why."""


@dataclass(frozen=True)
class _Src:
    """One answer (a domain's values or an IORegistry entry) and how to name where a key came from."""

    values: object
    prefix: str
    paired: bool
    gated: bool  # True: before pairing nothing of it is readable
    why: str = ""

    def field(self, key: str, check: _Check, detail: str = "") -> Field:
        """The value of ``key`` as a field: checked by ``check``, or why it is missing."""
        source = f"{self.prefix}{key}"
        if not isinstance(self.values, dict) or key not in self.values:
            return self._absent(key, source)
        verdict = check(self.values[key])
        if isinstance(verdict, _Bad):
            return Field.unknown(source, str(verdict))
        return Field.of(verdict, source, detail)

    def _absent(self, key: str, source: str) -> Field:
        if not self.paired and (self.gated or key not in UNPAIRED_KEYS):
            return Field.needs_trust(source)
        if isinstance(self.values, dict):
            return Field.unknown(source, "the phone did not give it")
        if self.values is None:
            return Field.unknown(source, self.why or "not read")
        return Field.unknown(source, f"the answer is a {type(self.values).__name__}, not a dictionary")

    def raw(self, key: str) -> object:
        return self.values.get(key) if isinstance(self.values, dict) else None


def _text(value: object) -> Value | str:
    if not isinstance(value, str):
        return _Bad(f"a {type(value).__name__}, not text")
    cleaned = "".join(ch for ch in value[:MAX_TEXT] if ch.isprintable()).strip()
    return cleaned if cleaned else _Bad("empty")


def _pattern(pattern: re.Pattern[str], what: str) -> _Check:
    def check(value: object) -> Value | str:
        text = _text(value)
        if isinstance(text, str) and not isinstance(text, _Bad) and not pattern.fullmatch(text):
            return _Bad(f"{text[:40]!r} is not {what}")
        return text

    return check


def _imei(value: object) -> Value | str:
    text = _text(value)
    if isinstance(text, _Bad) or not isinstance(text, str):
        return text
    if len(text) != 15 or not luhn_valid(text):
        return _Bad(f"{text[:20]!r} is not a 15-digit IMEI with a valid check digit")
    return text


def _flag(value: object) -> Value | str:
    return value if isinstance(value, bool) else _Bad(f"a {type(value).__name__}, not a boolean")


def _number(low: int, high: int) -> _Check:
    def check(value: object) -> Value | str:
        if not isinstance(value, int) or isinstance(value, bool):
            return _Bad(f"a {type(value).__name__}, not a whole number")
        return value if low <= value <= high else _Bad(f"{value} is outside {low}..{high}")

    return check


def _temperature(value: object) -> Value | str:
    centi = _number(-4000, 10000)(value)  # AppleSmartBattery gives hundredths of a degree
    return centi / 100 if isinstance(centi, int) else centi


def report_from_lockdown(
    values: Mapping[str, Any] | None,
    *,
    paired: bool,
    battery: Mapping[str, Any] | None = None,
    disk: Mapping[str, Any] | None = None,
    fmip: Mapping[str, Any] | None = None,
    chaperone: Mapping[str, Any] | None = None,
    ioreg_battery: Mapping[str, Any] | None = None,
    why: Mapping[str, str] | None = None,
) -> PhoneReport:
    """The report of one iPhone from lockdownd's answers.

    :param values: GetValue of the root domain (None when it failed).
    :param paired: whether the phone trusts the kiosk: before that, fields only a paired host can
        read are NEEDS_TRUST rather than UNKNOWN.
    :param battery: GetValue of ``com.apple.mobile.battery``; ``disk``: ``com.apple.disk_usage``;
        ``fmip``: ``com.apple.fmip``; ``chaperone``: ``com.apple.mobile.chaperone`` (None: not read).
    :param ioreg_battery: the properties of diagnostics_relay's IORegistry entry ``AppleSmartBattery``.
    :param why: why an answer is missing, by domain name or ``"diagnostics_relay"``, shown in the
        UNKNOWN fields' details.
    :returns: the report (platform IOS); never raises.
    """
    reasons = why or {}

    def src(answer: object, prefix: str, name: str, gated: bool = True) -> _Src:
        return _Src(answer, prefix, paired, gated, reasons.get(name, f"{name} was not read"))

    root = src(values, "lockdown:", "lockdown", gated=False)
    fields: dict[str, Field] = {
        **_identity(root),
        **_os_and_locks(
            root,
            src(fmip, f"lockdown:{FMIP_DOMAIN}/", FMIP_DOMAIN),
            src(chaperone, f"lockdown:{CHAPERONE_DOMAIN}/", CHAPERONE_DOMAIN),
        ),
        **_storage(src(disk, f"lockdown:{DISK_DOMAIN}/", DISK_DOMAIN)),
        **_battery(
            src(battery, f"lockdown:{BATTERY_DOMAIN}/", BATTERY_DOMAIN),
            src(ioreg_battery, f"{IOREG_SOURCE}/", "diagnostics_relay"),
        ),
        **_network(root),
    }
    for name in _UNSUPPORTED:
        fields[name] = Field.unsupported("lockdown", "iOS does not expose it")
    return PhoneReport(Platform.IOS, **fields)


def _identity(root: _Src) -> dict[str, Field]:
    model = root.field("ProductType", _text)
    apple = Field.of("Apple", "lockdown", "every lockdownd peer is an Apple device")
    return {
        "manufacturer": apple,
        "brand": apple,
        "model": model,
        "marketing_name": _marketing_name(model),
        "device_code": root.field("HardwareModel", _text),
        "udid": root.field("UniqueDeviceID", _pattern(_UDID, "a UDID")),
        "serial": root.field("SerialNumber", _pattern(_SERIAL, "an Apple serial number")),
        "imei": root.field("InternationalMobileEquipmentIdentity", _imei),
        "imei2": root.field("InternationalMobileEquipmentIdentity2", _imei),
        "meid": root.field("MobileEquipmentIdentifier", _pattern(_MEID, "a 14-digit MEID")),
        "model_number": root.field("ModelNumber", _text),
        "region": root.field("RegionInfo", _text),
        "colour": _colour(root),
    }


def _marketing_name(model: Field) -> Field:
    if not model.available:
        return Field(model.availability, None, model.source, "the model is not known")
    name = marketing_name(str(model.value))
    if name:
        return Field.of(name, model.source, "from the ProductType, by hwd's table")
    return Field.unknown(model.source, f"ProductType {model.value} is not in hwd's table")


def _colour(root: _Src) -> Field:
    """The enclosure (back) colour code; the front colour before trust. Apple's codes are per model
    (``#rrggbb`` up to the iPhone X, small numbers after it), so the raw code is reported."""
    front = root.field("DeviceColor", _text)
    back = root.field("DeviceEnclosureColor", _text)
    if back.available:
        shown = f"front {front.value}" if front.available else "front unknown"
        return Field.of(str(back.value), back.source, f"enclosure colour code as the phone reports it ({shown})")
    if front.available:
        return Field.of(str(front.value), front.source, "front colour code as reported; the back was not read")
    return back


def _os_and_locks(root: _Src, fmip: _Src, chaperone: _Src) -> dict[str, Field]:
    find_my = fmip.field("IsAssociated", _flag)
    if find_my.available and find_my.value is False:
        detail = "Find My reads off; an erased phone can still be activation-locked: ActivationState decides"
        find_my = Field.of(False, find_my.source, detail)
    return {
        "os_version": root.field("ProductVersion", _text),
        "build_version": root.field("BuildVersion", _text),
        "activation_state": root.field("ActivationState", _text),
        "find_my_associated": find_my,
        "supervised": chaperone.field("DeviceIsChaperoned", _flag),
        "screen_lock_set": root.field("PasswordProtected", _flag),
    }


def _storage(disk: _Src) -> dict[str, Field]:
    size = _number(1, 1 << 50)
    total = disk.field("TotalDiskCapacity", size, "capacity of the whole disk")
    if not total.available and total.availability is not Availability.NEEDS_TRUST:
        total = disk.field("TotalDataCapacity", size, "capacity of the data partition")
    free = disk.field("TotalDataAvailable", _number(0, 1 << 50), "space available to the user")
    if total.available and free.available and int(free.value or 0) > int(total.value or 0):
        free = Field.unknown(free.source, f"{free.value} free is more than the {total.value} total")
    return {"storage_total_bytes": total, "storage_free_bytes": free}


def _either(first: Field, second: Callable[[], Field]) -> Field:
    """``first`` when it was read, else the fallback (when that was read), else ``first``."""
    if first.available:
        return first
    other = second()
    return other if other.available else first


def _battery(domain: _Src, ioreg: _Src) -> dict[str, Field]:
    return {
        "battery_level_percent": _either(
            domain.field("BatteryCurrentCapacity", _number(0, 100)),
            lambda: ioreg.field("CurrentCapacity", _number(0, 100)),
        ),
        "battery_charging": _either(domain.field("BatteryIsCharging", _flag), lambda: ioreg.field("IsCharging", _flag)),
        "battery_health": Field.unsupported("lockdown", "iOS reports capacity: see battery_health_percent"),
        "battery_health_percent": _health_percent(ioreg),
        "battery_cycle_count": ioreg.field("CycleCount", _number(0, 100_000)),
        "battery_temperature_c": ioreg.field("Temperature", _temperature, "hundredths of a degree, divided by 100"),
        "battery_voltage_mv": ioreg.field("Voltage", _number(1000, 6000)),
    }


def _health_percent(ioreg: _Src) -> Field:
    """Full-charge capacity over design capacity, as Settings' "Maximum Capacity" shows it."""
    capacity = _number(1, 100_000)
    design = ioreg.field("DesignCapacity", capacity)
    full = _either(ioreg.field("AppleRawMaxCapacity", capacity), lambda: ioreg.field("NominalChargeCapacity", capacity))
    if not design.available:
        return design
    if not full.available:
        return full
    percent = round(int(full.value or 0) * 100 / int(design.value or 1))
    source = f"{full.source} / DesignCapacity"
    if percent > 150:
        return Field.unknown(source, f"{full.value} mAh over a {design.value} mAh design is not a real battery")
    return Field.of(percent, source, f"{full.value} mAh of {design.value} mAh design")


def _network(root: _Src) -> dict[str, Field]:
    return {"carrier": _carrier(root), "sim_state": root.field("SIMStatus", _text)}


def _carrier(root: _Src) -> Field:
    """The first SIM's carrier bundle (``com.apple.Vodafone_uk`` -> ``Vodafone_uk``) from CarrierBundleInfoArray."""
    found = root.field("CarrierBundleInfoArray", lambda v: "" if isinstance(v, list) else _Bad("not a list"))
    if not found.available:
        if found.availability is Availability.NEEDS_TRUST or "did not give" not in found.detail:
            return found
        return Field.unknown(found.source, "no carrier bundle: no SIM, or the SIM is not active")
    listed = root.raw("CarrierBundleInfoArray")
    bundles = [b for b in listed[:8] if isinstance(b, dict)] if isinstance(listed, list) else []
    for bundle in bundles:
        name = _text(bundle.get("CFBundleIdentifier"))
        if not isinstance(name, _Bad) and isinstance(name, str):
            network = f"MCC {_text(bundle.get('MCC'))} MNC {_text(bundle.get('MNC'))}"
            detail = f"carrier bundle {name}, {network}; {len(bundles)} SIM(s) with a carrier bundle"
            return Field.of(name.removeprefix("com.apple."), found.source, detail)
    return Field.unknown(found.source, "no carrier bundle names a carrier")


def lock_state(report: PhoneReport) -> tuple[bool, str]:
    """Whether the phone must be treated as LOCKED, and why.

    Locked when Activation Lock holds it (ActivationState other than "Activated", or Find My on)
    or it is supervised (managed by an organisation); an activation state, Find My flag or
    supervision that could not be read counts as locked, never as clean.

    :returns: (locked, the reasons joined by "; ").
    """
    reasons: list[str] = []
    state = report.activation_state
    if not state.available:
        reasons.append(f"activation state not known ({state.detail or state.availability.value})")
    elif state.value != ACTIVATED:
        reasons.append(f"activation-locked: ActivationState is {state.value}")
    for name, field, on in (
        ("Find My", report.find_my_associated, "Find My is on: the owner must remove the phone from their account"),
        ("supervision", report.supervised, "supervised: an organisation manages the phone (MDM)"),
    ):
        if not field.available:
            reasons.append(f"{name} not known ({field.detail or field.availability.value})")
        elif field.value is True:
            reasons.append(on)
    if reasons:
        return True, "; ".join(reasons)
    return False, "activated, Find My off, not supervised"
