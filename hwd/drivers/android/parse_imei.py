"""Pure, total parsers of the answers that carry a phone's IMEI.

Three ways in, by Android version: the binder reply ``service call iphonesubinfo`` prints
(Android 9 and older answer the shell user; 10 and later throw a SecurityException),
``dumpsys iphonesubinfo`` on old releases, and the ``*#06#`` dialog read from a
``uiautomator dump``. Every parser returns a value or a :class:`ParseError`; none raises.
"""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from hwd.drivers.android.parse import ParseError, clean

#: Largest window dump parsed; a real one is 5 to 50 KiB.
MAX_XML_CHARS = 512 * 1024
#: Most parcel words read; an IMEI reply has 10, a SecurityException about 50.
MAX_PARCEL_WORDS = 1024
_WORD = re.compile(r"\b[0-9a-fA-F]{8}\b")
_OFFSET = re.compile(r"^\s*0x[0-9a-fA-F]{8}:")
# 15 digits, alone or grouped as dialers print them (2-6-6-1); never part of a longer number.
_IMEI = re.compile(r"(?<![\d/])(\d{2}) ?(\d{6}) ?(\d{6}) ?(\d)(?!\d)")
_DEVICE_ID = re.compile(r"^\s*Device ID = (\d{14,16})\s*$")


@dataclass(frozen=True)
class ParcelReply:
    """A ``service call`` reply that holds one string.

    :ivar exception: the binder exception code; 0 when the call succeeded, -1 for a SecurityException.
    :ivar text: the returned string (None for a null string), or the exception's message.
    """

    exception: int
    text: str | None


@dataclass(frozen=True)
class ScreenDump:
    """What a ``uiautomator dump`` showed.

    :ivar package: the package of the window's root view (whose screen it is).
    :ivar texts: every view's text, in document order.
    """

    package: str
    texts: list[str]


def parse_parcel_string(text: str) -> ParcelReply | ParseError:
    """Decodes ``service call`` output whose reply is a string (or an exception with a message).

    The hex dump shows 32-bit little-endian words: the exception code, the string's length in
    UTF-16 units (-1 for null), then two UTF-16 units per word, low half first.

    :returns: the reply, or an error when the output is not a parcel dump or is inconsistent.
    """
    start = text.find("Parcel(")
    if start < 0:
        first = clean(text.strip().splitlines()[0]) if text.strip() else "no output"
        return ParseError(f"no parcel in the service call output: {first}")
    words: list[int] = []
    for line in text[start + len("Parcel(") :].splitlines():
        hex_part = _OFFSET.sub("", line).split("'", 1)[0]
        words += [int(w, 16) for w in _WORD.findall(hex_part)]
        if len(words) > MAX_PARCEL_WORDS:
            return ParseError("the parcel is larger than any identifier reply")
    if len(words) < 2:
        return ParseError("the parcel is too short to hold a string")
    exception, length = (struct.unpack("<i", struct.pack("<I", w))[0] for w in words[:2])
    if length == -1:
        return ParcelReply(exception, None)
    if length < 0 or length > 2 * (len(words) - 2):
        return ParseError(f"the parcel's string length {length} runs past its end")
    raw = b"".join(struct.pack("<I", w) for w in words[2:])
    return ParcelReply(exception, clean(raw.decode("utf-16-le", errors="replace")[:length]))


def parse_ui_dump(text: str) -> ScreenDump | ParseError:
    """Parses a window dump: the XML with any text around it (uiautomator's "dumped to" line).

    The XML is size-capped and refused if it declares a DTD or entities, so a hostile phone can
    neither exhaust memory nor expand entities.

    :returns: the root package and the texts, or an error (e.g. uiautomator's own error line).
    """
    begin, end = text.find("<hierarchy"), text.rfind("</hierarchy>")
    if begin < 0 or end < begin:
        first = clean(text.strip().splitlines()[0]) if text.strip() else "no output"
        return ParseError(f"no window hierarchy in the uiautomator answer: {first}")
    xml = text[begin : end + len("</hierarchy>")]
    if len(xml) > MAX_XML_CHARS:
        return ParseError(f"window dump larger than {MAX_XML_CHARS} characters")
    if "<!" in xml:
        return ParseError("window dump declares a DTD, entities or CDATA")
    try:
        root = ET.fromstring(xml)
    except (ET.ParseError, ValueError) as exc:
        return ParseError(f"window dump is not well-formed XML: {exc}")
    nodes = list(root.iter("node"))
    package = clean(nodes[0].get("package", "")) if nodes else ""
    return ScreenDump(package, [clean_text for n in nodes if (clean_text := _text(n.get("text", "")))])


def _text(value: str) -> str:
    return "".join(ch if ch.isprintable() else " " for ch in value[:4096]).strip()


def find_imeis(texts: list[str]) -> list[str]:
    """The 15-digit numbers in screen texts, in order, without repeats.

    An IMEI/SV suffix (``/01``) and a 14-digit MEID are not IMEIs; a 16-digit IMEISV is skipped.
    """
    found: list[str] = []
    for text in texts:
        for match in _IMEI.finditer(text):
            number = "".join(match.groups())
            if number not in found:
                found.append(number)
    return found


def parse_subinfo_dump(text: str) -> list[str]:
    """Parses ``dumpsys iphonesubinfo`` (``Device ID = N`` lines on old releases).

    :returns: the device ids printed, in order; empty when the release prints none.
    """
    return [m.group(1) for line in text.splitlines()[:1000] if (m := _DEVICE_ID.match(line))]
