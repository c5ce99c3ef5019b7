"""Which USB devices are phones: declarative rules over udev properties, the most specific wins.

A rule names the udev properties it needs (``equals``, ``present``) and the USB interfaces (class,
subclass and protocol in hex, as udev lists them in ``ID_USB_INTERFACES``, e.g. ``:ff4201:``) the
device must or must not show. When several rules match, the one naming more properties wins,
then the one naming more interfaces, then the earlier one. A device no rule matches is not a
phone and is ignored.

Everything here is pure: :func:`classify` reads a mapping of properties and never raises.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass

from hwd.model.phones import Platform, PortEvent

ADB = "ff4201"  # vendor class, subclass 0x42, protocol 1: adbd, whatever the vendor
PTP = "060101"  # still image class: PTP, and MTP on many phones (Samsung)
VENDOR_MTP = "ffff00"  # Android's own MTP interface (Pixel and most AOSP-based phones)
USBMUX = "fffe02"  # the interface usbmuxd claims on an iPhone or iPad
APPLE = "05ac"
MAX_TEXT = 128  # longest serial or description kept; USB string descriptors hold at most 126 characters
# bus-port[.port...]: a USB device's sysfs name; root hubs ("usb1") and interfaces ("1-4:1.0") differ
_PORT_PATH = re.compile(r"[1-9]\d{0,2}-\d{1,3}(?:\.\d{1,3}){0,6}")
_INTERFACE = re.compile(r"[0-9a-f]{6}")
_HEX_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


@dataclass(frozen=True)
class Rule:
    """One kind of phone, recognised by its udev properties and USB interfaces.

    :ivar name: what a technician reads in the logs, e.g. ``"android-adb"``.
    :ivar equals: properties that must have exactly these values.
    :ivar present: properties that must be set (any non-empty value).
    :ivar has: interfaces the device must show.
    :ivar lacks: interfaces it must not show.
    """

    name: str
    platform: Platform
    debuggable: bool
    equals: Mapping[str, str] = dataclasses.field(default_factory=dict)
    present: tuple[str, ...] = ()
    has: tuple[str, ...] = ()
    lacks: tuple[str, ...] = ()

    def matches(self, props: Mapping[str, str], interfaces: frozenset[str]) -> bool:
        """Whether a device with these properties and interfaces is this kind of phone."""
        return (
            all(props.get(k) == v for k, v in self.equals.items())
            and all(props.get(k) for k in self.present)
            and all(i in interfaces for i in self.has)
            and not any(i in interfaces for i in self.lacks)
        )

    @property
    def specificity(self) -> tuple[int, int]:
        """How much the rule names: properties first, then interfaces (greater wins)."""
        return len(self.equals) + len(self.present), len(self.has) + len(self.lacks)


# A phone with USB debugging on shows the ADB interface next to MTP/PTP; with it off, only MTP or PTP.
# An iPhone also shows PTP, so the Apple rule names the vendor to win over the PTP one.
RULES: tuple[Rule, ...] = (
    Rule("android-adb", Platform.ANDROID, True, has=(ADB,)),
    Rule("iphone", Platform.IOS, True, equals={"ID_VENDOR_ID": APPLE}, has=(USBMUX,)),
    Rule("android-mtp", Platform.ANDROID, False, present=("ID_MTP_DEVICE",), has=(VENDOR_MTP,), lacks=(ADB,)),
    Rule("android-player", Platform.ANDROID, False, present=("ID_MEDIA_PLAYER",), has=(VENDOR_MTP,), lacks=(ADB,)),
    Rule("android-ptp", Platform.ANDROID, False, has=(PTP,), lacks=(ADB,)),
)


def interfaces_of(value: str) -> frozenset[str]:
    """The interfaces in an ``ID_USB_INTERFACES`` value such as ``":ffff00:ff4201:"`` (lower case)."""
    return frozenset(i for i in value.lower().split(":") if _INTERFACE.fullmatch(i))


def best_rule(props: Mapping[str, str], rules: tuple[Rule, ...] = RULES) -> Rule | None:
    """The most specific rule matching a device's properties, or None when it is not a phone."""
    interfaces = interfaces_of(props.get("ID_USB_INTERFACES", ""))
    found = [r for r in rules if r.matches(props, interfaces)]
    # max() keeps the first of equals, so table order breaks ties.
    return max(found, key=lambda r: r.specificity) if found else None


def port_of(sys_name: str) -> str | None:
    """The port path of a USB device's sysfs name (``"1-4.2"``), or None for a hub or interface."""
    return sys_name if _PORT_PATH.fullmatch(sys_name) else None


def classify(sys_name: str, props: Mapping[str, str], rules: tuple[Rule, ...] = RULES) -> PortEvent | None:
    """The attach event of a USB device, or None when it is not a phone (or not a USB device).

    :param sys_name: the device's sysfs name, e.g. ``"1-4.2"``; it becomes the port.
    :param props: its udev properties.
    """
    port = port_of(sys_name)
    if port is None or props.get("DEVTYPE") != "usb_device":
        return None
    rule = best_rule(props, rules)
    if rule is None:
        return None
    serial = _text(props.get("ID_SERIAL_SHORT", ""))
    if rule.platform is Platform.IOS:
        serial = udid_of(serial)
        endpoint = f"usbmux:{serial}" if serial else ""
    else:
        endpoint = _usb_endpoint(props)
    return PortEvent(
        port=port,
        attached=True,
        platform=rule.platform,
        serial=serial,
        endpoint=endpoint,
        debuggable=rule.debuggable,
        description=describe(props),
    )


def udid_of(serial: str) -> str:
    """An iPhone's UDID from its USB serial: since the A12 the serial is 24 hex digits and the
    UDID puts a dash after the eighth (as usbmuxd does); older serials are the UDID."""
    if len(serial) == 24 and all(c in "0123456789abcdefABCDEF" for c in serial):
        return f"{serial[:8]}-{serial[8:]}"
    return serial


def describe(props: Mapping[str, str]) -> str:
    """Vendor, product and ids for a technician, e.g. ``"Google Pixel 7 (18d1:4ee7)"``."""
    vendor = _decoded(props, "ID_VENDOR_ENC") or _text(props.get("ID_VENDOR_FROM_DATABASE", ""))
    model = _decoded(props, "ID_MODEL_ENC") or _text(props.get("ID_MODEL_FROM_DATABASE", ""))
    ids = f"{_text(props.get('ID_VENDOR_ID', ''))}:{_text(props.get('ID_MODEL_ID', ''))}"
    return " ".join(p for p in (vendor, model, f"({ids})" if ids != ":" else "") if p)[:MAX_TEXT]


def _usb_endpoint(props: Mapping[str, str]) -> str:
    bus, dev = props.get("BUSNUM", ""), props.get("DEVNUM", "")
    if not (bus.isdigit() and dev.isdigit() and bus.isascii() and dev.isascii()):
        return ""
    return f"usb:{int(bus)}:{int(dev)}"


def _decoded(props: Mapping[str, str], key: str) -> str:
    """A udev ``*_ENC`` value with its ``\\xNN`` escapes decoded (udev escapes spaces and symbols)."""
    return _text(_HEX_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), props.get(key, "")))


def _text(value: str) -> str:
    """Printable text only, trimmed and capped: USB strings come from the device and are not trusted."""
    return "".join(c for c in value if c.isprintable()).strip()[:MAX_TEXT]
