"""iPhone profiles: data files in ``simulators/ios/profiles/*.toml``, one phone each.

A profile file holds what that phone's lockdownd answers to GetValue: ``[root]`` (the root
domain), ``[domains."com.apple..."]`` (one table per domain) and ``[ioregistry.CLASS]`` (what
diagnostics_relay's IORegistry request gives for an entry class). Binary plist values (``<data>``)
are written as ``{ base64 = "..." }``, or ``{ pem = "..." }`` for text kept as bytes
(``DevicePublicKey``). Key names are lockdownd's own, as libimobiledevice and pymobiledevice3 show them.
"""

from __future__ import annotations

import base64
import binascii
import copy
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

#: What an iPhone's lockdownd answers in the root domain before it is paired with the host
#: (``ideviceinfo -s`` on an untrusted phone): no serial number, no IMEI, no activation state.
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


class ProfileError(ValueError):
    """A profile file is malformed; the message names the profile and the entry."""


@dataclass(frozen=True)
class IosProfile:
    """One simulated iPhone.

    :ivar name: the profile's name, e.g. ``"iphone-13"``.
    :ivar model: the marketing name, e.g. ``"iPhone 13"``.
    :ivar serial: the UDID (what usbmuxd lists the phone by).
    :ivar root: the root domain's values, every key.
    :ivar domains: the other domains' values, by domain name.
    :ivar entries: IORegistry entries' properties, by entry class.
    """

    name: str
    model: str
    os_version: str
    serial: str
    description: str
    product_type: str
    root: dict[str, object]
    domains: dict[str, dict[str, object]] = field(default_factory=dict)
    entries: dict[str, dict[str, object]] = field(default_factory=dict)
    manufacturer: str = "Apple"
    platform: str = "ios"

    def values(self, domain: str | None, paired: bool) -> dict[str, object]:
        """What lockdownd's GetValue answers for a whole domain.

        :param domain: the domain, None (or "") for the root domain.
        :param paired: False gives what an unpaired iPhone tells: a subset of the root domain, and
            nothing from any other domain.
        :returns: a fresh copy (callers may change it); empty for a domain the phone does not have.
        """
        if not domain:
            chosen = self.root if paired else {k: v for k, v in self.root.items() if k in UNPAIRED_KEYS}
            return copy.deepcopy(chosen)
        return copy.deepcopy(self.domains.get(domain, {})) if paired else {}

    def ioregistry(self, entry_class: str) -> dict[str, object] | None:
        """The IORegistry entry of ``entry_class`` (e.g. ``"AppleSmartBattery"``), or None."""
        entry = self.entries.get(entry_class)
        return copy.deepcopy(entry) if entry is not None else None


def load_profiles() -> dict[str, IosProfile]:
    """Every iPhone profile.

    :returns: profiles by name, sorted by name.
    :raises ProfileError: a profile file is malformed (a packaging defect).
    """
    folder = resources.files("simulators.ios").joinpath("profiles")
    profiles: dict[str, IosProfile] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            name = entry.name.removesuffix(".toml")
            try:
                data = tomllib.loads(entry.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise ProfileError(f"profile {name}: {exc}") from exc
            profiles[name] = build_profile(name, data)
    return profiles


def build_profile(name: str, data: dict[str, Any]) -> IosProfile:
    """Builds a profile from a parsed profile document.

    :raises ProfileError: a required entry is missing or has the wrong type.
    """
    try:
        root = _table(data["root"])
        return IosProfile(
            name=name,
            model=str(data["model"]),
            os_version=str(root["ProductVersion"]),
            serial=str(root["UniqueDeviceID"]),
            description=str(data["description"]),
            product_type=str(root["ProductType"]),
            root=root,
            domains={str(k): _table(v) for k, v in data.get("domains", {}).items()},
            entries={str(k): _table(v) for k, v in data.get("ioregistry", {}).items()},
        )
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise ProfileError(f"profile {name}: missing or malformed entry {exc}") from exc


def _table(table: Any) -> dict[str, object]:
    if not isinstance(table, dict):
        raise TypeError(f"expected a table, not {type(table).__name__}")
    # lockdownd sends its dictionaries with sorted keys (CFPropertyList writes them so)
    return {str(k): _plist_value(table[k]) for k in sorted(table)}


def _plist_value(value: Any) -> object:
    """A TOML value as the plist value it stands for (``{base64}`` and ``{pem}`` become bytes)."""
    if isinstance(value, dict):
        if set(value) == {"base64"}:
            return base64.b64decode(str(value["base64"]), validate=True)
        if set(value) == {"pem"}:
            return str(value["pem"]).encode("ascii")
        return _table(value)
    if isinstance(value, list):
        return [_plist_value(item) for item in value]
    if isinstance(value, str | int | bool):
        return value
    raise TypeError(f"a {type(value).__name__} has no plist form here")
