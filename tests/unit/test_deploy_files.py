"""systemd/hwd.service and udev-rules/70-hwd.rules: the mistakes that only show on a kiosk, caught here.

The unit must start the daemon the way it expects (notify, its directories, its exit codes) and keep
the device and socket access it needs while staying hardened; the rules must parse, hand devices to
hwd alone, and keep ModemManager and the seat user away from them.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

from hwd.config import GrpcConfig
from hwd.daemon import EXIT_CONFIG

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "hwd.service"
RULES = ROOT / "udev-rules" / "70-hwd.rules"

# `systemd-analyze security` exposure measured for systemd/hwd.service (1.4), rounded up to the next
# 0.5, times ten. Lower it when the unit gets better; never raise it to make a change pass.
SECURITY_THRESHOLD = 15


# --- the unit ------------------------------------------------------------------------------------


def _unit() -> dict[str, dict[str, list[str]]]:
    """Sections of the unit file, each key with all its values in order (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not a `Key=value` line: {raw!r}"
        assert section, f"a key outside any section: {raw!r}"
        sections[section][key.strip()].append(value.strip())
    return sections


SERVICE = _unit()["Service"]


def _last(key: str) -> str:
    values = SERVICE.get(key, [])
    return values[-1] if values else ""


def _seconds(span: str) -> float:
    units = {"ms": 0.001, "s": 1, "sec": 1, "min": 60, "m": 60}
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-z]*)", span)
    assert m, f"unexpected time span {span!r}"
    assert m.group(2) in {"", *units}, f"unexpected time unit in {span!r}"
    return float(m.group(1)) * units.get(m.group(2) or "s", 1)


def test_notify_service_running_hwd_serve() -> None:
    assert _last("Type") == "notify"
    assert _last("NotifyAccess") in {"", "main"}
    argv = shlex.split(_last("ExecStart"))
    assert argv[0] == "/opt/hwd/.venv/bin/hwd"
    assert argv[1] == "serve"
    assert argv[argv.index("--config") + 1] == "/etc/hwd/hwd.toml"
    assert "--simulated" not in argv


def test_the_daemon_is_pointed_at_the_directories_systemd_creates() -> None:
    # Run as a user, the daemon would otherwise default to $XDG_RUNTIME_DIR (unset: a private /tmp).
    argv = shlex.split(_last("ExecStart"))
    assert argv[argv.index("--socket-dir") + 1] == "%t/" + _last("RuntimeDirectory")
    assert argv[argv.index("--state-dir") + 1] == "%S/" + _last("StateDirectory")


def test_runs_as_hwd_with_its_own_directories() -> None:
    assert (_last("User"), _last("Group")) == ("hwd", "hwd")
    assert _last("RuntimeDirectory") == "hwd"
    assert _last("StateDirectory") == "hwd"
    assert _last("ConfigurationDirectory") == "hwd"
    assert _last("RuntimeDirectoryMode") == "0750"  # the group hwd reaches the sockets
    assert _last("StateDirectoryMode") == "0700"  # the journal is not for the daemon's clients
    assert int(_last("UMask") or "0022", 8) & 0o007 == 0o007, "files the daemon creates must not be world-accessible"


def test_no_watchdog_yet() -> None:
    assert "WatchdogSec" not in SERVICE, "the daemon does not send WATCHDOG=1"


def test_restart_on_failure_but_not_on_a_bad_config() -> None:
    assert _last("Restart") == "on-failure"
    assert str(EXIT_CONFIG) in " ".join(SERVICE["RestartPreventExitStatus"]).split()


def test_stop_timeout_leaves_room_for_the_safe_state() -> None:
    assert _seconds(_last("TimeoutStopSec")) >= GrpcConfig().shutdown_grace_s + 10


def test_devices_stay_visible_but_fenced() -> None:
    assert _last("PrivateDevices") in {"", "no", "false", "0", "off"}, "PrivateDevices= hides the kiosk hardware"
    assert _last("DevicePolicy") == "closed"
    allowed = {tuple(v.split()) for v in SERVICE["DeviceAllow"]}
    for group in ("char-usb_device", "char-ttyUSB", "char-ttyACM", "char-video4linux", "char-usb"):
        assert (group, "rw") in allowed, f"DeviceAllow={group} rw is missing"


def test_device_drivers_are_loaded_before_deviceallow_is_resolved() -> None:
    # char-NAME is looked up in /proc/devices when the service starts: its module must be loaded by then.
    unit = _unit()["Unit"]
    wants, after = " ".join(unit["Wants"]).split(), " ".join(unit["After"]).split()
    for group, module in (("char-ttyUSB", "usbserial"), ("char-ttyACM", "cdc_acm"), ("char-video4linux", "videodev")):
        if any(v.split()[0] == group for v in SERVICE["DeviceAllow"]):
            assert f"modprobe@{module}.service" in wants
            assert f"modprobe@{module}.service" in after


def test_address_families_keep_netlink_unix_and_ip() -> None:
    values = SERVICE["RestrictAddressFamilies"]
    assert values, "RestrictAddressFamilies= is not set"
    assert not any(v.startswith("~") for v in values), "a deny-list would let exotic families through"
    families = set(" ".join(values).split())
    assert {"AF_NETLINK", "AF_UNIX", "AF_INET", "AF_INET6"} <= families
    assert "AF_PACKET" not in families


def test_hardening_that_cannot_coexist_with_hotplug_is_absent() -> None:
    # PrivateUsers: libudev drops uevents whose sender uid is not 0, and uid 0 is unmapped inside.
    # PrivateNetwork: uevents are per network namespace, and printers on port 9100 are on the network.
    assert _last("PrivateUsers") in {"", "no", "false"}
    assert _last("PrivateNetwork") in {"", "no", "false"}


def test_core_hardening_is_on() -> None:
    for key in ("NoNewPrivileges", "ProtectHome", "LockPersonality", "MemoryDenyWriteExecute", "RestrictRealtime"):
        assert _last(key) == "yes", key
    assert _last("ProtectSystem") == "strict"
    assert "CapabilityBoundingSet" in SERVICE
    assert _last("CapabilityBoundingSet") == ""
    assert SERVICE["SystemCallFilter"][0] == "@system-service"


def _systemd_analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    return exe


def test_security_exposure_stays_low() -> None:
    exe = _systemd_analyze()
    proc = subprocess.run(
        [exe, "security", "--offline=true", f"--threshold={SECURITY_THRESHOLD}", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    overall = [line for line in proc.stdout.splitlines() if "Overall exposure" in line]
    assert proc.returncode == 0, f"exposure above {SECURITY_THRESHOLD / 10}: {overall}\n{proc.stderr}"


def test_unit_verifies(tmp_path: Path) -> None:
    exe = _systemd_analyze()
    # The kiosk's venv is not here: same unit, an executable that exists.
    unit = tmp_path / "hwd.service"
    unit.write_text(re.sub(r"(?m)^ExecStart=.*$", "ExecStart=/bin/true", UNIT.read_text()))
    proc = subprocess.run([exe, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr


# --- the udev rules ------------------------------------------------------------------------------

# Keys of udev(7): those that only match, those that only assign, those that do both.
MATCH_ONLY = {"ACTION", "DEVPATH", "KERNEL", "KERNELS", "SUBSYSTEM", "SUBSYSTEMS", "DRIVER", "DRIVERS", "ATTRS"}
MATCH_ONLY |= {"TAGS", "CONST", "TEST", "RESULT"}
ASSIGN_ONLY = {"OWNER", "GROUP", "MODE", "SECLABEL", "RUN", "LABEL", "GOTO", "IMPORT", "OPTIONS"}
BOTH = {"NAME", "SYMLINK", "ATTR", "SYSCTL", "ENV", "TAG", "PROGRAM"}
NEEDS_ATTRIBUTE = {"ATTR", "ATTRS", "SYSCTL", "ENV", "CONST", "SECLABEL"}
MAY_HAVE_ATTRIBUTE = NEEDS_ATTRIBUTE | {"RUN", "IMPORT", "TEST"}
MATCH_OPS = {"==", "!="}
ASSIGN_OPS = {"=", "+=", "-=", ":="}
REMOVABLE = {"TAG"}  # keys that take -=
# $name / %c substitutions of udev(7)
SUBSTITUTIONS = {"kernel", "number", "devpath", "id", "driver", "attr", "env", "major", "minor", "result"}
SUBSTITUTIONS |= {"parent", "name", "links", "root", "sys", "devnode"}
PERCENT = set("knpbdsEMmcPNrS%")

_PAIR = re.compile(r'\s*(?P<key>[A-Z_]+)(?:\{(?P<attr>[^{}"]*)\})?\s*(?P<op>==|!=|\+=|-=|:=|=)\s*"(?P<value>[^"]*)"\s*')


@dataclass(frozen=True)
class Pair:
    """One `KEY{attr}op"value"` of a rule."""

    key: str
    attr: str | None
    op: str
    value: str

    @property
    def name(self) -> str:
        return f"{self.key}{{{self.attr}}}" if self.attr is not None else self.key


def parse_rule(line: str) -> list[Pair]:
    """Splits one rule line into its pairs. :raises ValueError: on anything udev would not read as intended."""
    pairs: list[Pair] = []
    pos = 0
    while pos < len(line):
        m = _PAIR.match(line, pos)
        if m is None:
            raise ValueError(f'not a KEY op "value" pair at column {pos}: {line[pos:]!r}')
        pair = Pair(m["key"], m["attr"], m["op"], m["value"])
        _check_pair(pair)
        pairs.append(pair)
        pos = m.end()
        if pos < len(line):
            if line[pos] != ",":
                raise ValueError(f"pairs must be separated by commas, at column {pos}: {line[pos:]!r}")
            pos += 1
            if pos >= len(line.rstrip()):
                raise ValueError("trailing comma")
    if not pairs:
        raise ValueError("empty rule")
    return pairs


def _check_pair(pair: Pair) -> None:
    if pair.key not in MATCH_ONLY | ASSIGN_ONLY | BOTH:
        raise ValueError(f"unknown key {pair.key}")
    if pair.key in NEEDS_ATTRIBUTE and not pair.attr:
        raise ValueError(f"{pair.key} needs {{attribute}}")
    if pair.attr is not None and pair.key not in MAY_HAVE_ATTRIBUTE:
        raise ValueError(f"{pair.key} takes no {{attribute}}")
    if pair.key in MATCH_ONLY and pair.op not in MATCH_OPS:
        raise ValueError(f"{pair.key} can only be matched (== or !=), not assigned with {pair.op}")
    if pair.key in ASSIGN_ONLY and pair.op not in ASSIGN_OPS:
        raise ValueError(f"{pair.key} can only be assigned, not matched with {pair.op}")
    if pair.op == "-=" and pair.key not in REMOVABLE:
        raise ValueError(f"{pair.key} does not take -=")
    if pair.op in ASSIGN_OPS:
        _check_substitutions(pair.value)


def _check_substitutions(value: str) -> None:
    for m in re.finditer(r"\$(\$|[a-z]+)(\{[^}]*\}?)?|%(.)(\{[^}]*\}?)?", value):
        word, percent, braces = m.group(1), m.group(3), m.group(2) or m.group(4) or ""
        if word is not None and word != "$" and word not in SUBSTITUTIONS:
            raise ValueError(f"unknown substitution ${word}")
        if percent is not None and percent not in PERCENT:
            raise ValueError(f"unknown substitution %{percent}")
        if braces and not braces.endswith("}"):
            raise ValueError(f"unclosed brace in {m.group(0)!r}")


def _rules() -> list[tuple[int, list[Pair]]]:
    """Every rule of the file with its line number; continuation lines are joined."""
    rules: list[tuple[int, list[Pair]]] = []
    pending, start = "", 0
    for number, raw in enumerate(RULES.read_text().splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        start = start or number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        rules.append((start, parse_rule((pending + line).strip())))
        pending, start = "", 0
    assert not pending, "the file ends inside a continued line"
    return rules


def _assigned(rule: list[Pair], name: str) -> list[str]:
    return [p.value for p in rule if p.name == name and p.op in ASSIGN_OPS]


def _matched(rule: list[Pair], name: str) -> list[str]:
    return [p.value for p in rule if p.name == name and p.op == "=="]


@pytest.mark.parametrize(
    "line",
    [
        'SUBSYSTEM=="tty", MODE="0600',  # unclosed quote
        'SUBSYSTEM=="tty" MODE="0600"',  # missing comma
        "SUBSYSTEM==tty",  # unquoted value
        'SUBSYSTEM=="tty", MODE="0600",',  # trailing comma
        'SUBSYTEM=="tty"',  # typo in a key
        'SUBSYSTEM="tty", MODE="0600"',  # assigning a match-only key
        'SUBSYSTEM=="tty", MODE=="0600"',  # matching an assign-only key
        'SUBSYSTEM=="tty", ENV="1"',  # ENV without {name}
        'SUBSYSTEM=="tty", SYMLINK-="x"',  # -= on a key that does not take it
        'SUBSYSTEM=="tty", SYMLINK+="hwd/$envv{X}"',  # misspelt substitution
        'SUBSYSTEM=="tty", SYMLINK+="hwd/$env{X"',  # unclosed substitution
    ],
)
def test_the_rule_parser_rejects_real_mistakes(line: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any rejection will do
        parse_rule(line)


def test_the_rule_parser_accepts_udev_syntax() -> None:
    rule = parse_rule(
        'SUBSYSTEM=="tty", ATTRS{idVendor}=="0403", ENV{.X}="%b", TAG-="uaccess", SYMLINK+="hwd/a-$env{.X}"'
    )
    assert [p.name for p in rule] == ["SUBSYSTEM", "ATTRS{idVendor}", "ENV{.X}", "TAG", "SYMLINK"]


def test_every_rule_parses() -> None:
    assert len(_rules()) > 5


def test_symlinks_live_under_dev_hwd() -> None:
    for number, rule in _rules():
        for value in _assigned(rule, "SYMLINK"):
            for link in value.split():
                assert link.startswith("hwd/"), f"line {number}: symlink {link!r} outside /dev/hwd"
                assert ".." not in link, f"line {number}: symlink {link!r} climbs out of /dev/hwd"


def test_nothing_is_handed_to_the_seat_user() -> None:
    for number, rule in _rules():
        added = [p for p in rule if p.key == "TAG" and p.op in {"=", "+=", ":="} and p.value == "uaccess"]
        assert not added, f"line {number} tags a kiosk device uaccess"


def test_owned_devices_belong_to_hwd_alone() -> None:
    owned = [(n, r) for n, r in _rules() if {"OWNER", "GROUP", "MODE"} & {p.key for p in r if p.op in ASSIGN_OPS}]
    assert owned
    for number, rule in owned:
        # Group hwd is also the socket directory's group, i.e. the daemon's clients: no device access for it.
        assert _assigned(rule, "OWNER") == ["hwd"], f"line {number}"
        assert _assigned(rule, "GROUP") == ["hwd"], f"line {number}"
        assert _assigned(rule, "MODE") == ["0600"], f"line {number}"
        assert _matched(rule, "SUBSYSTEM"), f"line {number}: an ownership rule without SUBSYSTEM== matches everything"
        assert _assigned(rule, "ENV{ID_MM_DEVICE_IGNORE}") == ["1"], f"line {number}: ModemManager would probe it"
        assert any(p.key == "TAG" and p.op == "-=" and p.value == "uaccess" for p in rule), f"line {number}"


def test_usbmuxd_keeps_apple_devices() -> None:
    for number, rule in _rules():
        if "05ac" in _matched(rule, "ATTR{idVendor}") + _matched(rule, "ATTRS{idVendor}"):
            assert not _assigned(rule, "OWNER"), f"line {number}: usbmuxd runs as its own user and owns iPhones"


RS485 = [("0403", "6001"), ("0403", "6015"), ("1a86", "7523"), ("10c4", "ea60"), ("067b", "2303")]


@pytest.mark.parametrize(("vendor", "product"), RS485, ids=[f"{v}:{p}" for v, p in RS485])
def test_rs485_adapters_are_tagged_on_their_tty(vendor: str, product: str) -> None:
    tagged = [
        rule
        for _, rule in _rules()
        if _matched(rule, "SUBSYSTEM") == ["tty"]
        and vendor in _matched(rule, "ATTRS{idVendor}")
        and any(fnmatchcase(product, alt) for v in _matched(rule, "ATTRS{idProduct}") for alt in v.split("|"))
    ]
    assert tagged, f"no tty rule for {vendor}:{product}"
    assert all(_assigned(rule, "ENV{HWD_KIND}") == ["rs485"] for rule in tagged)


def test_rs485_ttys_are_owned_and_hidden_from_modemmanager() -> None:
    owners = [
        rule
        for _, rule in _rules()
        if _matched(rule, "SUBSYSTEM") == ["tty"] and _matched(rule, "ENV{HWD_KIND}") == ["rs485"]
    ]
    assert any(_assigned(rule, "OWNER") == ["hwd"] for rule in owners)
    assert any(_assigned(rule, "ENV{ID_MM_DEVICE_IGNORE}") == ["1"] for rule in owners)


def test_adb_phones_and_printers_and_cameras_are_covered() -> None:
    text = " ".join(p.value for _, rule in _rules() for p in rule)
    assert "*:ff4201:*" in text  # any vendor's ADB interface
    assert "*:0701??:*" in text  # USB printer class
    assert "04b8" in text  # Epson
    kinds = {v for _, rule in _rules() for v in _assigned(rule, "ENV{HWD_KIND}")}
    assert {"rs485", "printer", "camera", "phone-android", "phone-ios"} <= kinds


def test_cameras_only_capture_nodes() -> None:
    for number, rule in _rules():
        if _matched(rule, "SUBSYSTEM") == ["video4linux"] and _assigned(rule, "OWNER"):
            assert _matched(rule, "ATTR{index}") == ["0"], f"line {number}"


def test_every_goto_has_its_label_below() -> None:
    rules = _rules()
    for number, rule in rules:
        for target in _assigned(rule, "GOTO"):
            assert any(n > number and _assigned(r, "LABEL") == [target] for n, r in rules), f"line {number}: {target}"
