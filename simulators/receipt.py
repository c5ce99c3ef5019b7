"""Draws ESC/POS operations (:mod:`simulators.escpos`) onto an 80 mm receipt: 576 dots, 203 dpi.

The receipt is a Pillow 1-bit image (0 black, 1 white) that grows with the content. Text uses
Pillow's built-in 6x11 bitmap font, doubled into Font A's 12x24 cell (48 characters per line)
or stretched into Font B's 9x17 cell; double width and height scale the cell, bold draws the
glyph twice 1 dot apart. Barcodes are drawn from their data (python-barcode gives the modules),
QR codes with the ``qrcode`` package.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, replace
from typing import Any

import qrcode  # type: ignore[import-untyped]
from barcode import get_barcode_class  # type: ignore[import-untyped]
from PIL import Image, ImageChops, ImageDraw, ImageFont

from simulators import escpos
from simulators.escpos import Op

log = logging.getLogger(__name__)

WIDTH = 576
WHITE, BLACK = 1, 0
#: Font A and Font B cells in dots.
CELLS = {0: (12, 24), 1: (9, 17)}
DEFAULT_SPACING = 30
TAB_COLUMNS = 8
#: ``ESC t n`` tables this printer has, as Python codecs.
CODE_PAGES = {
    0: "cp437", 2: "cp850", 3: "cp860", 4: "cp863", 5: "cp865", 13: "cp857", 14: "cp737", 15: "iso8859_7",
    16: "cp1252", 17: "cp866", 18: "cp852", 19: "cp858",
}  # fmt: skip
#: ``GS k`` B-form symbologies python-barcode can draw.
SYMBOLOGIES = {65: "upca", 67: "ean13", 68: "ean8", 69: "code39", 73: "code128"}
QR_ERRORS = {
    48: qrcode.ERROR_CORRECT_L,
    49: qrcode.ERROR_CORRECT_M,
    50: qrcode.ERROR_CORRECT_Q,
    51: qrcode.ERROR_CORRECT_H,
}
QR_QUIET_MODULES = 4
#: The built-in font has Latin-1 only; the euro sign (in PC858 and WPC1252) is drawn from this 6x11 bitmap.
EURO = ("......", "......", "..###.", ".#...#", "####..", ".#....", "####..", ".#...#", "..###.", "......", "......")


@dataclass(frozen=True, slots=True)
class Modes:
    """The print modes that ``ESC @`` restores."""

    font: int = 0
    bold: bool = False
    underline: int = 0
    scale_x: int = 1
    scale_y: int = 1
    align: int = 0
    codepage: int = 0
    spacing: int = DEFAULT_SPACING
    barcode_height: int = 162
    barcode_width: int = 3
    hri_position: int = 0
    hri_font: int = 0
    qr_size: int = 3
    qr_error: int = 48


class Receipt:
    """One receipt being printed: the dot rows printed so far, the line buffer and the modes."""

    def __init__(self) -> None:
        self.modes = Modes()
        self._bands: list[Image.Image] = []
        self._line: list[Image.Image] = []
        self._line_width = 0
        self._graphics: escpos.Raster | None = None
        self._qr = b""
        self._reported: set[str] = set()

    @property
    def height(self) -> int:
        """Dot rows printed so far (the line buffer not included)."""
        return sum(band.height for band in self._bands)

    def apply(self, op: Op) -> None:
        """Print or record one operation. :class:`~simulators.escpos.Cut` and status queries are not drawn."""
        match op:
            case escpos.Text(data=data):
                self._text(data)
            case escpos.Feed(lines=lines, dots=dots):
                self.feed(lines, dots)
            case escpos.Setting(key=key, value=value):
                self._setting(key, value)
            case escpos.Raster(inline=True):
                self._add_to_line(raster_image(op))
            case escpos.Raster():
                self._print_block(raster_image(op))
            case escpos.Graphics(raster=None) if self._graphics is not None:
                self._print_block(raster_image(self._graphics))
            case escpos.Graphics(raster=raster) if raster is not None:
                self._graphics = raster
            case escpos.Barcode(symbology=symbology, data=data):
                self._barcode(symbology, data)
            case escpos.Qr(data=None) if self._qr:
                self._print_block(qr_image(self._qr, self.modes.qr_size, self.modes.qr_error))
            case escpos.Qr(data=data) if data is not None:
                self._qr = data
            case escpos.Initialize():
                self.modes, self._line, self._line_width = Modes(), [], 0

    def feed(self, lines: int = 0, dots: int = 0) -> None:
        """Print the line buffer, then feed ``lines`` lines (at least the line's height) or ``dots`` rows."""
        content = max((item.height for item in self._line), default=0)
        advance = max(content, lines * self.modes.spacing) if lines else content + dots
        band = Image.new("1", (WIDTH, advance), WHITE)
        x = self._aligned(self._line_width)
        for item in self._line:
            band.paste(item, (x, content - item.height))
            x += item.width
        self._line, self._line_width = [], 0
        self._bands.append(band)

    def finish(self) -> Image.Image | None:
        """End the receipt (a cut): the image of everything printed, or None if nothing was; then a fresh one."""
        return self.tear(self.height, mark=False)

    def tear(self, rows: int, mark: bool = True) -> Image.Image | None:
        """The paper ran out: keep the first ``rows`` rows, draw a tear mark below, start a fresh receipt."""
        bands, self._bands, self._line, self._line_width = self._bands, [], [], 0
        if rows <= 0 and not mark:
            return None
        tear = 12 if mark else 0
        image = Image.new("1", (WIDTH, rows + tear), WHITE)
        y = 0
        for band in bands:
            image.paste(band, (0, y))
            y += band.height
        if mark:
            draw = ImageDraw.Draw(image)
            points = [(x, rows + (tear - 1 if (x // 8) % 2 else 0)) for x in range(0, WIDTH + 8, 8)]
            draw.line(points, fill=BLACK, width=2)
        return image

    def _setting(self, key: str, value: int) -> None:
        changes = mode_changes(key, value)
        if changes:
            self.modes = replace(self.modes, **changes)
        if key == "codepage" and value not in CODE_PAGES:
            self._report(f"code page {value} (PC437 is used)")

    def _text(self, data: bytes) -> None:
        modes = self.modes
        for char in decode_text(data, modes.codepage):
            if char == "\t":
                cell = CELLS[modes.font][0] * TAB_COLUMNS
                self._add_to_line(Image.new("1", (cell - self._line_width % cell, 1), WHITE))
                continue
            self._add_to_line(glyph(char, modes.font, modes.bold, modes.underline, modes.scale_x, modes.scale_y))

    def _add_to_line(self, item: Image.Image) -> None:
        if self._line_width + item.width > WIDTH and self._line:
            self.feed(lines=1)  # the line is full: the printer prints it and goes on with the next
        self._line.append(item.crop((0, 0, min(item.width, WIDTH), item.height)))
        self._line_width += self._line[-1].width

    def _print_block(self, image: Image.Image) -> None:
        """Images, barcodes and QR codes print at once, below whatever is in the line buffer."""
        if self._line:
            self.feed()
        band = Image.new("1", (WIDTH, image.height), WHITE)
        band.paste(image.crop((0, 0, min(image.width, WIDTH), image.height)), (self._aligned(image.width), 0))
        self._bands.append(band)

    def _aligned(self, width: int) -> int:
        return max(0, (WIDTH - width) // 2 if self.modes.align == 1 else WIDTH - width if self.modes.align == 2 else 0)

    def _barcode(self, symbology: int, data: bytes) -> None:
        encoded = barcode_modules(symbology, barcode_text(symbology, data))
        if encoded is None or len(encoded[0]) * self.modes.barcode_width > WIDTH:
            self._report(f"barcode {symbology} {data!r}: not printable (symbology, data or width)")
            return
        modes, (modules, text) = self.modes, encoded
        image = Image.new("1", (len(modules) * modes.barcode_width, modes.barcode_height), WHITE)
        draw = ImageDraw.Draw(image)
        for index, module in enumerate(modules):
            if module == "1":
                left = index * modes.barcode_width
                draw.rectangle((left, 0, left + modes.barcode_width - 1, modes.barcode_height - 1), fill=BLACK)
        hri = hri_image(text, modes.hri_font)
        parts = ([hri] if modes.hri_position in (1, 3) else []) + [image]
        parts += [hri] if modes.hri_position in (2, 3) else []
        for part in parts:
            self._print_block(part)

    def _report(self, what: str) -> None:
        if what not in self._reported:
            self._reported.add(what)
            log.warning("receipt: %s", what)


def decode_text(data: bytes, codepage: int) -> str:
    """Printer bytes in code page ``codepage`` (``ESC t n``; an unknown one reads as PC437)."""
    return data.decode(CODE_PAGES.get(codepage, "cp437"), errors="replace")


def mode_changes(key: str, value: int) -> dict[str, Any]:
    """The :class:`Modes` fields that setting ``key`` with argument ``value`` changes."""
    small = value % 48  # several commands take n or the ASCII digit n + 48
    table: dict[str, dict[str, Any]] = {
        "mode": {"font": value & 1, "bold": bool(value & 8), "underline": int(bool(value & 0x80)),
                 "scale_x": 2 if value & 0x20 else 1, "scale_y": 2 if value & 0x10 else 1},
        "bold": {"bold": bool(value & 1)},
        "underline": {"underline": min(small, 2)},
        "size": {"scale_x": (value >> 4 & 7) + 1, "scale_y": (value & 7) + 1},
        "align": {"align": small} if small <= 2 else {},
        "codepage": {"codepage": value},
        "font": {"font": small} if small <= 1 else {},
        "line-spacing": {"spacing": DEFAULT_SPACING if value < 0 else value},
        "barcode-height": {"barcode_height": max(value, 1)},
        "barcode-width": {"barcode_width": value} if 1 <= value <= 6 else {},
        "hri-position": {"hri_position": small} if small <= 3 else {},
        "hri-font": {"hri_font": small} if small <= 1 else {},
        "qr-size": {"qr_size": value} if 1 <= value <= 16 else {},
        "qr-ec": {"qr_error": value} if value in QR_ERRORS else {},
    }  # fmt: skip
    return table.get(key, {})


@functools.cache
def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default_imagefont()


@functools.cache
def glyph(char: str, font: int, bold: bool, underline: int, scale_x: int, scale_y: int) -> Image.Image:
    """One character cell, black on white, with its modes applied."""
    base = Image.new("1", (6, 11), WHITE)
    if char == "€":
        for y, row in enumerate(EURO):
            for x, dot in enumerate(row):
                if dot == "#":
                    base.putpixel((x, y), BLACK)
    else:
        shown = char if ord(char) < 256 else "?"
        ImageDraw.Draw(base).text((0, 0), shown, font=_font(), fill=BLACK)
    width, height = CELLS[font]
    cell = Image.new("1", (width, height), WHITE)
    if font == 0:
        cell.paste(base.resize((12, 22), Image.Resampling.NEAREST), (0, 1))
    else:
        cell.paste(base.resize((9, 16), Image.Resampling.NEAREST), (0, 0))
    if bold:
        cell = ImageChops.logical_and(cell, ImageChops.offset(cell, 1, 0))
    if underline:
        ImageDraw.Draw(cell).rectangle((0, height - underline, width - 1, height - 1), fill=BLACK)
    return cell.resize((width * scale_x, height * scale_y), Image.Resampling.NEAREST)


def hri_image(text: str, font: int) -> Image.Image:
    """The human-readable line under or above a barcode."""
    cells = [glyph(char, font, False, 0, 1, 1) for char in text[: WIDTH // CELLS[font][0]]]
    image = Image.new("1", (sum(cell.width for cell in cells) or 1, CELLS[font][1] + 4), WHITE)
    for index, cell in enumerate(cells):
        image.paste(cell, (index * cell.width, 2))
    return image


def raster_image(raster: escpos.Raster) -> Image.Image:
    """A raster's bits (1 = black) as a black-on-white image, scaled."""
    if raster.inline:  # column format: each column's bytes make one row of the transposed image
        image = Image.frombytes("1", (raster.height, raster.width), raster.data).transpose(Image.Transpose.TRANSPOSE)
    else:
        image = Image.frombytes("1", ((raster.width + 7) // 8 * 8, raster.height), raster.data)
    image = ImageChops.invert(image).crop((0, 0, raster.width, raster.height))
    size = (raster.width * raster.scale_x, raster.height * raster.scale_y)
    return image.resize(size, Image.Resampling.NEAREST) if size != image.size else image


def barcode_text(symbology: int, data: bytes) -> str:
    """The characters a barcode encodes; for CODE128 the ``{A``/``{B``/``{C`` code set switches are resolved."""
    if symbology != 73:
        return data.decode("ascii", errors="replace")
    text, code_set, index = [], ord("B"), 0
    while index < len(data):
        byte = data[index]
        if byte == ord("{") and index + 1 < len(data):
            following = data[index + 1]
            if following in b"ABC":
                code_set = following
            elif following == ord("{"):
                text.append("{")
            index += 2
            continue
        text.append(f"{byte:02d}" if code_set == ord("C") else chr(byte))
        index += 1
    return "".join(text)


def barcode_modules(symbology: int, text: str) -> tuple[str, str] | None:
    """The bars and spaces (``"1"``/``"0"``, one per module) and the human-readable text.

    :returns: None if the data does not fit the symbology.
    """
    name = SYMBOLOGIES.get(symbology)
    if name is None or not text:
        return None
    try:
        if name in ("ean13", "ean8", "upca"):
            digits = {"ean13": 12, "ean8": 7, "upca": 11}[name]
            if not text.isdigit() or len(text) not in (digits, digits + 1):
                return None
            code = get_barcode_class(name)(text[:digits])
            if len(text) > digits and code.get_fullcode() != text:
                return None  # a wrong check digit: the printer refuses it
        else:
            code = get_barcode_class(name)(text, **({"add_checksum": False} if name == "code39" else {}))
        modules: str = code.build()[0]
        readable: str = code.get_fullcode() if name != "code128" else text
    except Exception:  # python-barcode raises many kinds on bad data
        return None
    return modules, readable


def qr_image(data: bytes, module: int, error: int) -> Image.Image:
    """A QR code with its quiet zone, ``module`` dots per module."""
    code = qrcode.QRCode(error_correction=QR_ERRORS.get(error, qrcode.ERROR_CORRECT_L), box_size=1, border=0)
    code.add_data(data)
    code.make(fit=True)
    matrix = code.get_matrix()
    size = (len(matrix) + 2 * QR_QUIET_MODULES) * module
    image = Image.new("1", (size, size), WHITE)
    draw = ImageDraw.Draw(image)
    for row, cells in enumerate(matrix):
        for column, dark in enumerate(cells):
            if dark:
                left, top = (column + QR_QUIET_MODULES) * module, (row + QR_QUIET_MODULES) * module
                draw.rectangle((left, top, left + module - 1, top + module - 1), fill=BLACK)
    return image
