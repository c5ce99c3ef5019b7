"""The simulated iPhones: every profile loads and answers like a real iPhone's lockdownd."""

from __future__ import annotations

import re

import pytest

from hwd.drivers.ios.models import marketing_name
from hwd.drivers.ios.parse import UNPAIRED_KEYS
from hwd.model.phones import luhn_valid
from simulators.ios.profiles import UNPAIRED_KEYS as SIM_UNPAIRED_KEYS
from simulators.ios.profiles import IosProfile, ProfileError, build_profile, load_profiles

PROFILES = load_profiles()
NAMES = sorted(PROFILES)
_OLD_UDID = re.compile(r"[0-9a-f]{40}")
_NEW_UDID = re.compile(r"0000(?P<chip>[0-9A-F]{4})-[0-9A-F]{16}")
_DOMAINS = ("com.apple.mobile.battery", "com.apple.disk_usage", "com.apple.fmip", "com.apple.mobile.chaperone")


@pytest.fixture(params=NAMES)
def profile(request: pytest.FixtureRequest) -> IosProfile:
    return PROFILES[request.param]


def test_the_required_phones_and_variants_are_there() -> None:
    models = {p.model for p in PROFILES.values()}
    assert {"iPhone 8", "iPhone X", "iPhone 11", "iPhone 12 mini", "iPhone 13", "iPhone 14 Pro"} <= models
    assert {"iPhone 15", "iPhone SE (2nd generation)"} <= models
    assert {PROFILES["iphone-15-ios17"].os_version[:3], PROFILES["iphone-15-ios18"].os_version[:3]} == {"17.", "18."}
    root = {name: p.values(None, paired=True) for name, p in PROFILES.items()}
    assert any(r["ActivationState"] != "Activated" for r in root.values())
    assert any(p.values("com.apple.fmip", True)["IsAssociated"] is True for p in PROFILES.values())
    assert any(p.values("com.apple.mobile.chaperone", True)["DeviceIsChaperoned"] is True for p in PROFILES.values())
    assert any("MobileEquipmentIdentifier" in r for r in root.values())
    assert any(len(r.get("CarrierBundleInfoArray", [])) == 2 for r in root.values())


def test_listing_fields_follow_the_lockdown_values(profile: IosProfile) -> None:
    root = profile.values(None, paired=True)
    assert (profile.manufacturer, profile.platform) == ("Apple", "ios")
    assert profile.product_type == root["ProductType"]
    assert profile.model == marketing_name(profile.product_type)
    assert profile.os_version == root["ProductVersion"] == root["HumanReadableProductVersionString"]
    assert profile.serial == root["UniqueDeviceID"]
    assert profile.description
    assert "\n" not in profile.description


def test_udid_style_follows_the_chip(profile: IosProfile) -> None:
    root = profile.values(None, paired=True)
    new = _NEW_UDID.fullmatch(profile.serial)
    if root["ChipID"] >= 0x8020:  # A12 and later
        assert new
        assert int(new["chip"], 16) == root["ChipID"]
        assert profile.serial.endswith(f"{root['UniqueChipID']:016X}")
    else:
        assert _OLD_UDID.fullmatch(profile.serial)


def test_unpaired_answers_are_a_smaller_subset_without_identifiers(profile: IosProfile) -> None:
    paired, unpaired = profile.values(None, True), profile.values(None, False)
    assert set(unpaired) < set(paired)
    assert set(unpaired) <= SIM_UNPAIRED_KEYS
    assert {"ProductType", "ProductVersion", "BuildVersion", "UniqueDeviceID", "DevicePublicKey"} <= set(unpaired)
    for secret in ("SerialNumber", "InternationalMobileEquipmentIdentity", "InternationalMobileEquipmentIdentity2"):
        assert secret not in unpaired
    assert str(paired.get("InternationalMobileEquipmentIdentity")) not in repr(unpaired)
    assert all(profile.values(domain, False) == {} for domain in _DOMAINS)
    assert all(profile.values(domain, True) for domain in _DOMAINS)
    assert profile.values("com.apple.no.such.domain", True) == {}


def test_the_daemon_and_the_simulator_agree_on_what_is_readable_before_trust() -> None:
    assert UNPAIRED_KEYS == SIM_UNPAIRED_KEYS


def test_identifiers_are_valid(profile: IosProfile) -> None:
    root = profile.values(None, True)
    imeis = [
        root[k] for k in ("InternationalMobileEquipmentIdentity", "InternationalMobileEquipmentIdentity2") if k in root
    ]
    assert imeis
    assert all(isinstance(i, str) and len(i) == 15 and i.startswith("35") and luhn_valid(i) for i in imeis)
    assert ("InternationalMobileEquipmentIdentity2" in root) == (root["ChipID"] >= 0x8020)  # eSIM from the XS on
    if "MobileEquipmentIdentifier" in root:  # Apple's CDMA phones: the IMEI without its check digit
        assert root["MobileEquipmentIdentifier"] == imeis[0][:14]
    assert re.fullmatch(r"[A-Z0-9]{10}|[A-Z0-9]{12}", root["SerialNumber"])
    assert re.fullmatch(r"M[A-Z0-9]{3}\d", root["ModelNumber"])
    assert re.fullmatch(r"[A-Z]{1,2}/A", root["RegionInfo"])
    for bundle in root.get("CarrierBundleInfoArray", []):
        assert luhn_valid(bundle["IntegratedCircuitCardIdentity"])
        assert bundle["InternationalMobileSubscriberIdentity"].startswith(bundle["MCC"] + bundle["MNC"])
    assert root["DevicePublicKey"].startswith(b"-----BEGIN RSA PUBLIC KEY-----\n")


def test_identifiers_are_unique_across_profiles() -> None:
    for key in ("UniqueDeviceID", "SerialNumber", "InternationalMobileEquipmentIdentity", "DevicePublicKey"):
        seen = [p.values(None, True)[key] for p in PROFILES.values()]
        assert len(set(seen)) == len(seen), key


def test_battery_answers_agree_with_each_other(profile: IosProfile) -> None:
    domain = profile.values("com.apple.mobile.battery", True)
    entry = profile.ioregistry("AppleSmartBattery")
    assert entry is not None
    assert profile.ioregistry("NoSuchClass") is None
    assert domain["BatteryCurrentCapacity"] == entry["CurrentCapacity"]
    assert domain["BatteryIsCharging"] == entry["IsCharging"]
    assert 1500 <= entry["DesignCapacity"] <= 5000
    assert 0.6 <= entry["AppleRawMaxCapacity"] / entry["DesignCapacity"] <= 1.05
    assert 2000 <= entry["Temperature"] <= 4000  # hundredths of a degree: 20 to 40 C
    assert 3500 <= entry["Voltage"] <= 4400
    assert entry["BatteryData"]["CycleCount"] == entry["CycleCount"]


def test_disk_usage_is_consistent(profile: IosProfile) -> None:
    disk = profile.values("com.apple.disk_usage", True)
    assert disk["TotalDiskCapacity"] > disk["TotalDataCapacity"] >= disk["TotalDataAvailable"] > 0
    assert disk["TotalDiskCapacity"] in {63_978_983_424, 127_989_493_760, 255_989_469_184}


def test_values_are_copies(profile: IosProfile) -> None:
    profile.values(None, True)["ProductType"] = "changed"
    battery = profile.ioregistry("AppleSmartBattery")
    assert battery is not None
    battery["BatteryData"]["CycleCount"] = -1  # type: ignore[index]
    assert profile.values(None, True)["ProductType"] == profile.product_type
    assert profile.ioregistry("AppleSmartBattery")["BatteryData"]["CycleCount"] >= 0  # type: ignore[index]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"model": "iPhone 13", "description": "x"}, "'root'"),
        ({"model": "iPhone 13", "description": "x", "root": {"ProductType": "iPhone14,5"}}, "ProductVersion"),
        ({"model": "m", "description": "x", "root": {"DevicePublicKey": {"base64": "not base64!"}}}, "malformed"),
        ({"model": "m", "description": "x", "root": {"T": 1.5}}, "float"),
    ],
)
def test_malformed_profiles_are_named(data: dict[str, object], message: str) -> None:
    with pytest.raises(ProfileError, match="profile broken") as info:
        build_profile("broken", data)
    assert message in str(info.value)
