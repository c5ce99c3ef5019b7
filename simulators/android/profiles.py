"""Android phone profiles: data files in ``simulators/android/profiles/*.toml``, one phone each.

A profile file holds what that phone prints: ``[props]`` (``getprop``), ``[outputs]`` (answers by
exact command line: ``dumpsys battery``, ``df -k /data`` ...), ``[files]`` (``cat``, and what
``ls`` and ``which`` find), ``[imei]`` (the IMEIs and how that Android version lets the shell
read them) and ``[expected]`` (what a correct reader reports, for tests). ``extends = "NAME"``
starts from another profile and overrides table entries one by one.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from simulators.android.phone import Answer, Dialer, PhoneData
from simulators.android.shell import Shell, ShellResult

_TABLES = ("props", "outputs", "files", "imei", "expected")
# The ADB features adbd advertises in its banner, by the API level that added them.
_FEATURES_BY_SDK: tuple[tuple[int, tuple[str, ...]], ...] = (
    (0, ("shell_v2", "cmd", "stat_v2", "ls_v2", "fixed_push_mkdir")),
    (29, ("apex", "abb", "fixed_push_symlink_timestamp")),
    (30, ("abb_exec", "remount_shell", "track_app")),
    (
        31,
        (
            "sendrecv_v2",
            "sendrecv_v2_brotli",
            "sendrecv_v2_lz4",
            "sendrecv_v2_zstd",
            "sendrecv_v2_dry_run_send",
        ),
    ),
)


class ProfileError(ValueError):
    """A profile file is malformed; the message names the profile and the entry."""


@dataclass
class AndroidProfile:
    """One simulated Android phone.

    :ivar name: the profile's name, e.g. ``"pixel-7"``.
    :ivar banner_props: what adbd puts in its CNXN banner: ``ro.product.name``,
        ``ro.product.model`` and ``ro.product.device``.
    :ivar features: the ADB features that phone's adbd advertises.
    :ivar expected: what a correct reader reports for this phone, by report field name; a value
        that names an availability (``"UNKNOWN"``, ``"NOT_SUPPORTED_ON_OS"``) means that availability.
    """

    name: str
    manufacturer: str
    model: str
    os_version: str
    serial: str
    description: str
    banner_props: dict[str, str]
    features: list[str]
    phone: PhoneData
    expected: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._shell = Shell(self.phone)

    @property
    def sdk(self) -> int:
        """The phone's API level."""
        return self.phone.sdk

    def run(self, command: str) -> ShellResult:
        """Answers one shell command line as this phone would.

        :param command: what follows ``shell:`` in the ADB request.
        :returns: stdout, stderr and exit code.
        """
        return self._shell.run(command)


def load_profiles() -> dict[str, AndroidProfile]:
    """Every Android profile, freshly built (each with its own screen state).

    :returns: profiles by name, sorted by name.
    :raises ProfileError: a profile file is malformed (a packaging defect).
    """
    folder = resources.files("simulators.android").joinpath("profiles")
    raw: dict[str, dict[str, Any]] = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".toml"):
            name = entry.name.removesuffix(".toml")
            try:
                raw[name] = tomllib.loads(entry.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise ProfileError(f"profile {name}: {exc}") from exc
    return {name: build_profile(name, _resolve(name, raw, ())) for name in sorted(raw)}


def _resolve(name: str, raw: dict[str, dict[str, Any]], seen: tuple[str, ...]) -> dict[str, Any]:
    data = raw[name]
    base_name = data.get("extends")
    if base_name is None:
        return data
    if base_name not in raw or base_name in seen:
        raise ProfileError(f"profile {name}: extends {base_name!r}, which is missing or circular")
    base = _resolve(base_name, raw, (*seen, name))
    merged = {**base, **{k: v for k, v in data.items() if k not in _TABLES}}
    for table in _TABLES:
        merged[table] = {**base.get(table, {}), **data.get(table, {})}
    return merged


def build_profile(name: str, data: dict[str, Any]) -> AndroidProfile:
    """Builds a profile from a parsed profile document (``extends`` already resolved).

    :raises ProfileError: a required entry is missing or has the wrong type.
    """
    try:
        phone = _phone(data)
        props = phone.props
        return AndroidProfile(
            name=name,
            manufacturer=props["ro.product.manufacturer"],
            model=props["ro.product.model"],
            os_version=props["ro.build.version.release"],
            serial=props["ro.serialno"],
            description=str(data["description"]),
            banner_props={k: props[k] for k in ("ro.product.name", "ro.product.model", "ro.product.device")},
            features=[f for sdk, names in _FEATURES_BY_SDK if phone.sdk >= sdk for f in names],
            phone=phone,
            expected=dict(data.get("expected", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ProfileError(f"profile {name}: missing or malformed entry {exc}") from exc


def _phone(data: dict[str, Any]) -> PhoneData:
    imei = data.get("imei", {})
    return PhoneData(
        props={str(k): str(v) for k, v in data["props"].items()},
        outputs={k: _answer(v) for k, v in data.get("outputs", {}).items()},
        files={str(k): str(v) for k, v in data.get("files", {}).items()},
        imeis=tuple(str(n) for n in imei.get("numbers", ())),
        imei_service=str(imei.get("service", "denied")),
        dialer=Dialer(
            package=str(imei.get("dialer", Dialer.package)),
            style=str(imei.get("style", Dialer.style)),
            dump_error=str(imei.get("dump_error", "")),
        ),
        launcher=str(data.get("launcher", PhoneData.launcher)),
        screen_locked=bool(data.get("screen_locked", False)),
    )


def _answer(value: Any) -> Answer:
    if isinstance(value, str):
        return Answer(stdout=value)
    if isinstance(value, dict):
        return Answer(str(value.get("stdout", "")), str(value.get("stderr", "")), int(value.get("exit_code", 0)))
    raise TypeError(f"an output is text or a table, not {type(value).__name__}")
