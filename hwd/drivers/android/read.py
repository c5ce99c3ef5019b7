"""Reads a :class:`~hwd.model.phones.PhoneReport` from an Android phone through its ADB shell.

A function from a session to a report, with no daemon state (it can run in a worker process).
Two round trips at most: one compound command with a marker line before each section, and,
on Android 10 and later where the shell may not read identifiers, the ``*#06#`` screen.
Every field names its source and says why it is missing when it is.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

from hwd.drivers.android import imei
from hwd.drivers.android.catalog import MARKETING_PROPS, MODEL_IS_MARKETING_NAME, marketing_name
from hwd.drivers.android.parse import (
    HEALTH_NAMES,
    STATUS_CHARGING,
    Battery,
    ParseError,
    parse_accounts,
    parse_battery,
    parse_df,
    parse_getprop,
    parse_lock_settings,
    parse_which,
)
from hwd.errors import PhoneError
from hwd.model.phones import Field, PhoneReport, Platform

MARK = "::hwd-section::"
CYCLE_COUNT_PATH = "/sys/class/power_supply/battery/cycle_count"
#: The first round trip: every section's command (2>&1 keeps errors inside their section).
FIRST_BATCH: tuple[str, ...] = (
    "getprop",
    "dumpsys battery",
    f"cat {CYCLE_COUNT_PATH}",
    "df -k /data",
    "dumpsys account",
    "dumpsys lock_settings",
    "which su",
    imei.IMEI1_CALL,
    imei.IMEI2_CALL,
    imei.SUBINFO,
)
#: Android 14 (API 34) is the first release with a battery cycle count (BatteryManager.EXTRA_CYCLE_COUNT).
CYCLE_COUNT_SDK = 34
_DUAL_SIM_CONFIGS = ("dsds", "dsda", "tsts")
_IOS_ONLY = ("udid", "meid", "model_number", "region", "colour", "activation_state", "find_my_associated", "supervised")


class AdbSession(Protocol):
    """An open ADB connection to one phone."""

    async def shell(self, command: str) -> bytes:
        """Runs a shell command line; returns its output (stdout and stderr as the phone interleaves them).

        :raises hwd.errors.PhoneError: transport failure, output over the size cap, or a deadline.
        """
        ...


def batch_command(commands: tuple[str, ...] = FIRST_BATCH) -> str:
    """One command line that runs ``commands`` in order, each after its marker line."""
    return "; ".join(f"echo {MARK}{n}; {command} 2>&1" for n, command in enumerate(commands))


def split_sections(output: str, commands: tuple[str, ...] = FIRST_BATCH) -> dict[str, str] | None:
    """Splits a batch's output by its marker lines.

    :returns: each command's output by command (sections that never appeared are absent), or None
        when no marker came back at all (the peer is not running the commands).
    """
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith(MARK):
            index = line[len(MARK) :].strip()
            current = None
            if index.isascii() and index.isdigit() and int(index) < len(commands):
                current = sections.setdefault(commands[int(index)], [])
        elif current is not None:
            current.append(line)
    return {cmd: "\n".join(lines) + "\n" for cmd, lines in sections.items()} if sections else None


async def read_report(session: AdbSession, *, deadline_s: float) -> PhoneReport:
    """Reads everything the kiosk reports about an Android phone.

    :param session: an open, authorised session.
    :param deadline_s: the whole read must finish within this many seconds.
    :returns: the report; fields that could not be read are UNKNOWN with the reason.
    :raises hwd.errors.PhoneError: the transport failed (its code), the deadline passed
        (``PHONE_TOO_SLOW``) or the peer did not run the commands (``PHONE_PROTOCOL_ERROR``).
    """
    try:
        async with asyncio.timeout(deadline_s):
            return await _read(session)
    except TimeoutError as exc:
        raise PhoneError(f"the phone did not answer within {deadline_s:g} s", code="PHONE_TOO_SLOW") from exc


async def _read(session: AdbSession) -> PhoneReport:
    output = _text(await session.shell(batch_command()))
    sections = split_sections(output)
    if sections is None:
        raise PhoneError("the phone's shell did not run the kiosk's commands", code="PHONE_PROTOCOL_ERROR")

    async def more(command: str) -> str:
        return _text(await session.shell(command))

    props = parse_getprop(sections.get("getprop", ""))
    props_or_error = props if isinstance(props, ParseError) else None
    props = {} if isinstance(props, ParseError) else props
    sdk = props.get("ro.build.version.sdk", "")
    sdk_level = int(sdk) if sdk.isascii() and sdk.isdigit() and len(sdk) < 4 else 0
    multisim = props.get("persist.radio.multisim.config", "")
    dual = multisim in _DUAL_SIM_CONFIGS or props.get("telephony.active_modems.max_count", "1") in ("2", "3")
    imei1, imei2 = await imei.read_imeis(lambda c: sections.get(c, ""), more, dual)
    fields: dict[str, Any] = {  # Any: dataclasses.replace takes every report field by keyword
        **identity_fields(props, props_or_error),
        **os_fields(props, sdk_level),
        **storage_fields(sections.get("df -k /data")),
        **battery_fields(sections, sdk_level),
        **lock_fields(sections, props),
        **network_fields(props),
        "imei": imei1,
        "imei2": imei2,
        **{name: Field.unsupported("", "not an Android property") for name in _IOS_ONLY},
        "battery_health_percent": Field.unsupported("adb:dumpsys battery", "Android does not report battery capacity"),
    }
    return dataclasses.replace(PhoneReport(Platform.ANDROID), **fields)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _prop(props: dict[str, str], *keys: str, why: str = "the phone does not set it") -> Field:
    """The first of ``keys`` that the phone sets, as a field with its getprop source."""
    for key in keys:
        if props.get(key):
            return Field.of(props[key], f"adb:getprop {key}")
    return Field.unknown(f"adb:getprop {keys[0]}", why)


def identity_fields(props: dict[str, str], error: ParseError | None) -> dict[str, Field]:
    """Maker, brand, model, marketing name, device code and serial from the properties."""
    why = error.reason if error else "the phone does not set it"
    model = _prop(props, "ro.product.model", "ro.product.vendor.model", why=why)
    return {
        "manufacturer": _prop(props, "ro.product.manufacturer", "ro.product.vendor.manufacturer", why=why),
        "brand": _prop(props, "ro.product.brand", "ro.product.vendor.brand", why=why),
        "model": model,
        "marketing_name": _marketing_name(props, model),
        "device_code": _prop(props, "ro.product.device", "ro.product.vendor.device", why=why),
        "serial": _prop(props, "ro.serialno", "ro.boot.serialno", why=why),
    }


def _marketing_name(props: dict[str, str], model: Field) -> Field:
    for key in MARKETING_PROPS:
        if props.get(key):
            return Field.of(props[key], f"adb:getprop {key}")
    if not model.available:
        return Field.unknown(model.source, "the model is unknown")
    name = marketing_name(str(model.value))
    if name:
        return Field.of(name, model.source, "from the model code, by hwd's table of model codes")
    if props.get("ro.product.manufacturer", "").lower() in MODEL_IS_MARKETING_NAME:
        return Field.of(str(model.value), model.source, "this maker's model name is its marketing name")
    return Field.unknown(model.source, f"model code {model.value} is not in hwd's table")


def os_fields(props: dict[str, str], sdk_level: int) -> dict[str, Field]:
    """Android version, API level, security patch, build id and fingerprint."""
    sdk = Field.of(sdk_level, "adb:getprop ro.build.version.sdk") if sdk_level else _prop(props, "ro.build.version.sdk")
    if not sdk.available and props.get("ro.build.version.sdk"):
        sdk = Field.unknown("adb:getprop ro.build.version.sdk", "not a number")
    return {
        "os_version": _prop(props, "ro.build.version.release", "ro.build.version.release_or_codename"),
        "sdk_level": sdk,
        "security_patch": _prop(props, "ro.build.version.security_patch"),
        "build_fingerprint": _prop(props, "ro.build.fingerprint", "ro.vendor.build.fingerprint"),
        "build_version": _prop(props, "ro.build.id"),
    }


def storage_fields(text: str | None) -> dict[str, Field]:
    """Size and free space of the user data partition (/data)."""
    source = "adb:df -k /data"
    usage = parse_df(text or "")
    if isinstance(usage, ParseError):
        why = usage.reason if text is not None else "df did not answer"
        return {"storage_total_bytes": Field.unknown(source, why), "storage_free_bytes": Field.unknown(source, why)}
    return {
        "storage_total_bytes": Field.of(usage.total_bytes, source, "size of the /data partition"),
        "storage_free_bytes": Field.of(usage.free_bytes, source, "space available on /data"),
    }


def battery_fields(sections: dict[str, str], sdk_level: int) -> dict[str, Field]:
    """Level, health, temperature, voltage, charging and (Android 14 on) cycle count."""
    source = "adb:dumpsys battery"
    parsed = parse_battery(sections.get("dumpsys battery", ""))
    battery = parsed if isinstance(parsed, Battery) else Battery()
    why = parsed.reason if isinstance(parsed, ParseError) else "dumpsys battery did not print it"
    health = HEALTH_NAMES.get(battery.health) if battery.health is not None else None
    values: dict[str, object] = {
        "battery_level_percent": battery.level_percent,
        "battery_health": health,
        "battery_temperature_c": battery.temperature_c,
        "battery_voltage_mv": battery.voltage_mv,
        "battery_charging": None if battery.status is None else battery.status == STATUS_CHARGING,
    }
    fields = {
        name: Field.of(value, source) if isinstance(value, str | int | float) else Field.unknown(source, why)
        for name, value in values.items()
    }
    fields["battery_cycle_count"] = _cycle_count(battery, sections, sdk_level)
    return fields


def _cycle_count(battery: Battery, sections: dict[str, str], sdk_level: int) -> Field:
    if sdk_level and sdk_level < CYCLE_COUNT_SDK:
        return Field.unsupported("adb:dumpsys battery", "Android reports a cycle count from Android 14")
    if battery.cycle_count is not None and battery.cycle_count >= 0:
        return Field.of(battery.cycle_count, "adb:dumpsys battery")
    source = f"adb:cat {CYCLE_COUNT_PATH}"
    text = sections.get(f"cat {CYCLE_COUNT_PATH}", "").strip()
    if text.isascii() and text.isdigit() and len(text) < 7:
        return Field.of(int(text), source)
    return Field.unknown(source, f"not readable: {text[:80]!r}" if text else "not readable")


def lock_fields(sections: dict[str, str], props: dict[str, str]) -> dict[str, Field]:
    """Google account, FRP, screen lock and root traces."""
    accounts = parse_accounts(sections.get("dumpsys account", ""))
    source = "adb:dumpsys account"
    if isinstance(accounts, ParseError):
        google = Field.unknown(source, accounts.reason)
        frp = Field.unknown(source, "whether a Google account is on the phone is unknown")
    else:
        has_google = "com.google" in accounts
        count = accounts.count("com.google")
        google = Field.of(has_google, source, f"{count} Google account(s), {len(accounts)} account(s) in all")
        frp = Field.of(
            has_google,
            source,
            "a Google account is signed in: a reset would ask for it" if has_google else "no Google account",
        )
    lock = parse_lock_settings(sections.get("dumpsys lock_settings", ""))
    lock_source = "adb:dumpsys lock_settings"
    screen_lock = (
        Field.unknown(lock_source, lock.reason) if isinstance(lock, ParseError) else Field.of(lock, lock_source)
    )
    return {
        "google_account": google,
        "frp_likely": frp,
        "screen_lock_set": screen_lock,
        "rooted": _rooted(sections, props),
    }


def _rooted(sections: dict[str, str], props: dict[str, str]) -> Field:
    source = "adb:which su, getprop ro.build.tags ro.boot.verifiedbootstate ro.boot.flash.locked"
    if "which su" not in sections or not props:
        return Field.unknown(source, "the su lookup or the properties did not come back")
    traces = [f"su at {path}" for path in parse_which(sections["which su"])[:3]]
    if "test-keys" in props.get("ro.build.tags", ""):
        traces.append("build signed with test-keys")
    unlocked: Callable[[str, str], bool] = lambda key, value: props.get(key) == value  # noqa: E731
    if unlocked("ro.boot.verifiedbootstate", "orange") or unlocked("ro.boot.flash.locked", "0"):
        traces.append("bootloader unlocked")
    if unlocked("ro.debuggable", "1") and unlocked("ro.secure", "0"):
        traces.append("insecure debuggable build")
    if traces:
        return Field.of(True, source, "; ".join(traces))
    return Field.of(False, source, "no su, release-keys, bootloader locked")


def network_fields(props: dict[str, str]) -> dict[str, Field]:
    """The SIM's carrier (first slot that has one) and every slot's SIM state."""
    operators = [op.strip() for op in props.get("gsm.sim.operator.alpha", "").split(",") if op.strip()]
    state = props.get("gsm.sim.state", "")
    source = "adb:getprop gsm.sim.operator.alpha"
    carrier = (
        Field.of(operators[0], source) if operators else Field.unknown(source, f"no SIM operator (SIM {state or '?'})")
    )
    return {"carrier": carrier, "sim_state": _prop(props, "gsm.sim.state")}
