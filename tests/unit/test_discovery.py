"""Discovery without devices: the matching rules, the udev thread's port bookkeeping and the simulator's
phone changes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwd.discovery.rules import RULES, Rule, best_rule, classify, describe, interfaces_of, udid_of
from hwd.discovery.simbus import port_event
from hwd.discovery.udev import _Bridge
from hwd.model.phones import Platform, PortEvent
from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2

PIXEL = {
    "DEVTYPE": "usb_device",
    "BUSNUM": "001",
    "DEVNUM": "005",
    "ID_VENDOR_ID": "18d1",
    "ID_MODEL_ID": "4ee7",
    "ID_VENDOR_ENC": "Google",
    "ID_MODEL_ENC": "Pixel\\x207",
    "ID_SERIAL_SHORT": "28161FDH2005LK",
    "ID_USB_INTERFACES": ":ffff00:ff4201:",
    "ID_MTP_DEVICE": "1",
}


def with_props(**changes: str) -> dict[str, str]:
    return {**PIXEL, **changes}


def rule_name(props: dict[str, str]) -> str | None:
    rule = best_rule(props)
    return rule.name if rule else None


@pytest.mark.parametrize(
    ("interfaces", "extra", "expected"),
    [
        (":ffff00:ff4201:", {}, "android-adb"),
        (":060101:ff4201:", {}, "android-adb"),  # PTP with debugging on: still debuggable
        (":ff4201:", {"ID_VENDOR_ID": "2717"}, "android-adb"),  # any vendor
        (":ffff00:", {}, "android-mtp"),
        (":ffff00:", {"ID_MTP_DEVICE": "", "ID_MEDIA_PLAYER": "samsung"}, "android-player"),
        (":ffff00:", {"ID_MTP_DEVICE": ""}, None),  # a vendor interface alone says nothing
        (":060101:", {"ID_MTP_DEVICE": ""}, "android-ptp"),
        (":060101:fffe02:", {"ID_VENDOR_ID": "05ac"}, "iphone"),  # the vendor beats PTP
        (":030101:", {"ID_VENDOR_ID": "05ac", "ID_MTP_DEVICE": ""}, None),  # an Apple keyboard
        (":030101:030000:", {"ID_MTP_DEVICE": ""}, None),
        ("", {}, None),
    ],
)
def test_the_most_specific_rule_wins(interfaces: str, extra: dict[str, str], expected: str | None) -> None:
    assert rule_name(with_props(ID_USB_INTERFACES=interfaces, **extra)) == expected


def test_a_tie_goes_to_the_earlier_rule() -> None:
    first = Rule("first", Platform.ANDROID, True, has=("ff4201",))
    second = Rule("second", Platform.IOS, True, has=("ff4201",))
    assert best_rule(PIXEL, (first, second)) is first
    assert best_rule(PIXEL, (second, first)) is second


def test_an_adb_phone_is_a_debuggable_android_on_its_port() -> None:
    assert classify("1-4.2", PIXEL) == PortEvent(
        port="1-4.2",
        attached=True,
        platform=Platform.ANDROID,
        serial="28161FDH2005LK",
        endpoint="usb:1:5",
        debuggable=True,
        description="Google Pixel 7 (18d1:4ee7)",
    )


def test_an_iphone_is_reached_through_usbmuxd_by_its_udid() -> None:
    props = with_props(
        ID_VENDOR_ID="05ac", ID_USB_INTERFACES=":060101:fffe02:", ID_SERIAL_SHORT="00008110001A2D3E0C12801E"
    )
    event = classify("3-1", props)
    assert event is not None
    assert (event.platform, event.serial, event.endpoint) == (
        Platform.IOS,
        "00008110-001A2D3E0C12801E",
        "usbmux:00008110-001A2D3E0C12801E",
    )


def test_udids_of_old_and_new_iphones() -> None:
    old = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"  # 40 hex digits: the serial is the UDID
    assert udid_of(old) == old
    assert udid_of("00008030001E29A13C01802E") == "00008030-001E29A13C01802E"
    assert udid_of("not-hex-but-24-chars-xyz") == "not-hex-but-24-chars-xyz"


@pytest.mark.parametrize("sys_name", ["usb1", "1-4.2:1.1", "1-4:1.0", "", "1-4.2/../x"])
def test_hubs_and_interfaces_are_not_ports(sys_name: str) -> None:
    assert classify(sys_name, PIXEL) is None


def test_an_interface_is_not_a_phone_even_with_phone_properties() -> None:
    assert classify("1-4.2", with_props(DEVTYPE="usb_interface")) is None


def test_device_text_is_cleaned_and_capped() -> None:
    event = classify("1-4.2", with_props(ID_SERIAL_SHORT="AB\x00C\x1b[2J" + "x" * 500, BUSNUM="x", DEVNUM="5"))
    assert event is not None
    assert event.serial.startswith("ABC[2J")
    assert len(event.serial) == 128
    assert event.endpoint == ""  # no valid bus number: no USB address
    assert describe({}) == ""


@given(st.dictionaries(st.sampled_from([*PIXEL, "ID_MEDIA_PLAYER"]), st.text(max_size=80)), st.text(max_size=20))
def test_classify_never_raises(props: dict[str, str], sys_name: str) -> None:
    event = classify(sys_name, props)
    assert event is None or (event.attached and event.port == sys_name)


def test_interfaces_are_read_case_insensitively_and_garbage_is_dropped() -> None:
    assert interfaces_of(":FFFF00:ff4201::zz:1234567:") == {"ffff00", "ff4201"}


class Bookkeeping:
    """The udev thread's decisions, without a thread: what it delivers for each uevent."""

    def __init__(self) -> None:
        self.items: list[object] = []
        self.bridge = _Bridge(RULES, self.items.append)

    def seen(self, action: str, sys_name: str, props: dict[str, str]) -> list[object]:
        self.items.clear()
        self.bridge._seen(action, sys_name, props)
        return list(self.items)


def test_a_phone_announced_twice_is_announced_once() -> None:
    book = Bookkeeping()
    assert book.seen("add", "1-4.2", PIXEL) == [classify("1-4.2", PIXEL)]
    assert book.seen("add", "1-4.2", PIXEL) == []  # listed at start and also heard from the monitor


def test_only_ports_announced_before_are_removed() -> None:
    book = Bookkeeping()
    keyboard = with_props(ID_USB_INTERFACES=":030101:")
    assert book.seen("add", "1-1", keyboard) == []
    assert book.seen("remove", "1-1", {}) == []
    book.seen("add", "1-4.2", PIXEL)
    assert book.seen("remove", "1-4.2", {}) == [PortEvent("1-4.2", attached=False)]
    assert book.seen("remove", "1-4.2", {}) == []


def test_another_phone_on_an_occupied_port_ends_the_old_session_first() -> None:
    book = Bookkeeping()
    book.seen("add", "1-4.2", PIXEL)
    other = with_props(ID_SERIAL_SHORT="OTHER", DEVNUM="009")
    assert book.seen("add", "1-4.2", other) == [PortEvent("1-4.2", attached=False), classify("1-4.2", other)]
    assert book.seen("bind", "1-4.2", PIXEL) == []  # only "add" announces


def test_simulator_changes_become_port_events() -> None:
    phone = simulator_pb2.SimPhone(
        port="1-1.2", profile="pixel-7", platform="android", serial="S1", endpoint="tcp:127.0.0.1:5555"
    )
    assert port_event(simulator_pb2.PhoneChange(attached=True, phone=phone)) == PortEvent(
        "1-1.2", True, Platform.ANDROID, "S1", "tcp:127.0.0.1:5555", True, "simulated pixel-7"
    )
    assert port_event(simulator_pb2.PhoneChange(attached=False, phone=phone)) == PortEvent("1-1.2", attached=False)
    odd = simulator_pb2.SimPhone(port="1-1.3", platform="symbian")
    event = port_event(simulator_pb2.PhoneChange(attached=True, phone=odd))
    assert event is not None
    assert event.platform is None
    assert port_event(simulator_pb2.PhoneChange(attached=True)) is None
