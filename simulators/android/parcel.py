"""How ``service call`` prints a binder reply parcel (Android's ``Parcel::print`` hex dump).

A reply holds 32-bit little-endian words: the exception code (0 for none), then for a string a
length in UTF-16 units (-1 for null) and the UTF-16LE text padded to a word boundary.
"""

from __future__ import annotations

import struct

EX_SECURITY = -1


def string_reply(text: str | None) -> str:
    """The output of a call whose reply is one string (or null).

    :param text: the string, None for a null string.
    :returns: the ``Result: Parcel(...)`` text with its trailing newline.
    """
    return dump(struct.pack("<i", 0) + _string(text))


def exception_reply(message: str, code: int = EX_SECURITY) -> str:
    """The output of a call that threw (e.g. a SecurityException for a refused identifier read).

    :param message: the exception's message.
    :param code: the binder exception code (-1 is SecurityException).
    :returns: the ``Result: Parcel(...)`` text with its trailing newline.
    """
    return dump(struct.pack("<i", code) + _string(message))


def _string(text: str | None) -> bytes:
    if text is None:
        return struct.pack("<i", -1)
    data = text.encode("utf-16-le") + b"\0\0"
    data += b"\0" * (-len(data) % 4)
    return struct.pack("<i", len(text)) + data


def dump(data: bytes) -> str:
    """Formats parcel bytes as ``service call`` prints them: 16 bytes a row, words as hex, then ASCII.

    :param data: the parcel, a multiple of 4 bytes long.
    :returns: the text with its trailing newline.
    """
    rows = []
    for offset in range(0, len(data), 16):
        chunk = data[offset : offset + 16]
        words = " ".join(f"{struct.unpack_from('<I', chunk, i)[0]:08x}" for i in range(0, len(chunk), 4))
        text = "".join(chr(b) if 32 <= b < 127 and b != 39 else "." for b in chunk)
        rows.append((offset, words, text))
    if len(rows) == 1:
        _, words, text = rows[0]
        return f"Result: Parcel({words} '{text}')\n"
    lines = [f"  0x{offset:08x}: {words:<35} '{text:<16}'" for offset, words, text in rows]
    return "Result: Parcel(\n" + "\n".join(lines) + ")\n"
