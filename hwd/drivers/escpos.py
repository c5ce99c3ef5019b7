"""Renders a receipt to the ESC/POS bytes of an Epson-compatible 80 mm printer.

python-escpos's ``Dummy`` printer collects the bytes. Its automatic code page selection is
switched off: the printer is put in PC858 once, after ESC @ (which resets the code page to
PC437), and text is encoded with Python's cp858 codec and sent raw, so a character is never
replaced by "?" or sent in another page. Receipts are validated before they get here.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import qrcode  # type: ignore[import-untyped]
from escpos.printer import Dummy  # type: ignore[import-untyped]
from PIL import Image

from hwd.errors import ConfigError
from hwd.model.receipt import (
    CODE128_FIXED_MODULES,
    CODE128_SYMBOL_MODULES,
    CODE_PAGE,
    LINE_WIDTH,
    MIN_MODULE_DOTS,
    PRINT_WIDTH_DOTS,
    Barcode,
    BarcodeKind,
    Element,
    Feed,
    Logo,
    QrCode,
    Receipt,
    Separator,
    TextLine,
)

ESC = b"\x1b"
SELECT_CODE_PAGE = ESC + b"t"
QR_MAX_BOX = 6
QR_BORDER = 1
BARCODE_HEIGHT = 80
_ESCPOS_ENCODING = "CP858"


def render(receipt: Receipt, logo: Image.Image | None, profile: str = "TM-T88V") -> list[bytes]:
    """The bytes that print ``receipt`` and cut the paper, one segment per command group (the
    set-up, each element, the cut), so that status queries go only between whole commands: a
    query inside an image's data would be read as image data. The same input gives the same bytes.

    :param receipt: a receipt that passed receipt_problem (nothing is checked again here).
    :param logo: the kiosk's logo for Logo elements; None prints nothing for them.
    :param profile: the python-escpos printer profile (the model's code pages and features).
    :returns: segments: ESC @ and ESC t <PC858>, each element, then a feed and a full cut.
    :raises ConfigError: the profile is unknown or has no PC858 code page.
    """
    page = code_page_number(profile)
    printer = Dummy(profile=profile, magic_encode_args={"encoding": _ESCPOS_ENCODING, "disabled": True})
    printer.hw("INIT")
    printer._raw(SELECT_CODE_PAGE + bytes((page,)))
    ends = [len(printer.output)]
    for element in receipt.elements:
        _render_element(printer, element, logo)
        ends.append(len(printer.output))
    printer.cut()
    out = bytes(printer.output)
    ends.append(len(out))
    return [out[a:b] for a, b in zip([0, *ends], ends, strict=False) if b > a]


def code_page_number(profile: str) -> int:
    """The ESC t number of PC858 in a printer profile (19 on Epson TM printers).

    :param profile: the python-escpos profile name.
    :returns: the code page number.
    :raises ConfigError: the profile is unknown or has no PC858 code page.
    """
    try:
        pages = Dummy(profile=profile).profile.get_code_pages()
    except Exception as exc:  # python-escpos raises its own error class for an unknown profile
        raise ConfigError(f"printer.profile: unknown printer profile {profile!r}") from exc
    if _ESCPOS_ENCODING not in pages:
        raise ConfigError(f"printer.profile: profile {profile!r} has no PC858 code page")
    return int(pages[_ESCPOS_ENCODING])


def _render_element(printer: Dummy, element: Element, logo: Image.Image | None) -> None:
    if isinstance(element, TextLine):
        _text(printer, element)
    elif isinstance(element, Separator):
        _style(printer, TextLine(""))
        printer._raw((element.char * LINE_WIDTH).encode(CODE_PAGE) + b"\n")
    elif isinstance(element, Barcode):
        _barcode(printer, element)
    elif isinstance(element, QrCode):
        _style(printer, TextLine(""))
        printer.qr(element.data, native=False, size=qr_box_size(element.data), center=True)
    elif isinstance(element, Logo):
        if logo is not None:
            _style(printer, TextLine(""))
            printer.image(fit_width(logo), center=True)
    elif isinstance(element, Feed):
        printer.ln(element.lines)


def _style(printer: Dummy, line: TextLine) -> None:
    """Sets every text attribute, so no element inherits the style of the one before."""
    printer.set(
        normal_textsize=True,
        double_width=line.double_width,
        double_height=line.double_height,
        bold=line.bold,
        underline=1 if line.underline else 0,
        align=line.align.value,
    )


def _text(printer: Dummy, line: TextLine) -> None:
    _style(printer, line)
    printer._raw(line.text.encode(CODE_PAGE) + b"\n")


def _barcode(printer: Dummy, code: Barcode) -> None:
    _style(printer, TextLine(""))
    if code.kind is BarcodeKind.EAN13:
        # 12 digits: the printer adds the check digit (a 13th was checked by receipt_problem)
        data, kind, width = code.data[:12], "EAN13", 3
    else:
        # GS k 73 (function B) wants the code set first; a literal "{" is written "{{"
        data, kind = "{B" + code.data.replace("{", "{{"), "CODE128"
        modules = CODE128_FIXED_MODULES + CODE128_SYMBOL_MODULES * len(code.data)
        width = 3 if modules * 3 <= PRINT_WIDTH_DOTS else MIN_MODULE_DOTS
    with contextlib.redirect_stdout(io.StringIO()):  # python-escpos prints which renderer it used
        printer.barcode(data, kind, height=BARCODE_HEIGHT, width=width, pos="BELOW", function_type="B")


def qr_box_size(data: str) -> int:
    """The largest dot size per QR module (at most 6) whose symbol fits the printable width.

    :param data: the QR code's content.
    :returns: the size to pass to ``qr()``.
    """
    code = qrcode.QRCode(box_size=1, border=QR_BORDER, error_correction=qrcode.constants.ERROR_CORRECT_L)
    code.add_data(data)
    # best_fit only picks the version; make() would also choose a mask, which python-escpos does again.
    modules = 4 * int(code.best_fit()) + 17
    return max(1, min(QR_MAX_BOX, PRINT_WIDTH_DOTS // (modules + 2 * QR_BORDER)))


def fit_width(image: Image.Image) -> Image.Image:
    """Scales an image down to the printable width, keeping its proportions.

    :param image: the logo.
    :returns: the image itself when it fits, else a scaled copy.
    """
    if image.width <= PRINT_WIDTH_DOTS:
        return image
    height = max(1, round(image.height * PRINT_WIDTH_DOTS / image.width))
    return image.resize((PRINT_WIDTH_DOTS, height), Image.Resampling.LANCZOS)


def load_logo(path: Path) -> Image.Image:
    """Reads the kiosk's logo (PNG or BMP) once, scaled to the printable width.

    :param path: the file (printer.logo in the configuration).
    :returns: the image, loaded in memory.
    :raises ConfigError: naming printer.logo, when the file cannot be read as an image.
    """
    try:
        with Image.open(path) as image:
            image.load()
            return fit_width(image.copy())
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ConfigError(f"printer.logo: cannot read {path}: {exc}") from exc
