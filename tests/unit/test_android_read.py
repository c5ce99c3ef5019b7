"""read_report over every simulated phone profile, through an in-memory session that runs the profile's shell."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from hwd.drivers.android.imei import SOURCE_DIALER, SOURCE_SERVICE_CALL
from hwd.drivers.android.read import FIRST_BATCH, read_report
from hwd.errors import PhoneError
from hwd.model.phones import NOT_READ, Availability, Field, Platform
from simulators.android.profiles import AndroidProfile, load_profiles

NAMES = sorted(load_profiles())
_AVAILABILITIES = {a.value for a in Availability}


class ProfileSession:
    """An ADB session in memory: the profile's shell, with stdout and stderr interleaved as shell v1 does."""

    def __init__(self, profile: AndroidProfile) -> None:
        self.profile = profile
        self.commands: list[str] = []

    async def shell(self, command: str) -> bytes:
        self.commands.append(command)
        result = self.profile.run(command)
        return result.stdout + result.stderr


async def read(profile: AndroidProfile) -> tuple[dict[str, Field], ProfileSession]:
    session = ProfileSession(profile)
    report = await read_report(session, deadline_s=5)
    assert report.platform is Platform.ANDROID
    return report.fields(), session


@pytest.mark.parametrize("name", NAMES)
async def test_report_matches_the_phone(name: str) -> None:
    profile = load_profiles()[name]
    fields, _ = await read(profile)
    facts = {
        "manufacturer": profile.manufacturer,
        "model": profile.model,
        "serial": profile.serial,
        "os_version": profile.os_version,
        "sdk_level": profile.sdk,
        "build_fingerprint": profile.phone.props["ro.build.fingerprint"],
        **{k: v for k, v in profile.expected.items() if k != "imei_strategy"},
    }
    for key, want in facts.items():
        field = fields[key]
        if isinstance(want, str) and want in _AVAILABILITIES:
            assert field.availability.value == want, (key, field)
            assert field.detail, (key, field)
        else:
            assert (field.availability, field.value) == (Availability.AVAILABLE, want), (key, field)


@pytest.mark.parametrize("name", NAMES)
async def test_every_field_is_read_or_says_why_not(name: str) -> None:
    fields, _ = await read(load_profiles()[name])
    for key, field in fields.items():
        assert field is not NOT_READ, key
        assert field.source or field.availability is Availability.NOT_SUPPORTED_ON_OS, key


@pytest.mark.parametrize("name", NAMES)
async def test_imei_strategy_and_round_trips_follow_the_android_version(name: str) -> None:
    profile = load_profiles()[name]
    fields, session = await read(profile)
    imei = fields["imei"]
    strategy = profile.expected["imei_strategy"]
    if strategy == "service_call":
        assert imei.source == SOURCE_SERVICE_CALL
        assert len(session.commands) == 1  # the first batch had it: the screen is left alone
    else:
        assert len(session.commands) == 2
        if strategy == "dialer":
            assert imei.source == SOURCE_DIALER
            assert "refused" in imei.detail
    if profile.sdk >= 29:
        assert "does not meet the requirements to access device identifiers" in imei.detail


async def test_a_locked_phone_on_android_13_keeps_its_imei_unknown_with_the_reasons() -> None:
    fields, _ = await read(load_profiles()["galaxy-s21-frp"])
    imei = fields["imei"]
    assert imei.availability is Availability.UNKNOWN
    assert imei.value is None
    assert "refused" in imei.detail
    assert "com.android.systemui" in imei.detail


async def test_a_failed_window_dump_keeps_the_imei_unknown_with_uiautomators_error() -> None:
    fields, _ = await read(load_profiles()["moto-g"])
    assert fields["imei"].availability is Availability.UNKNOWN
    assert "null root node" in fields["imei"].detail


def _with_imeis(name: str, *imeis: str) -> AndroidProfile:
    profile = load_profiles()[name]
    return dataclasses.replace(profile, phone=dataclasses.replace(profile.phone, imeis=imeis))


async def test_an_imei_failing_the_luhn_check_is_unknown_not_guessed() -> None:
    fields, _ = await read(_with_imeis("galaxy-s9", "353325100887764"))
    imei = fields["imei"]
    assert imei.availability is Availability.UNKNOWN
    assert "353325100887764" in imei.detail
    assert "Luhn" in imei.detail


async def test_a_bad_second_imei_leaves_the_first() -> None:
    fields, _ = await read(_with_imeis("galaxy-a52", "359299101234560", "359299101234579"))
    assert fields["imei"].value == "359299101234560"
    assert fields["imei2"].availability is Availability.UNKNOWN
    assert "Luhn" in fields["imei2"].detail


async def test_cycle_count_is_not_supported_before_android_14_even_if_the_kernel_has_it() -> None:
    fields, _ = await read(load_profiles()["pixel-4a"])
    assert fields["battery_cycle_count"].availability is Availability.NOT_SUPPORTED_ON_OS


class _Scripted:
    """Answers the first batch from a profile with some sections replaced."""

    def __init__(self, profile: AndroidProfile, replace: dict[str, str]) -> None:
        self.profile = profile
        self.replace = replace

    async def shell(self, command: str) -> bytes:
        for original, text in self.replace.items():
            command = command.replace(f"; {original} 2>&1", f'; echo "{text}" 2>&1')
        result = self.profile.run(command)
        return result.stdout + result.stderr


async def test_refused_sections_become_unknown_with_the_phones_words() -> None:
    profile = load_profiles()["pixel-7"]
    session = _Scripted(
        profile,
        {
            "dumpsys account": "Permission Denial: can't dump AccountManager",
            "dumpsys battery": "Can't find service: battery",
            "df -k /data": "df: /data: Permission denied",
        },
    )
    fields = (await read_report(session, deadline_s=5)).fields()
    assert fields["google_account"].detail == "no 'Accounts: N' line in dumpsys account"
    assert fields["google_account"].availability is Availability.UNKNOWN
    assert fields["frp_likely"].availability is Availability.UNKNOWN  # never "no FRP" when unknown
    assert fields["battery_level_percent"].availability is Availability.UNKNOWN
    assert "Battery Service" in fields["battery_level_percent"].detail
    assert fields["storage_total_bytes"].availability is Availability.UNKNOWN
    assert fields["model"].value == "Pixel 7"


async def test_the_batch_is_one_command_line_with_a_section_per_command() -> None:
    session = ProfileSession(load_profiles()["galaxy-s9"])
    await read_report(session, deadline_s=5)
    assert all(command in session.commands[0] for command in FIRST_BATCH)


class _Silent:
    async def shell(self, command: str) -> bytes:
        await asyncio.Event().wait()
        return b""


class _Broken:
    async def shell(self, command: str) -> bytes:
        raise PhoneError("the connection to the phone broke", code="PHONE_DISCONNECTED")


async def test_a_phone_that_does_not_answer_in_time_is_too_slow() -> None:
    with pytest.raises(PhoneError) as caught:
        await read_report(_Silent(), deadline_s=0.05)
    assert caught.value.code == "PHONE_TOO_SLOW"


async def test_transport_failures_keep_their_code() -> None:
    with pytest.raises(PhoneError) as caught:
        await read_report(_Broken(), deadline_s=5)
    assert caught.value.code == "PHONE_DISCONNECTED"
