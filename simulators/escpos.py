"""An incremental ESC/POS parser: printer bytes in, printer operations out.

Bytes may arrive in chunks of any size; a command split across chunks is completed by the
next chunk. Printable bytes are held in a text buffer until a control byte arrives, the way a
printer holds its line buffer, so the operations do not depend on how the stream was chunked.
Nothing is fatal: an unknown or malformed command is logged once per parser and skipped.

The operations are plain values (:data:`Op`), drawn by :mod:`simulators.receipt`. Text stays
as bytes: the printer's selected code page (``ESC t``) decodes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

LF, HT, CR, DLE, ESC, FS, GS = 0x0A, 0x09, 0x0D, 0x10, 0x1B, 0x1C, 0x1D
EOT, ENQ, DC4 = 0x04, 0x05, 0x14
#: A length field larger than this is taken for garbage rather than buffered.
MAX_PAYLOAD = 4 * 1024 * 1024
#: ``GS k`` A-form (NUL-terminated) symbologies 0..6 are the B-form ones 65..71.
BARCODE_A_TO_B = 65
MAX_BARCODE_DATA = 255
WINDOW = 4096


@dataclass(frozen=True, slots=True)
class Text:
    """Printable bytes for the line buffer, in the selected code page (``HT`` included)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Feed:
    """Print the line buffer and feed ``lines`` lines (``LF``, ``ESC d n``) or ``dots`` dot rows (``ESC J n``)."""

    lines: int = 0
    dots: int = 0


@dataclass(frozen=True, slots=True)
class Setting:
    """A mode or parameter: ``key`` is one of the names in :data:`SETTINGS`, ``value`` its argument."""

    key: str
    value: int


@dataclass(frozen=True, slots=True)
class Raster:
    """A bitmap, rows of ``(width + 7) // 8`` bytes, most significant bit leftmost, 1 = black.

    ``inline`` images (``ESC *``) join the line buffer and hold column-format data instead: per
    column, ``height // 8`` bytes, top dot first. The others print at once. Both are scaled by
    ``scale_x`` and ``scale_y``.
    """

    width: int
    height: int
    data: bytes
    scale_x: int = 1
    scale_y: int = 1
    inline: bool = False


@dataclass(frozen=True, slots=True)
class Graphics:
    """``GS ( L`` / ``GS 8 L``: keep ``raster`` in the graphics buffer (function 112) or, when None, print it (50)."""

    raster: Raster | None


@dataclass(frozen=True, slots=True)
class Barcode:
    """``GS k``: a hardware barcode; ``symbology`` is the B-form number (67 EAN13, 73 CODE128 ...)."""

    symbology: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Qr:
    """``GS ( k`` QR code: keep the symbol ``data`` (function 80) or, when None, print it (function 81)."""

    data: bytes | None


@dataclass(frozen=True, slots=True)
class Cut:
    """``GS V`` / ``ESC i`` / ``ESC m``: feed ``feed`` dot rows, then cut fully or partially."""

    partial: bool
    feed: int = 0


@dataclass(frozen=True, slots=True)
class StatusQuery:
    """A status request that needs one byte back: ``DLE EOT n`` (``kind`` "rt") or ``GS r n`` ("gs")."""

    kind: str
    n: int


@dataclass(frozen=True, slots=True)
class Initialize:
    """``ESC @``: modes back to their defaults, line buffer cleared."""


Op = Text | Feed | Setting | Raster | Graphics | Barcode | Qr | Cut | StatusQuery | Initialize

#: ``ESC x n`` commands with one argument that change a mode, by their second byte.
_ESC_SETTINGS = {
    ord("!"): "mode", ord("E"): "bold", ord("G"): "bold", ord("-"): "underline", ord("a"): "align",
    ord("t"): "codepage", ord("M"): "font", ord("3"): "line-spacing",
}  # fmt: skip
#: ``GS x n`` commands with one argument that change a mode.
_GS_SETTINGS = {
    ord("!"): "size", ord("h"): "barcode-height", ord("w"): "barcode-width", ord("H"): "hri-position",
    ord("f"): "hri-font", ord("B"): "reverse",
}  # fmt: skip
SETTINGS = frozenset({*_ESC_SETTINGS.values(), *_GS_SETTINGS.values(), "qr-size", "qr-ec"})
#: Commands this printer accepts and ignores, by second byte: their total length in bytes.
_ESC_IGNORED = {
    ord("{"): 3, ord("V"): 3, ord(" "): 3, ord("R"): 3, ord("="): 3, ord("%"): 3, ord("r"): 3, ord("U"): 3,
    ord("e"): 3, ord("p"): 5, ord("B"): 4, ord("$"): 4, ord("\\"): 4, ord("L"): 2, ord("S"): 2, ord("<"): 2,
}  # fmt: skip
#: Two-byte ``ESC x`` commands.
_ESC_SHORT: dict[int, Op] = {
    ord("@"): Initialize(), ord("2"): Setting("line-spacing", -1), ord("i"): Cut(partial=False),
    ord("m"): Cut(partial=True),
}  # fmt: skip
_GS_IGNORED = {ord("b"): 3, ord("a"): 3, ord("I"): 3, ord("L"): 4, ord("W"): 4, ord("P"): 4, ord("T"): 3, ord(":"): 2}
_CUT_MODES = {0: False, 48: False, 1: True, 49: True}
_CUT_FEED_MODES = {65: False, 97: False, 66: True, 98: True, 103: False, 104: True}

#: A step returns how many bytes it used (0: wait for more) and the operations it made.
_Step = tuple[int, list[Op]]


class EscPosParser:
    """Turns an ESC/POS byte stream, fed in chunks, into :data:`Op` values."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._text = bytearray()
        self._reported: set[str] = set()
        self._escape: dict[int, Callable[[bytes], _Step]] = {ESC: self._esc, GS: self._gs, DLE: self._dle, FS: self._fs}

    def feed(self, data: bytes) -> list[Op]:
        """Parse ``data`` after what came before; an incomplete command waits for the next chunk.

        :returns: the operations completed by this chunk, in stream order.
        """
        self._buffer += data
        ops: list[Op] = []
        start = 0
        while start < len(self._buffer):
            # Most commands are short: look at a window first, and at the whole rest only if it is too short.
            window = bytes(self._buffer[start : start + WINDOW])
            used, made = self._step(window)
            if used == 0 and len(self._buffer) - start > len(window):
                used, made = self._step(bytes(self._buffer[start:]))
            if used == 0:
                break
            ops += made
            start += used
        del self._buffer[:start]
        return ops

    def flush(self) -> list[Op]:
        """End of stream: the buffered text comes out; an unfinished command is dropped (and logged)."""
        if self._buffer:
            self._report(f"stream ended inside a command ({self._buffer[:3].hex(' ')} ...)")
            self._buffer.clear()
        return self._take_text()

    def _step(self, data: bytes) -> _Step:
        first = data[0]
        if first >= 0x20 or first == HT:
            end = 1
            while end < len(data) and (data[end] >= 0x20 or data[end] == HT):
                end += 1
            self._text += data[:end]
            return end, []
        handler = self._escape.get(first)
        if handler is not None:
            used, made = handler(data)
        elif first == LF:
            used, made = 1, [Feed(lines=1)]
        else:
            if first != CR:  # CR is ignored, as with auto line feed off
                self._report(f"control byte 0x{first:02x}")
            used, made = 1, []
        return (used, self._take_text() + made) if used else (0, [])

    def _take_text(self) -> list[Op]:
        if not self._text:
            return []
        text, self._text = bytes(self._text), bytearray()
        return [Text(text)]

    def _report(self, what: str) -> None:
        if what not in self._reported:
            self._reported.add(what)
            log.warning("ESC/POS: skipped %s (reported once)", what)

    def _unknown(self, data: bytes) -> _Step:
        self._report(f"unknown command {data[:2].hex(' ')}")
        return 2, []

    def _esc(self, data: bytes) -> _Step:
        if len(data) < 2:
            return 0, []
        code = data[1]
        if code in _ESC_SETTINGS or code in _ESC_IGNORED or code in (ord("d"), ord("J"), ord("c")):
            return self._esc_fixed(data, code)
        if code in _ESC_SHORT:
            return 2, [_ESC_SHORT[code]]
        if code == ord("*"):
            return self._bit_image(data)
        if code == ord("("):
            return self._sized(data, 5, lambda _body: [])
        return self._unknown(data)

    def _esc_fixed(self, data: bytes, code: int) -> _Step:
        size = 4 if code == ord("c") else _ESC_IGNORED.get(code, 3)
        if len(data) < size:
            return 0, []
        if code in _ESC_SETTINGS:
            return size, [Setting(_ESC_SETTINGS[code], data[2])]
        if code == ord("d"):
            return size, [Feed(lines=data[2])]
        if code == ord("J"):
            return size, [Feed(dots=data[2])]
        return size, []

    def _bit_image(self, data: bytes) -> _Step:
        """``ESC * m nL nH d...``: one band of column-format image data, 8 or 24 dots tall."""
        if len(data) < 5:
            return 0, []
        mode, columns = data[2], data[3] | data[4] << 8
        if mode not in (0, 1, 32, 33):
            self._report(f"ESC * mode {mode}")
            return 5, []
        depth = 3 if mode >= 32 else 1
        size = 5 + columns * depth
        if len(data) < size:
            return 0, []
        return size, [Raster(columns, depth * 8, data[5:size], scale_x=2 if mode in (0, 32) else 1, inline=True)]

    def _gs(self, data: bytes) -> _Step:
        if len(data) < 2:
            return 0, []
        code = data[1]
        if code in _GS_SETTINGS or code in _GS_IGNORED or code == ord("r"):
            size = _GS_IGNORED.get(code, 3)
            if len(data) < size:
                return 0, []
            if code == ord("r"):
                return size, [StatusQuery("gs", data[2])]
            return size, [Setting(_GS_SETTINGS[code], data[2])] if code in _GS_SETTINGS else []
        handlers: dict[int, Callable[[bytes], _Step]] = {
            ord("V"): self._cut, ord("v"): self._raster, ord("k"): self._barcode, ord("("): self._gs_paren,
            ord("8"): self._gs_eight,
        }  # fmt: skip
        return handlers.get(code, self._unknown)(data)

    def _cut(self, data: bytes) -> _Step:
        if len(data) < 3:
            return 0, []
        mode = data[2]
        if mode in _CUT_MODES:
            return 3, [Cut(partial=_CUT_MODES[mode])]
        if mode in _CUT_FEED_MODES:
            if len(data) < 4:
                return 0, []
            return 4, [Cut(partial=_CUT_FEED_MODES[mode], feed=data[3])]
        self._report(f"GS V mode {mode}")
        return 3, []

    def _raster(self, data: bytes) -> _Step:
        """``GS v 0 m xL xH yL yH d...``: a raster image printed at once."""
        if len(data) < 8:
            return 0, []
        if data[2] != ord("0"):
            return self._unknown(data)
        mode, row_bytes, height = data[3], data[4] | data[5] << 8, data[6] | data[7] << 8
        size = 8 + row_bytes * height
        if size > MAX_PAYLOAD:
            self._report(f"GS v 0 of {size} bytes")
            return 8, []
        if len(data) < size:
            return 0, []
        scale_x, scale_y = (2 if mode & 1 else 1), (2 if mode & 2 else 1)
        return size, [Raster(row_bytes * 8, height, data[8:size], scale_x, scale_y)]

    def _barcode(self, data: bytes) -> _Step:
        """``GS k m d... NUL`` (m 0..6) or ``GS k m n d1..dn`` (m 65 and up)."""
        if len(data) < 3:
            return 0, []
        kind = data[2]
        if kind <= 6:
            return self._barcode_a(data)
        if kind < BARCODE_A_TO_B:
            self._report(f"GS k symbology {kind}")
            return 3, []
        if len(data) < 4 or len(data) < 4 + data[3]:
            return 0, []
        return 4 + data[3], [Barcode(kind, data[4 : 4 + data[3]])]

    def _barcode_a(self, data: bytes) -> _Step:
        end = data.find(b"\0", 3, 3 + MAX_BARCODE_DATA + 1)
        if end >= 0:
            return end + 1, [Barcode(data[2] + BARCODE_A_TO_B, data[3:end])]
        if len(data) > 3 + MAX_BARCODE_DATA:
            self._report("GS k data without its NUL")
            return 3, []
        return 0, []

    def _sized(self, data: bytes, header: int, body: Callable[[bytes], list[Op]]) -> _Step:
        """A command of 3 bytes, then a little-endian length (up to the end of ``header``), then the body."""
        if len(data) < header:
            return 0, []
        length = int.from_bytes(data[3:header], "little")
        if header + length > MAX_PAYLOAD:
            self._report(f"command {data[:3].hex(' ')} of {length} bytes")
            return header, []
        if len(data) < header + length:
            return 0, []
        return header + length, body(data[header : header + length])

    def _gs_paren(self, data: bytes) -> _Step:
        if len(data) < 3:
            return 0, []
        body: Callable[[bytes], list[Op]] = {ord("L"): self._graphics, ord("k"): self._symbol}.get(
            data[2], lambda _body: []
        )
        return self._sized(data, 5, body)

    def _gs_eight(self, data: bytes) -> _Step:
        if len(data) < 3:
            return 0, []
        return self._sized(data, 7, self._graphics) if data[2] == ord("L") else self._unknown(data)

    def _graphics(self, body: bytes) -> list[Op]:
        """The body of ``GS ( L`` / ``GS 8 L``: ``m fn ...``."""
        function = body[1] if len(body) >= 2 else -1
        if function in (2, 50):
            return [Graphics(None)]
        if function != 112 or len(body) < 10:
            return []
        scale_x, scale_y = body[3], body[4]
        width, height = body[6] | body[7] << 8, body[8] | body[9] << 8
        raster = body[10 : 10 + (width + 7) // 8 * height]
        if len(raster) < (width + 7) // 8 * height or scale_x not in (1, 2) or scale_y not in (1, 2):
            self._report("malformed graphics data")
            return []
        return [Graphics(Raster(width, height, raster, scale_x, scale_y))]

    def _symbol(self, body: bytes) -> list[Op]:
        """The body of ``GS ( k``: ``cn fn ...``; only the QR code (cn 49) is known."""
        if len(body) < 2 or body[0] != 49:
            self._report(f"2D symbol {body[:1].hex()}")
            return []
        function = body[1]
        if function == 67 and len(body) >= 3:
            return [Setting("qr-size", body[2])]
        if function == 69 and len(body) >= 3:
            return [Setting("qr-ec", body[2])]
        return [Qr(body[3:])] if function == 80 else [Qr(None)] if function == 81 else []

    def _dle(self, data: bytes) -> _Step:
        if len(data) < 2:
            return 0, []
        if data[1] not in (EOT, ENQ, DC4):
            return self._unknown(data)
        if len(data) < 3:
            return 0, []
        if data[1] == EOT:
            return 3, [StatusQuery("rt", data[2])]
        if data[1] == ENQ:
            return 3, []
        size = {1: 5, 2: 5, 7: 4, 8: 10}.get(data[2], 3)  # DLE DC4 fn: pulse, power-off, buffer clear
        return (size, []) if len(data) >= size else (0, [])

    def _fs(self, data: bytes) -> _Step:
        """``FS``: Kanji and NV image commands, none of which this printer uses."""
        if len(data) < 2:
            return 0, []
        size = {ord("p"): 4, ord("!"): 3, ord("-"): 3, ord("C"): 3}.get(data[1], 2)
        if len(data) < size:
            return 0, []
        self._report(f"FS command {data[:2].hex(' ')}")
        return size, []
