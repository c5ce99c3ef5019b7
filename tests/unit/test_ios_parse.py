"""The iOS report builder over every simulated iPhone, on garbage, on arbitrary plist values
(hypothesis), and the lock decision."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwd.drivers.ios.models import MARKETING_NAMES, marketing_name
from hwd.drivers.ios.parse import lock_state, report_from_lockdown
from hwd.model.phones import Availability, Field, PhoneReport, Platform
from simulators.ios.profiles import IosProfile, load_profiles

PROFILES = load_profiles()
_SOURCES = {
    "battery": "com.apple.mobile.battery",
    "disk": "com.apple.disk_usage",
    "fmip": "com.apple.fmip",
    "chaperone": "com.apple.mobile.chaperone",
}
_TRUST_ONLY = ("serial", "imei", "model_number", "region", "activation_state", "find_my_associated", "supervised")
_BATTERY = ("battery_level_percent", "battery_charging", "battery_health_percent", "battery_cycle_count")


def read(profile: IosProfile, paired: bool) -> PhoneReport:
    """What the reader hands the builder: every domain, and the IORegistry entry only once paired."""
    domains = {arg: profile.values(domain, paired) or None for arg, domain in _SOURCES.items()}
    ioreg = profile.ioregistry("AppleSmartBattery") if paired else None
    return report_from_lockdown(profile.values(None, paired), paired=paired, ioreg_battery=ioreg, **domains)


@pytest.fixture(params=sorted(PROFILES))
def profile(request: pytest.FixtureRequest) -> IosProfile:
    return PROFILES[request.param]


def test_a_paired_report_matches_the_profile(profile: IosProfile) -> None:
    report = read(profile, paired=True)
    root = profile.values(None, True)
    entry = profile.ioregistry("AppleSmartBattery")
    assert entry is not None
    assert report.platform is Platform.IOS
    assert (report.manufacturer.value, report.model.value) == ("Apple", profile.product_type)
    assert report.marketing_name.value == profile.model
    assert (report.udid.value, report.serial.value) == (profile.serial, root["SerialNumber"])
    assert report.imei.value == root["InternationalMobileEquipmentIdentity"]
    assert report.imei2.value == root.get("InternationalMobileEquipmentIdentity2")
    assert report.meid.value == root.get("MobileEquipmentIdentifier")
    assert (report.os_version.value, report.build_version.value) == (profile.os_version, root["BuildVersion"])
    assert report.colour.value == root["DeviceEnclosureColor"]
    assert report.activation_state.value == root["ActivationState"]
    assert report.storage_total_bytes.value == profile.values("com.apple.disk_usage", True)["TotalDiskCapacity"]
    assert report.battery_cycle_count.value == entry["CycleCount"]
    assert report.battery_temperature_c.value == entry["Temperature"] / 100
    assert report.battery_level_percent.source == "lockdown:com.apple.mobile.battery/BatteryCurrentCapacity"
    assert report.battery_cycle_count.source == "diagnostics_relay:IORegistry AppleSmartBattery/CycleCount"
    assert report.imei.source == "lockdown:InternationalMobileEquipmentIdentity"
    for name in ("sdk_level", "security_patch", "build_fingerprint", "google_account", "frp_likely", "rooted"):
        assert report.fields()[name].availability is Availability.NOT_SUPPORTED_ON_OS
    assert all(f.source for f in report.fields().values())
    for name in (*_TRUST_ONLY, *_BATTERY, "storage_free_bytes", "screen_lock_set", "sim_state"):
        assert report.fields()[name].available, name


def test_an_unpaired_report_needs_trust_for_the_rest(profile: IosProfile) -> None:
    report = read(profile, paired=False)
    assert report.udid.value == profile.serial
    assert report.model.value == profile.product_type
    assert report.marketing_name.value == profile.model
    assert report.os_version.value == profile.os_version
    for name in (*_TRUST_ONLY, *_BATTERY, "storage_total_bytes", "imei2", "carrier"):
        assert report.fields()[name].availability is Availability.NEEDS_TRUST, name
    locked, why = lock_state(report)
    assert locked
    assert "activation state not known" in why


def test_battery_health_and_storage_figures() -> None:
    report = read(PROFILES["iphone-13"], paired=True)
    assert report.battery_health_percent.value == 87  # 2809 of 3227 mAh
    assert read(PROFILES["iphone-se-2"], paired=True).battery_health_percent.value == 79
    assert report.storage_free_bytes.value == 69_877_481_472
    assert report.carrier.value == "Vodafone_uk"
    assert "MCC 234 MNC 15" in report.carrier.detail
    assert read(PROFILES["iphone-8"], paired=True).imei2.availability is Availability.UNKNOWN


@pytest.mark.parametrize(
    ("name", "locked", "reason"),
    [
        ("iphone-13", False, "activated, Find My off, not supervised"),
        ("iphone-11", True, "Find My is on"),
        ("iphone-12-mini", True, "supervised"),
        ("iphone-13-activation-locked", True, "ActivationState is Unactivated"),
    ],
)
def test_lock_state_of_the_profiles(name: str, locked: bool, reason: str) -> None:
    result, why = lock_state(read(PROFILES[name], paired=True))
    assert result is locked
    assert reason in why


def test_an_erased_locked_phone_is_not_cleared_by_find_my() -> None:
    report = read(PROFILES["iphone-13-activation-locked"], paired=True)
    assert report.find_my_associated.value is False
    assert "ActivationState decides" in report.find_my_associated.detail
    assert lock_state(report)[0] is True


def _with(**fields: Field) -> PhoneReport:
    clean = {
        "activation_state": Field.of("Activated", "lockdown:ActivationState"),
        "find_my_associated": Field.of(False, "lockdown:com.apple.fmip/IsAssociated"),
        "supervised": Field.of(False, "lockdown:com.apple.mobile.chaperone/DeviceIsChaperoned"),
    }
    return dataclasses.replace(PhoneReport(Platform.IOS, **clean), **fields)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"activation_state": Field.unknown("lockdown:ActivationState", "timed out")}, "activation state not known"),
        ({"activation_state": Field.of("FactoryActivated", "x")}, "ActivationState is FactoryActivated"),
        ({"activation_state": Field.needs_trust("lockdown:ActivationState")}, "activation state not known"),
        ({"find_my_associated": Field.unknown("x", "domain refused")}, "Find My not known (domain refused)"),
        ({"supervised": Field.unknown("x", "garbage")}, "supervision not known"),
    ],
)
def test_anything_unknown_counts_as_locked(change: dict[str, Field], reason: str) -> None:
    assert lock_state(_with()) == (False, "activated, Find My off, not supervised")
    locked, why = lock_state(_with(**change))
    assert locked
    assert reason in why


def test_wrong_types_become_unknown_with_a_reason() -> None:
    root: dict[str, Any] = dict(PROFILES["iphone-13"].values(None, True))
    root |= {
        "ProductType": 14,
        "SerialNumber": "serial with spaces",
        "InternationalMobileEquipmentIdentity": "354432110456785",  # check digit off by one
        "InternationalMobileEquipmentIdentity2": ["354432110456867"],
        "ActivationState": "",
        "CarrierBundleInfoArray": {"CFBundleIdentifier": "com.apple.EE"},
        "PasswordProtected": "yes",
    }
    report = report_from_lockdown(
        root,
        paired=True,
        battery={"BatteryCurrentCapacity": 140, "BatteryIsCharging": 1},
        disk={"TotalDiskCapacity": 100, "TotalDataAvailable": 200},
        fmip={"IsAssociated": "false"},
        chaperone=[True],  # type: ignore[arg-type]
        ioreg_battery={"DesignCapacity": 0, "CycleCount": True, "Temperature": 2.5e3, "Voltage": None},
        why={"diagnostics_relay": "never asked"},
    )
    details = {name: f.detail for name, f in report.fields().items() if f.availability is Availability.UNKNOWN}
    assert "not text" in details["model"]
    assert "not known" in details["marketing_name"]
    assert "not an Apple serial number" in details["serial"]
    assert "valid check digit" in details["imei"]
    assert "a list, not text" in details["imei2"]
    assert details["activation_state"] == "empty"
    assert "not a list" in details["carrier"]
    assert "not a boolean" in details["screen_lock_set"]
    assert "outside 0..100" in details["battery_level_percent"]
    assert "not a boolean" in details["battery_charging"]
    assert "more than the 100 total" in details["storage_free_bytes"]
    assert "not a boolean" in details["find_my_associated"]
    assert "not a dictionary" in details["supervised"]
    assert "outside" in details["battery_health_percent"]
    assert "not a whole number" in details["battery_cycle_count"]
    assert {"battery_temperature_c", "battery_voltage_mv"} <= set(details)
    assert lock_state(report)[0] is True


def test_nothing_read_is_unknown_with_the_reason() -> None:
    report = report_from_lockdown(None, paired=True, why={"lockdown": "lockdownd closed the connection"})
    assert report.imei.detail == "lockdownd closed the connection"
    assert report.battery_cycle_count.detail == "diagnostics_relay was not read"
    assert report.udid.availability is Availability.UNKNOWN
    unpaired = report_from_lockdown(None, paired=False)
    assert unpaired.udid.availability is Availability.UNKNOWN  # readable before trust, yet not read
    assert unpaired.imei.availability is Availability.NEEDS_TRUST


def test_marketing_names_are_exact_matches_only() -> None:
    assert marketing_name("iPhone14,5") == "iPhone 13"
    assert marketing_name("iPhone17,5") == "iPhone 16e"
    assert marketing_name("iPhone99,1") == marketing_name("iphone14,5") == ""
    assert len(set(MARKETING_NAMES.values())) == 32  # iPhone 8 to the 16 family, SE 2 and 3
    report = report_from_lockdown({"ProductType": "iPhone99,1"}, paired=False)
    assert report.marketing_name.availability is Availability.UNKNOWN
    assert "not in hwd's table" in report.marketing_name.detail


_plist = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
_KEYS = st.sampled_from(
    [
        "ProductType", "UniqueDeviceID", "SerialNumber", "InternationalMobileEquipmentIdentity",
        "MobileEquipmentIdentifier", "DeviceColor", "DeviceEnclosureColor", "CarrierBundleInfoArray",
        "ActivationState", "TotalDiskCapacity", "TotalDataCapacity", "TotalDataAvailable", "IsAssociated",
        "BatteryCurrentCapacity", "DesignCapacity", "AppleRawMaxCapacity", "NominalChargeCapacity", "Temperature",
    ]
)  # fmt: skip
_answer = st.none() | _plist | st.dictionaries(_KEYS, _plist, max_size=8)


@settings(max_examples=300, deadline=None)
@given(_answer, st.booleans(), _answer, _answer, _answer, _answer, _answer)
def test_arbitrary_answers_never_raise(
    root: Any, paired: bool, battery: Any, disk: Any, fmip: Any, chaperone: Any, ioreg: Any
) -> None:
    report = report_from_lockdown(
        root, paired=paired, battery=battery, disk=disk, fmip=fmip, chaperone=chaperone, ioreg_battery=ioreg
    )
    for name, field in report.fields().items():
        assert field.available == (field.value is not None), name
        assert field.value is None or isinstance(field.value, str | int | float | bool)
    locked, why = lock_state(report)
    assert locked or why == "activated, Find My off, not supervised"
