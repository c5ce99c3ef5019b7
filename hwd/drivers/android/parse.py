"""Pure, total parsers of what an Android phone's shell prints: getprop, dumpsys battery,
df, dumpsys account and dumpsys lock_settings.

Phone output is hostile input: every parser takes any text and returns a value or a
:class:`ParseError` saying why it could not; none raises. The IMEI parsers are in
:mod:`hwd.drivers.android.parse_imei`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Longest property value kept (real ones are far shorter; fingerprints run to about 100).
MAX_VALUE_CHARS = 256
_PROP_LINE = re.compile(r"\[([^\[\]\s]{1,128})\]: \[(.*)\]")
_ACCOUNT_LINE = re.compile(r"^\s*Account \{name=.*, type=([^,{}\s]{1,128})\}\s*$")
_ACCOUNTS_COUNT = re.compile(r"^\s*Accounts: (\d{1,6})\s*$")
_INT = re.compile(r"-?\d{1,12}")


@dataclass(frozen=True)
class ParseError:
    """Why a phone's output could not be parsed."""

    reason: str


@dataclass(frozen=True)
class Battery:
    """What ``dumpsys battery`` says; None where it said nothing readable.

    :ivar level_percent: charge, scaled to 0..100 by the reported scale.
    :ivar status: BatteryManager status code (2 charging, 3 discharging, 4 not charging, 5 full).
    :ivar health: BatteryManager health code (2 good, 3 overheat, 4 dead ...).
    :ivar temperature_c: degrees Celsius (dumpsys prints tenths).
    :ivar voltage_mv: millivolts.
    :ivar cycle_count: charge cycles, on builds that print them.
    """

    level_percent: int | None = None
    status: int | None = None
    health: int | None = None
    temperature_c: float | None = None
    voltage_mv: int | None = None
    cycle_count: int | None = None


@dataclass(frozen=True)
class DiskUsage:
    """One filesystem's size and free space, in bytes."""

    total_bytes: int
    free_bytes: int


#: BatteryManager.BATTERY_HEALTH_* codes.
HEALTH_NAMES = {
    1: "UNKNOWN",
    2: "GOOD",
    3: "OVERHEAT",
    4: "DEAD",
    5: "OVER_VOLTAGE",
    6: "UNSPECIFIED_FAILURE",
    7: "COLD",
}
#: BatteryManager.BATTERY_STATUS_CHARGING.
STATUS_CHARGING = 2


def clean(value: str) -> str:
    """A phone-supplied string made safe to show: printable characters only, length capped."""
    return "".join(ch for ch in value[:MAX_VALUE_CHARS] if ch.isprintable()).strip()


def parse_getprop(text: str) -> dict[str, str] | ParseError:
    """Parses ``getprop`` output (``[key]: [value]`` lines, sorted by key).

    :returns: properties by key (values cleaned), or an error when no line is a property.
    """
    props: dict[str, str] = {}
    for line in text.splitlines():
        match = _PROP_LINE.fullmatch(line.strip())
        if match:
            props.setdefault(match.group(1), clean(match.group(2)))
    return props if props else ParseError("no [key]: [value] lines in the getprop output")


def _int(value: str | None) -> int | None:
    if value is None or not _INT.fullmatch(value.strip()):
        return None
    return int(value.strip())


def parse_battery(text: str) -> Battery | ParseError:
    """Parses ``dumpsys battery`` (AOSP's ``key: value`` lines; vendors add lines, which are ignored).

    :returns: the battery facts, or an error when the output is not the battery service's.
    """
    if "Battery Service state" not in text:
        return ParseError("no 'Current Battery Service state' section in dumpsys battery")
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(": ")
        if sep and key not in values:
            values[key] = value
    level, scale = _int(values.get("level")), _int(values.get("scale"))
    temperature = _int(values.get("temperature"))
    percent = None
    if level is not None and scale is not None and scale > 0 and 0 <= level <= scale:
        percent = round(level * 100 / scale)
    return Battery(
        level_percent=percent,
        status=_int(values.get("status")),
        health=_int(values.get("health")),
        temperature_c=temperature / 10 if temperature is not None and abs(temperature) < 2000 else None,
        voltage_mv=_int(values.get("voltage")),
        cycle_count=_int(values.get("Cycle count", values.get("cycle count"))),
    )


def parse_df(text: str, mount: str = "/data") -> DiskUsage | ParseError:
    """Parses toybox ``df -k PATH`` output and picks the filesystem mounted at ``mount``.

    A long filesystem name may push the numbers onto the next line (busybox does); both
    layouts are read.

    :returns: size and free space of that filesystem, or an error.
    """
    lines = text.splitlines()
    if not any("1K-blocks" in line for line in lines):
        return ParseError("no '1K-blocks' header in the df output (not df -k?)")
    for i, line in enumerate(lines):
        words = line.split()
        if not words or words[-1] != mount:
            continue
        if len(words) < 6 and i > 0:
            words = lines[i - 1].split() + words
        if len(words) != 6:
            return ParseError(f"df line for {mount} has {len(words)} columns, not 6")
        total, free = _int(words[1]), _int(words[3])
        if total is None or free is None or total < 0 or free < 0 or free > total:
            return ParseError(f"df line for {mount} has no sizes a filesystem could have")
        return DiskUsage(total * 1024, free * 1024)
    return ParseError(f"no filesystem mounted at {mount} in the df output")


def parse_accounts(text: str) -> list[str] | ParseError:
    """Parses ``dumpsys account``: the type of every account of every user (names are dropped).

    Only ``Account {name=..., type=...}`` lines count: the authenticator list further down
    names types (``AuthenticatorDescription {type=com.google}``) that no account may have.

    :returns: account types, one per account, e.g. ``["com.google", "com.osp.app.signin"]``.
    """
    counts, types = [], []
    for line in text.splitlines():
        count = _ACCOUNTS_COUNT.match(line)
        if count:
            counts.append(int(count.group(1)))
        account = _ACCOUNT_LINE.match(line)
        if account:
            types.append(account.group(1))
    if not counts:
        return ParseError("no 'Accounts: N' line in dumpsys account")
    if sum(counts) != len(types):
        return ParseError(f"dumpsys account counts {sum(counts)} accounts but lists {len(types)}")
    return types


def parse_lock_settings(text: str) -> bool | ParseError:
    """Parses ``dumpsys lock_settings``: whether the owner (user 0) has a secure screen lock.

    Android 12 and later print ``CredentialType: None|Pattern|PIN|Password``; Android 9 to 11
    print the type as a number (-1 for none). ``Quality: N`` (0 for none) is the fallback.

    :returns: True when a PIN, pattern or password is set.
    """
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(": ")
        if sep and key in ("CredentialType", "Quality") and key not in values:
            values[key] = value.strip()
    credential = values.get("CredentialType")
    if credential is not None:
        number = _int(credential)
        if number is not None:
            return number != -1
        if credential.isalpha() and len(credential) < 32:
            return credential.lower() != "none"
    quality = _int(values.get("Quality"))
    if quality is not None:
        return quality != 0
    return ParseError("no CredentialType or Quality line in dumpsys lock_settings")


def parse_which(text: str) -> list[str]:
    """Parses ``which NAME``: the absolute paths it printed (none when the command is absent)."""
    return [clean(line) for line in text.splitlines() if line.startswith("/") and len(line) < 512]
