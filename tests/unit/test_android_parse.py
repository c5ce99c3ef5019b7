"""The Android parsers on real-looking samples, on garbage, and on arbitrary input (hypothesis)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwd.drivers.android import parse, parse_imei
from hwd.drivers.android.parse import Battery, DiskUsage, ParseError
from hwd.drivers.android.parse_imei import ParcelReply, ScreenDump
from hwd.drivers.android.read import FIRST_BATCH, MARK, batch_command, read_report
from hwd.errors import PhoneError
from hwd.model.phones import Availability, PhoneReport, luhn_valid

GETPROP = """[dalvik.vm.heapsize]: [512m]
[gsm.sim.state]: [LOADED,ABSENT]
[ro.build.fingerprint]: [google/sunfish/sunfish:13/TQ3A.230805.001/10316531:user/release-keys]
[ro.product.model]: [Pixel 4a]
[ro.serialno]: [0A051JEC203412]
[ro.empty]: []
"""

BATTERY_ANDROID_9_SAMSUNG = """Current Battery Service state:
  AC powered: false
  USB powered: true
  Wireless powered: false
  Max charging current: 500000
  Max charging voltage: 5000000
  Charge counter: 1001000
  status: 3
  health: 7
  present: true
  level: 17
  scale: 50
  voltage: 3601
  temperature: -52
  technology: Li-ion
  LED Charging: true
  current now: 615
  charge counter: 1001000
"""

# service call iphonesubinfo 1 on Android 9: IMEI 490154203237518 (the GSMA's example IMEI).
PARCEL_IMEI = """Result: Parcel(
  0x00000000: 00000000 0000000f 00390034 00310030 '........4.9.0.1.'
  0x00000010: 00340035 00300032 00320033 00370033 '5.4.2.0.3.2.3.7.'
  0x00000020: 00310035 00000038                   '5.1.8...        ')
"""
# The same call on Android 12: a SecurityException (-1) with its message ("Requires ...").
PARCEL_REFUSED = """Result: Parcel(
  0x00000000: ffffffff 00000025 00650052 00750071 '....%...R.e.q.u.'
  0x00000010: 00720069 00730065 00520020 00410045 'i.r.e.s. .R.E.A.'
  0x00000020: 005f0044 00520050 00560049 004c0049 'D._.P.R.I.V.I.L.'
  0x00000030: 00470045 00440045 0050005f 004f0048 'E.G.E.D._.P.H.O.'
  0x00000040: 0045004e 0053005f 00410054 00450054 'N.E._.S.T.A.T.E.'
  0x00000050: 00000000                            '....            ')
"""

SAMSUNG_DIALOG = (
    "<?xml version='1.0' encoding='UTF-8' standalone='yes' ?><hierarchy rotation=\"0\">"
    '<node index="0" text="" class="android.widget.FrameLayout" package="com.samsung.android.dialer">'
    '<node index="0" text="IMEI" resource-id="android:id/alertTitle" package="com.samsung.android.dialer" />'
    '<node index="1" text="IMEI (Slot1)&#10;490154203237518/01&#10;IMEI (Slot2)&#10;35 209900 176148 1"'
    ' resource-id="android:id/message" package="com.samsung.android.dialer" />'
    '<node index="2" text="MEID 99001234567890 SV 3520990017614823" package="com.samsung.android.dialer" />'
    "</node></hierarchy>UI hierchary dumped to: /data/local/tmp/hwd-window.xml\n"
)

ACCOUNTS_NONE = """User UserInfo{0:Owner:c13}:
  Accounts: 0

  RegisteredServicesCache: 1 services
    ServiceInfo: AuthenticatorDescription {type=com.google}, ComponentInfo{com.google.android.gms/x}, uid 10145
"""
ACCOUNTS_TWO_USERS = """User UserInfo{0:Owner:c13}:
  Accounts: 1
    Account {name=sam@example.org, type=com.microsoft.workaccount}
User UserInfo{10:Work profile:1030}:
  Accounts: 1
    Account {name=sam@gmail.com, type=com.google}
"""


def test_getprop_lines_become_properties() -> None:
    props = parse.parse_getprop(GETPROP)
    assert isinstance(props, dict)
    assert props["ro.product.model"] == "Pixel 4a"
    assert props["gsm.sim.state"] == "LOADED,ABSENT"
    assert props["ro.empty"] == ""
    assert len(props) == 6


def test_getprop_values_lose_control_characters() -> None:
    props = parse.parse_getprop("[ro.product.model]: [Pixel\x1b[2J 7]\n")
    assert props == {"ro.product.model": "Pixel[2J 7"}


@pytest.mark.parametrize("text", ["", "getprop: not found\n", "\x00\xff\xfe", "[a b]: [c]\n"])
def test_getprop_without_properties_is_an_error(text: str) -> None:
    assert isinstance(parse.parse_getprop(text), ParseError)


def test_battery_of_an_android_9_samsung_with_vendor_lines() -> None:
    battery = parse.parse_battery(BATTERY_ANDROID_9_SAMSUNG)
    assert battery == Battery(
        level_percent=34, status=3, health=7, temperature_c=-5.2, voltage_mv=3601, cycle_count=None
    )
    assert parse.HEALTH_NAMES[7] == "COLD"


def test_battery_cycle_count_line_is_read_where_a_build_prints_it() -> None:
    battery = parse.parse_battery("Current Battery Service state:\n  level: 5\n  scale: 100\n  Cycle count: 412\n")
    assert isinstance(battery, Battery)
    assert battery.cycle_count == 412
    assert battery.health is None


@pytest.mark.parametrize(
    "text",
    ["", "Can't find service: battery\n", "level: 50\n", "\x89PNG\r\n"],
)
def test_battery_output_of_something_else_is_an_error(text: str) -> None:
    assert isinstance(parse.parse_battery(text), ParseError)


def test_battery_with_impossible_numbers_leaves_them_out() -> None:
    battery = parse.parse_battery("Current Battery Service state:\n  level: 180\n  scale: 100\n  temperature: 99999\n")
    assert battery == Battery()


def test_df_of_data() -> None:
    text = (
        "Filesystem       1K-blocks     Used Available Use% Mounted on\n"
        "/dev/block/dm-46 113265540 20870344  92264124  19% /data\n"
    )
    assert parse.parse_df(text) == DiskUsage(113265540 * 1024, 92264124 * 1024)


def test_df_with_the_numbers_wrapped_onto_the_next_line() -> None:
    text = (
        "Filesystem           1K-blocks      Used Available Use% Mounted on\n"
        "/dev/block/bootdevice/by-name/userdata\n"
        "                       25671908   9051704  16620204  36% /data\n"
    )
    assert parse.parse_df(text) == DiskUsage(25671908 * 1024, 16620204 * 1024)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "df: /data: Permission denied\n",
        "Filesystem 1K-blocks Used Available Use% Mounted on\n/dev/root 100 50 60 50% /\n",
        "Filesystem 1K-blocks Used Available Use% Mounted on\n/dev/x 100 50 900 50% /data\n",
        "Filesystem 1K-blocks Used Available Use% Mounted on\n/dev/x 1x0 50 9 50% /data\n",
    ],
)
def test_df_without_a_sane_data_line_is_an_error(text: str) -> None:
    assert isinstance(parse.parse_df(text), ParseError)


def test_accounts_count_only_accounts_not_authenticators() -> None:
    assert parse.parse_accounts(ACCOUNTS_NONE) == []
    assert parse.parse_accounts(ACCOUNTS_TWO_USERS) == ["com.microsoft.workaccount", "com.google"]


@pytest.mark.parametrize(
    "text",
    ["", "Permission Denial: can't dump AccountsManager\n", "  Accounts: 2\n    Account {name=a, type=com.google}\n"],
)
def test_accounts_unreadable_or_inconsistent_is_an_error(text: str) -> None:
    assert isinstance(parse.parse_accounts(text), ParseError)


@pytest.mark.parametrize(
    ("text", "locked"),
    [
        ("User State:\n  User 0\n    Quality: 0\n    CredentialType: None\n", False),
        ("User State:\n  User 0\n    Quality: 131072\n    CredentialType: PIN\n", True),
        ("User State:\n  User 0\n    CredentialType: Pattern\n", True),
        ("User 0\n    SID: 0\n    Quality: 0\n    CredentialType: -1\n", False),
        ("User 0\n    SID: 4a\n    Quality: 65536\n    CredentialType: 1\n", True),
        ("User 0\n    Quality: 262144\n", True),
    ],
)
def test_lock_settings_credential_type_by_version(text: str, locked: bool) -> None:
    assert parse.parse_lock_settings(text) is locked


@pytest.mark.parametrize("text", ["", "Can't find service: lock_settings\n", "CredentialType: ???\n"])
def test_lock_settings_without_a_credential_is_an_error(text: str) -> None:
    assert isinstance(parse.parse_lock_settings(text), ParseError)


def test_which_gives_the_paths_it_printed() -> None:
    assert parse.parse_which("/system/xbin/su\n") == ["/system/xbin/su"]
    assert parse.parse_which("") == []
    assert parse.parse_which("which: su: not found\n") == []


def test_parcel_with_an_imei() -> None:
    assert parse_imei.parse_parcel_string(PARCEL_IMEI) == ParcelReply(0, "490154203237518")


def test_parcel_with_a_security_exception() -> None:
    assert parse_imei.parse_parcel_string(PARCEL_REFUSED) == ParcelReply(-1, "Requires READ_PRIVILEGED_PHONE_STATE")


def test_parcel_with_a_null_string() -> None:
    assert parse_imei.parse_parcel_string("Result: Parcel(00000000 ffffffff   '........')\n") == ParcelReply(0, None)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "service: Service iphonesubinfo does not exist\n",
        "Result: Parcel(00000000 '....')\n",
        "Result: Parcel(00000000 000000ff 00350033 '........')\n",
        "Result: Parcel(00000000 fffffff0 '........')\n",
    ],
)
def test_parcel_that_cannot_hold_a_string_is_an_error(text: str) -> None:
    assert isinstance(parse_imei.parse_parcel_string(text), ParseError)


def test_samsung_imei_dialog_gives_both_imeis_not_the_meid_or_imeisv() -> None:
    dump = parse_imei.parse_ui_dump(SAMSUNG_DIALOG)
    assert isinstance(dump, ScreenDump)
    assert dump.package == "com.samsung.android.dialer"
    assert parse_imei.find_imeis(dump.texts) == ["490154203237518", "352099001761481"]


@pytest.mark.parametrize(
    "text",
    [
        "ERROR: null root node returned by UiTestAutomationBridge.\n",
        "",
        "<hierarchy><node text='x'></hierarchy>",
        '<?xml version="1.0"?><!DOCTYPE h [<!ENTITY a "aaaa">]><hierarchy><node text="&a;"/></hierarchy>',
        "<hierarchy>" + "<node text='1'/>" * 40_000 + "</hierarchy>",
    ],
)
def test_ui_dump_errors_malformed_xml_entities_and_huge_dumps_are_errors(text: str) -> None:
    assert isinstance(parse_imei.parse_ui_dump(text), ParseError)


def test_subinfo_dump_of_old_releases() -> None:
    text = "Phone Subscriber Info:\n  Phone Type = GSM\n  Device ID = 490154203237518\n"
    assert parse_imei.parse_subinfo_dump(text) == ["490154203237518"]
    assert parse_imei.parse_subinfo_dump("") == []


TEXT_PARSERS = [
    parse.parse_getprop,
    parse.parse_battery,
    parse.parse_df,
    parse.parse_accounts,
    parse.parse_lock_settings,
    parse.parse_which,
    parse_imei.parse_parcel_string,
    parse_imei.parse_ui_dump,
    parse_imei.parse_subinfo_dump,
]
# Text that looks enough like each kind of output to get past the first checks.
_FRAGMENTS = st.sampled_from(
    [
        "[ro.x]: [",
        "]\n",
        "Current Battery Service state:\n",
        "  level: ",
        "  scale: ",
        "  temperature: ",
        "Filesystem 1K-blocks Used Available Use% Mounted on\n",
        " /data\n",
        "  Accounts: ",
        "    Account {name=a, type=com.google}\n",
        "CredentialType: ",
        "Quality: ",
        "Result: Parcel(",
        "  0x00000000: ",
        "ffffffff ",
        "0000000f ",
        "00350033 ",
        "'....'",
        "<hierarchy>",
        "<node text='35 209900 176148 1' package='p'>",
        "</node>",
        "</hierarchy>",
        "<!DOCTYPE",
        "Device ID = ",
        "490154203237518",
        "-1",
        "\n",
        "\x00",
        "\ud800",
        "\u00b2",
        "[ro.build.version.sdk]: [",
        "::hwd-section::",
    ]
)
_LOOKALIKE = st.lists(st.one_of(_FRAGMENTS, st.text(max_size=12)), max_size=30).map("".join)


@pytest.mark.parametrize("parser", TEXT_PARSERS, ids=lambda p: p.__name__)
@given(text=st.one_of(st.text(max_size=2000), _LOOKALIKE))
@settings(max_examples=150, deadline=None)
def test_parsers_are_total(parser: object, text: str) -> None:
    result = parser(text)  # type: ignore[operator]
    assert result is not None


class _FuzzSession:
    """Answers every command with the same bytes."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer

    async def shell(self, command: str) -> bytes:
        return self.answer


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # lone surrogates make invalid UTF-8, as a broken phone might


@given(answer=st.one_of(st.binary(max_size=3000), _LOOKALIKE.map(_encode)))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_read_report_on_arbitrary_output_gives_a_report_or_a_phone_error(answer: bytes) -> None:
    outcome = asyncio.run(_outcome(_FuzzSession(answer)))
    assert isinstance(outcome, PhoneReport) or outcome.code == "PHONE_PROTOCOL_ERROR"
    if MARK.encode() not in answer:  # no section came back: not a shell running the commands
        assert isinstance(outcome, PhoneError)


async def _outcome(session: _FuzzSession) -> PhoneReport | PhoneError:
    try:
        return await read_report(session, deadline_s=5)
    except PhoneError as exc:
        return exc


class _SectionFuzzSession:
    """Runs the batch as a phone would (a marker line before each section) with arbitrary sections."""

    def __init__(self, sections: list[str], dialer: bytes) -> None:
        self.sections = sections
        self.dialer = dialer

    async def shell(self, command: str) -> bytes:
        if command != batch_command():
            return self.dialer
        return _encode("".join(f"{MARK}{n}\n{text}\n" for n, text in enumerate(self.sections)))


@given(
    sections=st.lists(_LOOKALIKE, min_size=len(FIRST_BATCH), max_size=len(FIRST_BATCH)),
    dialer=st.one_of(st.binary(max_size=500), _LOOKALIKE.map(_encode)),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_read_report_on_arbitrary_sections_gives_a_report_that_claims_nothing_unread(
    sections: list[str], dialer: bytes
) -> None:
    report = asyncio.run(read_report(_SectionFuzzSession(sections, dialer), deadline_s=5))
    for name, field in report.fields().items():
        assert field.availability is not Availability.AVAILABLE or field.value is not None, name
        assert field.source or field.availability is Availability.NOT_SUPPORTED_ON_OS, name
    if report.imei.available:
        assert luhn_valid(str(report.imei.value))
