"""Human and JSON rendering shared by every command: aligned tables, times, enum names."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC

from google.protobuf import json_format, timestamp_pb2
from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.message import Message

EMPTY_CELL = "-"
COLUMN_GAP = "  "


def clean(text: str) -> str:
    """`text` safe for a terminal: control characters (newlines, escapes) become ``\\uXXXX``.

    Strings from the daemon may come from a phone, which is hostile input.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An aligned text table: left-aligned columns two spaces apart, one header line.

    Empty cells show as ``-``; cells are passed through :func:`clean`; no trailing spaces.
    """
    cells = [list(headers)] + [[clean(c) or EMPTY_CELL for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [COLUMN_GAP.join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def fields(pairs: Sequence[tuple[str, str]]) -> str:
    """`name: value` lines with the values aligned, for headers above a table."""
    width = max((len(name) for name, _ in pairs), default=0) + 1
    return "\n".join(f"{(name + ':').ljust(width)} {clean(value)}".rstrip() for name, value in pairs)


def timestamp(ts: timestamp_pb2.Timestamp) -> str:
    """A protobuf Timestamp as local ISO 8601 time with milliseconds; ``-`` when unset."""
    if ts.seconds == 0 and ts.nanos == 0:
        return EMPTY_CELL
    return ts.ToDatetime(tzinfo=UTC).astimezone().isoformat(timespec="milliseconds")


def enum_name(enum: EnumDescriptor, number: int) -> str:
    """The name of enum value `number` without the enum's prefix (``DEVICE_STATE_ONLINE`` -> ``ONLINE``).

    A value newer than this client shows as its number.
    """
    value = enum.values_by_number.get(number)
    if value is None:
        return str(number)
    zero = enum.values_by_number.get(0)
    prefix = zero.name.removesuffix("UNSPECIFIED") if zero else ""
    return value.name.removeprefix(prefix)


def yes_no(flag: bool) -> str:
    """``yes`` or ``no``."""
    return "yes" if flag else "no"


def to_json(message: Message, indent: int | None = 2) -> str:
    """The protobuf JSON mapping of `message`, with field names as in the .proto file."""
    return json_format.MessageToJson(message, preserving_proto_field_name=True, indent=indent)
