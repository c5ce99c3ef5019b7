"""docs/config.example.toml documents every key of hwd/config.py, and a bad configuration fails loudly.

The example is checked against the models themselves (fields, defaults, Field constraints), so a key
added, renamed or re-ranged in hwd/config.py fails here until the example says so too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import annotated_types
import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from hwd.config import Config, load_config
from hwd.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "config.example.toml"

# Keys the example deliberately sets to something other than the default, by (section, key).
DELIBERATE: dict[tuple[str, str], Any] = {}

_SECTION = re.compile(r"^\[(\w+)\]\s*$")
_KEY = re.compile(r"^(?P<hash>#\s?)?(?P<key>[a-z_][a-z0-9_]*) = ")


@dataclass
class Entry:
    """One key of the example: its section, whether it is commented out, and the comment above it."""

    section: str
    key: str
    commented: bool
    doc: list[str] = field(default_factory=list)


def _sections() -> dict[str, type[BaseModel]]:
    sections: dict[str, type[BaseModel]] = {}
    for name, info in Config.model_fields.items():
        model = info.annotation
        assert isinstance(model, type), f"Config.{name} is not a section model"
        assert issubclass(model, BaseModel), f"Config.{name} is not a section model"
        sections[name] = model
    return sections


def _fields() -> list[tuple[str, str, FieldInfo]]:
    return [(s, k, f) for s, model in _sections().items() for k, f in model.model_fields.items()]


def _entries(text: str) -> dict[tuple[str, str], Entry]:
    entries: dict[tuple[str, str], Entry] = {}
    section = ""
    doc: list[str] = []
    for line in text.splitlines():
        if m := _SECTION.match(line):
            section, doc = m.group(1), []
        elif m := _KEY.match(line):
            key = (section, m.group("key"))
            assert key not in entries, f"{'.'.join(key)} appears twice in the example"
            entries[key] = Entry(section, m.group("key"), m.group("hash") is not None, doc)
            doc = []
        elif line.startswith("#"):
            doc.append(line.lstrip("# "))
        else:
            doc = []
    return entries


def _fmt(value: object) -> str:
    """A value as the example writes it."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return str(value).lower()  # TOML spelling
    if isinstance(value, tuple):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return repr(value) if isinstance(value, float) else str(value)


_BOUNDS = (
    (annotated_types.Ge, "ge", ""),
    (annotated_types.Le, "le", ""),
    (annotated_types.Gt, "gt", "> "),
    (annotated_types.Lt, "lt", "< "),
)


def _allowed(info: FieldInfo) -> list[str]:
    """What the "Allowed:" line must mention: each bound of the Field, or each alternative of its pattern."""
    out = []
    for meta in info.metadata:
        out += [prefix + _fmt(getattr(meta, attr)) for kind, attr, prefix in _BOUNDS if isinstance(meta, kind)]
        pattern = getattr(meta, "pattern", None)
        if isinstance(pattern, str) and (m := re.fullmatch(r"\^\((.*)\)\$", pattern)):
            out += [_fmt(choice) for choice in m.group(1).split("|")]
    return out


def _part(doc: list[str], label: str) -> str:
    """The text after ``label`` (e.g. "Default:") up to the next such label, or ""."""
    text = " ".join(doc)
    start = text.find(label)
    if start < 0:
        return ""
    rest = text[start + len(label) :]
    return re.split(r"\b(?:Default|Allowed|Environment):", rest)[0]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hwd.toml"
    path.write_text(text)
    return path


def _error(path: Path | None, env: dict[str, str] | None = None, **kw: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, env={} if env is None else env, **kw)
    return info.value


ENTRIES = _entries(EXAMPLE.read_text())
FIELDS = _fields()
FIELD_IDS = [f"{s}.{k}" for s, k, _ in FIELDS]


# --- the example against the code -------------------------------------------------------------------


def test_example_loads_and_equals_the_defaults() -> None:
    expected = Config().model_dump()
    for (section, key), value in DELIBERATE.items():
        expected[section][key] = value
    assert load_config(EXAMPLE, env={}).model_dump() == expected


@pytest.mark.parametrize(("section", "key", "info"), FIELDS, ids=FIELD_IDS)
def test_every_field_appears_under_its_section(section: str, key: str, info: FieldInfo) -> None:
    assert (section, key) in ENTRIES, f"docs/config.example.toml lacks `{key} =` under [{section}]"


def test_the_example_has_no_key_the_code_does_not_know() -> None:
    known = {(s, k) for s, k, _ in FIELDS}
    assert set(ENTRIES) - known == set()


@pytest.mark.parametrize(("section", "key", "info"), FIELDS, ids=FIELD_IDS)
def test_each_key_names_its_env_var_default_and_range(section: str, key: str, info: FieldInfo) -> None:
    doc = ENTRIES[(section, key)].doc
    assert doc, f"{section}.{key} has no comment above it"
    assert f"HWD_{section.upper()}__{key.upper()}" in " ".join(doc)
    default, allowed = _part(doc, "Default:"), _part(doc, "Allowed:")
    assert default, f"{section}.{key}: no 'Default:' line"
    if info.default is not None:
        assert _fmt(info.default) in default, f"{section}.{key}: 'Default:' does not say {_fmt(info.default)}"
    for bound in _allowed(info):
        assert re.search(rf"(?<![\w.]){re.escape(bound)}(?!\w|\.\d)", allowed), (
            f"{section}.{key}: 'Allowed:' lacks {bound}"
        )


@pytest.mark.parametrize(("section", "key", "info"), FIELDS, ids=FIELD_IDS)
def test_commented_out_exactly_when_the_default_is_computed(section: str, key: str, info: FieldInfo) -> None:
    assert ENTRIES[(section, key)].commented == (info.default is None)


def test_the_commented_examples_are_valid_values(tmp_path: Path) -> None:
    known = {(s, k) for s, k, _ in FIELDS}
    section, lines = "", []
    for line in EXAMPLE.read_text().splitlines():
        if m := _SECTION.match(line):
            section = m.group(1)
        m = _KEY.match(line)
        uncomment = bool(m and m.group("hash") and (section, m.group("key")) in known)
        lines.append(line.lstrip("# ") if uncomment else line)
    cfg = load_config(_write(tmp_path, "\n".join(lines)), env={})
    assert cfg.daemon.socket_dir == Path("/run/hwd")
    assert cfg.daemon.state_dir == Path("/var/lib/hwd")
    assert cfg.daemon.tech_group == "hwd-tech"


# --- errors name the file, the key and the reason ---------------------------------------------------


def test_unknown_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "[grpc]\nmax_concurent_rpcs = 512\n")
    err = _error(path)
    assert err.message == f"{path}: grpc.max_concurent_rpcs: unknown key"
    assert err.metadata == {"key": "grpc.max_concurent_rpcs", "origin": str(path)}
    assert err.reason == "CONFIG_INVALID"
    assert "hwd config check" in err.hint


def test_unknown_section(tmp_path: Path) -> None:
    path = _write(tmp_path, "[scanner]\nport = 9100\n")
    assert _error(path).message == f"{path}: scanner: unknown key"


def test_wrong_type(tmp_path: Path) -> None:
    path = _write(tmp_path, '[grpc]\nmax_concurrent_rpcs = "many"\n')
    message = _error(path).message
    assert message.startswith(f"{path}: grpc.max_concurrent_rpcs: ")
    assert "valid integer" in message


def test_a_section_that_is_not_a_table(tmp_path: Path) -> None:
    path = _write(tmp_path, "grpc = 5\n")
    assert _error(path).message.startswith(f"{path}: grpc: ")


@pytest.mark.parametrize(
    ("section", "key", "value", "reason"),
    [
        ("grpc", "max_concurrent_rpcs", "1", "greater than or equal to 8"),
        ("grpc", "max_message_bytes", "1024", "greater than or equal to 65536"),
        ("grpc", "shutdown_grace_s", "61.0", "less than or equal to 60"),
        ("events", "replay_page", "10001", "less than or equal to 10000"),
        ("leases", "default_ttl_s", "0.0", "greater than 0"),
        ("daemon", "log_level", '"debug"', "should match pattern"),
    ],
)
def test_out_of_range(tmp_path: Path, section: str, key: str, value: str, reason: str) -> None:
    path = _write(tmp_path, f"[{section}]\n{key} = {value}\n")
    err = _error(path)
    assert err.message.startswith(f"{path}: {section}.{key}: ")
    assert reason in err.message
    assert err.metadata["key"] == f"{section}.{key}"


def test_invalid_toml(tmp_path: Path) -> None:
    path = _write(tmp_path, "[grpc\nmax_concurrent_rpcs = 512\n")
    message = _error(path).message
    assert message.startswith(f"{path}: not valid TOML: ")
    assert "line 1" in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    assert _error(path).message == f"{path}: cannot read: No such file or directory"


def test_every_error_is_counted(tmp_path: Path) -> None:
    path = _write(tmp_path, "[grpc]\nmax_concurrent_rpcs = 1\nshutdown_grace_s = 99\n")
    assert _error(path).message.endswith("(and 1 more)")


def test_a_bad_environment_value_names_the_environment(tmp_path: Path) -> None:
    path = _write(tmp_path, "[grpc]\nmax_concurrent_rpcs = 512\n")
    err = _error(path, env={"HWD_GRPC__MAX_CONCURRENT_RPCS": "1"})
    assert err.message == "environment: grpc.max_concurrent_rpcs: Input should be greater than or equal to 8"
    assert err.metadata == {"key": "grpc.max_concurrent_rpcs", "origin": "environment"}


def test_an_unknown_environment_key_names_the_environment() -> None:
    err = _error(None, env={"HWD_GRPC__MAX_CONCURENT_RPCS": "512"})
    assert err.message == "environment: grpc.max_concurent_rpcs: unknown key"


# --- precedence: defaults < file < environment < flags ----------------------------------------------


def test_file_beats_defaults_env_beats_file_flags_beat_env(tmp_path: Path) -> None:
    path = _write(tmp_path, "[grpc]\nmax_concurrent_rpcs = 300\nshutdown_grace_s = 7.5\n")
    env = {"HWD_GRPC__MAX_CONCURRENT_RPCS": "400", "HWD_EVENTS__REPLAY_PAGE": "50"}
    assert load_config(path, env={}).grpc.max_concurrent_rpcs == 300
    cfg = load_config(path, env=env)
    assert (cfg.grpc.max_concurrent_rpcs, cfg.grpc.shutdown_grace_s, cfg.events.replay_page) == (400, 7.5, 50)
    cfg = load_config(path, env=env, overrides={"grpc": {"max_concurrent_rpcs": 500}})
    assert (cfg.grpc.max_concurrent_rpcs, cfg.grpc.shutdown_grace_s, cfg.events.replay_page) == (500, 7.5, 50)


def test_environment_strings_are_converted() -> None:
    cfg = load_config(None, env={"HWD_GRPC__SHUTDOWN_GRACE_S": "2.5", "HWD_DAEMON__TECH_GROUP": "hwd-tech"})
    assert cfg.grpc.shutdown_grace_s == 2.5
    assert cfg.daemon.tech_group == "hwd-tech"


def test_socket_and_state_dir_shortcuts(tmp_path: Path) -> None:
    path = _write(tmp_path, '[daemon]\nsocket_dir = "/from/file"\n')
    cfg = load_config(path, env={"HWD_SOCKET_DIR": "/run/x", "HWD_STATE_DIR": "/var/lib/x"})
    assert (cfg.socket_dir(), cfg.state_dir()) == (Path("/run/x"), Path("/var/lib/x"))
    cfg = load_config(path, env={"HWD_SOCKET_DIR": "/run/x"}, overrides={"daemon": {"socket_dir": Path("/flag")}})
    assert cfg.socket_dir() == Path("/flag")


def test_other_variables_are_ignored() -> None:
    assert load_config(None, env={"HWD_SOMETHING": "x", "PATH": "/bin", "XHWD_GRPC__Y": "1"}) == Config()


# --- known defects of hwd/config.py (strict: each turns into a failure once fixed) ------------------


def test_a_bad_flag_is_not_blamed_on_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[grpc]\nmax_concurrent_rpcs = 512\n")
    err = _error(path, overrides={"grpc": {"max_concurrent_rpcs": 1}})
    assert err.metadata["origin"] not in {str(path), "environment", "defaults"}


def test_an_unknown_environment_section_names_the_environment(tmp_path: Path) -> None:
    path = _write(tmp_path, "")
    assert _error(path, env={"HWD_SCANNER__PORT": "9100"}).metadata["origin"] == "environment"


def test_an_empty_directory_variable_is_not_the_working_directory() -> None:
    try:
        cfg = load_config(None, env={"HWD_SOCKET_DIR": ""})
    except ConfigError:
        return
    assert cfg.daemon.socket_dir is None


def test_a_list_can_come_from_the_environment_as_a_toml_array() -> None:
    cfg = load_config(None, env={"HWD_CAROUSEL__SLOTS": '["USB_C", "LIGHTNING"]'})
    assert cfg.carousel.slots == ("USB_C", "LIGHTNING")
    with pytest.raises(ConfigError, match=r"environment: carousel\.slots"):
        load_config(None, env={"HWD_CAROUSEL__SLOTS": '["HDMI"]'})


@pytest.mark.parametrize(
    "target", ["tcp:10.0.0.5:9100", "serial:/dev/hwd/printer", "serial:/dev/ttyUSB0:38400", "usb:04b8:0e28"]
)
def test_printer_targets_in_each_form_are_accepted(target: str) -> None:
    assert load_config(None, env={"HWD_PRINTER__TARGET": target}).printer.target == target


@pytest.mark.parametrize("target", ["10.0.0.5:9100", "tcp:host", "usb:4b8:202", "serial:ttyUSB0", ""])
def test_a_malformed_printer_target_names_the_key(target: str) -> None:
    with pytest.raises(ConfigError, match=r"printer\.target"):
        load_config(None, env={"HWD_PRINTER__TARGET": target})
