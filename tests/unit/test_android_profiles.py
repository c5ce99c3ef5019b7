"""The simulated Android phones: profiles load, follow real phones' formats, and the shell answers like one."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwd.drivers.android.parse_imei import ParcelReply, parse_parcel_string
from hwd.model.phones import REPORT_FIELDS, luhn_valid
from simulators.android.profiles import AndroidProfile, load_profiles

PROFILES = load_profiles()
NAMES = sorted(PROFILES)
_FINGERPRINT = re.compile(r"[^/]+/[^/]+/[^/:]+:(?P<release>[^/]+)/(?P<id>[^/]+)/[^/:]+:user/(release|test)-keys")


@pytest.fixture(params=NAMES)
def profile(request: pytest.FixtureRequest) -> AndroidProfile:
    return load_profiles()[request.param]  # a fresh one: the shell keeps screen state


def test_the_required_phones_and_variants_are_there() -> None:
    versions = {p.os_version for p in PROFILES.values()}
    assert {"9", "10", "11", "12", "13", "14"} <= versions
    assert {"pixel-7", "pixel-4a", "galaxy-s21", "galaxy-a52", "redmi-note-10", "moto-g", "galaxy-s9"} <= set(NAMES)
    assert any(p.expected.get("frp_likely") is True and p.expected.get("screen_lock_set") for p in PROFILES.values())
    assert any(p.expected.get("rooted") is True for p in PROFILES.values())
    assert any(len(p.phone.imeis) == 2 for p in PROFILES.values())


def test_identity_follows_the_properties(profile: AndroidProfile) -> None:
    props = profile.phone.props
    assert profile.model == props["ro.product.model"] == profile.banner_props["ro.product.model"]
    assert profile.serial == props["ro.serialno"] == props["ro.boot.serialno"]
    assert profile.os_version == props["ro.build.version.release"]
    fingerprint = _FINGERPRINT.fullmatch(props["ro.build.fingerprint"])
    assert fingerprint, props["ro.build.fingerprint"]
    assert fingerprint["release"] == profile.os_version
    assert fingerprint["id"] == props["ro.build.id"]
    assert re.fullmatch(r"20\d\d-\d\d-\d\d", props["ro.build.version.security_patch"])
    assert profile.description


def test_getprop_prints_sorted_bracketed_lines(profile: AndroidProfile) -> None:
    lines = profile.run("getprop").stdout.decode().splitlines()
    assert len(lines) == len(profile.phone.props) > 40
    assert all(re.fullmatch(r"\[[a-z0-9_.\-]+\]: \[.*\]", line) for line in lines)
    keys = [line[1 : line.index("]")] for line in lines]
    assert keys == sorted(keys)
    assert profile.run("getprop ro.product.model").stdout.decode() == profile.model + "\n"
    assert profile.run("getprop no.such.prop").stdout == b"\n"


def test_features_follow_the_android_version(profile: AndroidProfile) -> None:
    assert profile.features[:2] == ["shell_v2", "cmd"]
    assert ("abb" in profile.features) == (profile.sdk >= 29)
    assert ("sendrecv_v2" in profile.features) == (profile.sdk >= 31)


def test_dumpsys_battery_has_the_aosp_layout(profile: AndroidProfile) -> None:
    text = profile.run("dumpsys battery").stdout.decode()
    lines = text.splitlines()
    assert lines[0] == "Current Battery Service state:"
    keys = [line.split(":")[0].strip() for line in lines[1:16]]
    assert keys[:3] == ["AC powered", "USB powered", "Wireless powered"]
    assert {"level", "scale", "voltage", "temperature", "health", "status", "technology"} <= set(keys)
    assert ("Dock powered" in keys) == (profile.sdk >= 33)


def test_df_prints_the_toybox_header_and_data(profile: AndroidProfile) -> None:
    lines = profile.run("df -k /data").stdout.decode().splitlines()
    assert lines[0].split() == ["Filesystem", "1K-blocks", "Used", "Available", "Use%", "Mounted", "on"]
    assert lines[-1].split()[-1] == "/data"


def test_imeis_are_valid(profile: AndroidProfile) -> None:
    assert profile.phone.imeis
    assert all(len(n) == 15 and luhn_valid(n) for n in profile.phone.imeis)


def test_service_call_answers_as_that_android_version_does(profile: AndroidProfile) -> None:
    reply = parse_parcel_string(profile.run("service call iphonesubinfo 1 s16 com.android.shell").stdout.decode())
    if profile.sdk >= 29:  # Android 10 keeps device identifiers from the shell user
        message = "getDeviceId: The user 2000 does not meet the requirements to access device identifiers."
        assert reply == ParcelReply(-1, message)
    else:
        assert reply == ParcelReply(0, profile.phone.imeis[0])


def test_expected_facts_name_report_fields(profile: AndroidProfile) -> None:
    assert set(profile.expected) - {"imei_strategy"} <= set(REPORT_FIELDS)
    assert profile.expected["imei_strategy"] in ("service_call", "dialer", "none")


def test_the_dialer_shows_the_imeis_only_when_not_locked() -> None:
    phone = load_profiles()["galaxy-a52"]
    dial = "am start -a android.intent.action.DIAL -d 'tel:*%2306%23' >/dev/null 2>&1; uiautomator dump /dev/tty"
    dump = phone.run(dial).stdout.decode()
    assert all(imei in dump for imei in phone.phone.imeis)
    assert "IMEI" not in phone.run("input keyevent KEYCODE_HOME; uiautomator dump /dev/tty").stdout.decode()
    locked = load_profiles()["galaxy-s21-frp"]
    assert "keyguard" in locked.run(dial).stdout.decode()


def test_unknown_commands_answer_like_mksh() -> None:
    result = load_profiles()["pixel-7"].run("frobnicate --now")
    assert result.stderr == b"/system/bin/sh: frobnicate: inaccessible or not found\n"
    assert result.exit_code == 127


def test_sequences_redirections_and_exit_codes() -> None:
    phone = load_profiles()["pixel-4a"]
    assert phone.run("false && echo no; echo rc=$?").stdout == b"rc=1\n"
    assert phone.run("false || echo yes").stdout == b"yes\n"
    assert phone.run("nope 2>&1").stdout == b"/system/bin/sh: nope: inaccessible or not found\n"
    assert phone.run("nope 2>/dev/null; echo $?").stdout == b"127\n"
    result = phone.run("echo a; exit 3; echo b")
    assert (result.stdout, result.exit_code) == (b"a\n", 3)
    result = phone.run("cat /sys/class/power_supply/battery/cycle_count /nope")
    assert (result.stdout, result.stderr, result.exit_code) == (
        b"389\n",
        b"cat: /nope: No such file or directory\n",
        1,
    )
    assert phone.run("echo 'unbalanced").exit_code == 2
    assert phone.run("getprop | head").exit_code == 2


def test_su_is_found_only_on_the_rooted_phone() -> None:
    phones = load_profiles()
    assert phones["pixel-4a-rooted"].run("which su").stdout == b"/system/bin/su\n"
    result = phones["pixel-4a"].run("which su")
    assert (result.stdout, result.exit_code) == (b"", 1)


_WORDS = st.sampled_from(
    [
        "getprop",
        "echo",
        "exit",
        "cat",
        "ls",
        "rm",
        "which",
        "service",
        "call",
        "iphonesubinfo",
        "am",
        "start",
        "-d",
        "uiautomator",
        "dump",
        "input",
        "keyevent",
        "dumpsys",
        "battery",
        "2>&1",
        ">/dev/null",
        ";",
        "&&",
        "||",
        "|",
        "'",
        '"',
        "$?",
        "4",
        "i32",
        "\u00b2",
        "\u0663",
        "\ud800",
        "\udcff",
        "-a",
        "tel:*%2306%23",
        "/dev/tty",
        "\x00",
    ]
)


@given(
    line=st.one_of(st.text(max_size=200), st.lists(st.one_of(_WORDS, st.text(max_size=5)), max_size=12).map(" ".join))
)
@settings(max_examples=300, deadline=None)
def test_the_shell_answers_any_line_without_raising(line: str) -> None:
    result = PROFILES["galaxy-a52"].run(line)
    assert 0 <= result.exit_code <= 255
    assert isinstance(result.stdout, bytes)
