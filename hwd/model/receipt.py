"""Receipts and vouchers for the 80 mm thermal printer: pure value types and their checks, no I/O.

The checks return a ``ReceiptProblem`` (the field path and the message) rather than raising, so
this layer stays below hwd.errors; hwd/services/printer_port.py turns a problem into an
InvalidArgument. A problem always names the field and, for text, the character at fault: a
character is never replaced, a receipt is printed as asked or not at all.
"""

from __future__ import annotations

import datetime
import enum
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CODE_PAGE = "cp858"  # the Python codec of the printer's code page PC858 (Latin-1 and the euro sign)
CODE_PAGE_NAME = "PC858"
LINE_WIDTH = 48  # characters of font A on 80 mm paper (512 dots of 12 dots, minus the margins)
PRINT_WIDTH_DOTS = 512
MIN_MODULE_DOTS = 2  # the thinnest bar GS w allows on Epson printers
MAX_ELEMENTS = 200
MAX_CODE128 = 48
MAX_QR = 512
MAX_FEED = 10
MAX_AMOUNT_CENTS = 10_000_000
CODE128_FIXED_MODULES = 35  # start (11), check symbol (11) and stop (13)
CODE128_SYMBOL_MODULES = 11

_VOUCHER_CODE = re.compile(r"[A-Z0-9-]{4,32}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_DIGITS = re.compile(r"[0-9]{12,13}")


class Align(enum.Enum):
    """Horizontal alignment of a text line."""

    LEFT = "left"
    CENTER = "center"
    RIGHT = "right"


class BarcodeKind(enum.Enum):
    """The barcode symbologies a receipt may carry."""

    CODE128 = "CODE128"
    EAN13 = "EAN13"


@dataclass(frozen=True)
class TextLine:
    """One line of text, without its newline; every character must exist in PC858."""

    text: str
    bold: bool = False
    underline: bool = False
    double_width: bool = False
    double_height: bool = False
    align: Align = Align.LEFT


@dataclass(frozen=True)
class Separator:
    """A full-width line made of one character."""

    char: str = "-"


@dataclass(frozen=True)
class Barcode:
    """A barcode; EAN-13 data is 12 digits (check digit added) or 13 with a correct check digit."""

    kind: BarcodeKind
    data: str


@dataclass(frozen=True)
class QrCode:
    """A QR code of 1 to 512 characters."""

    data: str


@dataclass(frozen=True)
class Logo:
    """The logo configured for this kiosk (nothing when none is configured)."""


@dataclass(frozen=True)
class Feed:
    """Blank lines, 1 to 10."""

    lines: int


Element = TextLine | Separator | Barcode | QrCode | Logo | Feed


@dataclass(frozen=True)
class Receipt:
    """A receipt: its elements in order; the printer cuts after the last one."""

    elements: tuple[Element, ...]


@dataclass(frozen=True)
class ReceiptProblem:
    """Why a receipt or voucher cannot be printed.

    ``field`` is the path of the bad field (``elements[3].text``, ``store[0]``); ``message`` starts
    with it, e.g. ``elements[3].text: 'ł' (U+0142) cannot be printed in code page PC858``.
    """

    field: str
    message: str


@dataclass(frozen=True)
class Voucher:
    """A voucher: a receipt of a standard layout whose code is printed as text, barcode and QR code.

    ``store`` holds the store's name and address lines; ``expires`` is the last day it can be used.
    """

    code: str
    amount_cents: int
    currency: str  # ISO 4217, "EUR" for the euro
    expires: datetime.date
    store: tuple[str, ...] = ()

    def to_receipt(self) -> Receipt:
        """The standard voucher layout (French wording).

        The CODE128 barcode is left out when the code is too long for the paper width (see
        code128_fits); the text and the QR code always carry the code.

        :returns: the receipt to print.
        """
        elements: list[Element] = [Logo()]
        elements += [TextLine(line, align=Align.CENTER) for line in self.store]
        elements += [
            Separator(),
            _big("BON D'ACHAT"),
            _big(format_amount(self.amount_cents, self.currency)),
            TextLine(f"Valable jusqu'au {self.expires:%d/%m/%Y}", align=Align.CENTER),
            Separator(),
            TextLine(self.code, bold=True, align=Align.CENTER),
        ]
        if code128_fits(self.code):
            elements.append(Barcode(BarcodeKind.CODE128, self.code))
        elements += [QrCode(self.code), Feed(2)]
        return Receipt(tuple(elements))


def _big(text: str) -> TextLine:
    return TextLine(text, bold=True, double_width=True, double_height=True, align=Align.CENTER)


def format_amount(cents: int, currency: str) -> str:
    """An amount the French way: "1 250,00 €" (plain spaces; the currency code for non-euro).

    :param cents: the amount in cents (not negative).
    :param currency: the ISO 4217 code.
    :returns: the text.
    """
    units, rest = divmod(cents, 100)
    grouped = f"{units:,}".replace(",", " ")
    symbol = "€" if currency == "EUR" else currency
    return f"{grouped},{rest:02d} {symbol}"


def ean13_check_digit(digits: str) -> int:
    """The EAN-13 check digit of 12 digits (weights 1, 3, 1, 3 ... from the left).

    :param digits: the first 12 digits.
    :returns: the 13th digit.
    """
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits[:12]))
    return (10 - total % 10) % 10


def code128_fits(data: str) -> bool:
    """Whether a CODE128 (code set B) barcode of ``data`` fits the line at the thinnest bar.

    :param data: the barcode's data.
    :returns: True when start, data, check and stop symbols fit PRINT_WIDTH_DOTS.
    """
    modules = CODE128_FIXED_MODULES + CODE128_SYMBOL_MODULES * len(data)
    return modules * MIN_MODULE_DOTS <= PRINT_WIDTH_DOTS


def _char_name(ch: str) -> str:
    code = f"U+{ord(ch):04X}"
    return f"'{ch}' ({code})" if ch.isprintable() else code


def text_problem(text: str, field: str, width: int = LINE_WIDTH) -> ReceiptProblem | None:
    """Checks one line of text: no control character, every character in PC858, at most ``width``.

    :param text: the text.
    :param field: its path, for the problem.
    :param width: the characters that fit the line at the chosen size.
    :returns: the first problem, or None.
    """
    for ch in text:
        if unicodedata.category(ch) == "Cc":
            return ReceiptProblem(field, f"{field}: control character {_char_name(ch)} is not allowed")
        try:
            ch.encode(CODE_PAGE)
        except UnicodeEncodeError:
            return ReceiptProblem(field, f"{field}: {_char_name(ch)} cannot be printed in code page {CODE_PAGE_NAME}")
    if len(text) > width:
        return ReceiptProblem(field, f"{field}: {len(text)} characters, at most {width} fit this line")
    return None


def _text_line_problem(line: TextLine, field: str) -> ReceiptProblem | None:
    width = LINE_WIDTH // 2 if line.double_width else LINE_WIDTH
    return text_problem(line.text, f"{field}.text", width)


def _separator_problem(sep: Separator, field: str) -> ReceiptProblem | None:
    field = f"{field}.char"
    if len(sep.char) != 1 or not sep.char.isprintable():
        return ReceiptProblem(field, f"{field}: one printable character is required")
    return text_problem(sep.char, field)


def _code128_problem(data: str, field: str) -> ReceiptProblem | None:
    if not 1 <= len(data) <= MAX_CODE128 or any(not " " <= ch <= "~" for ch in data):
        return ReceiptProblem(field, f"{field}: CODE128 takes 1 to {MAX_CODE128} printable ASCII characters")
    if not code128_fits(data):
        return ReceiptProblem(
            field, f"{field}: {len(data)} characters of CODE128 are wider than the {PRINT_WIDTH_DOTS}-dot line"
        )
    return None


def _ean13_problem(data: str, field: str) -> ReceiptProblem | None:
    if not _DIGITS.fullmatch(data):
        return ReceiptProblem(field, f"{field}: EAN-13 takes 12 digits, or 13 with the check digit")
    check = ean13_check_digit(data)
    if len(data) == 13 and int(data[12]) != check:
        return ReceiptProblem(field, f"{field}: EAN-13 check digit is {data[12]}, expected {check}")
    return None


def _barcode_problem(code: Barcode, field: str) -> ReceiptProblem | None:
    field = f"{field}.data"
    if code.kind is BarcodeKind.EAN13:
        return _ean13_problem(code.data, field)
    if code.kind is BarcodeKind.CODE128:
        return _code128_problem(code.data, field)
    return ReceiptProblem(field, f"{field}: unknown barcode kind")


def _qr_problem(code: QrCode, field: str) -> ReceiptProblem | None:
    field = f"{field}.data"
    if not 1 <= len(code.data) <= MAX_QR:
        return ReceiptProblem(field, f"{field}: a QR code holds 1 to {MAX_QR} characters")
    bad = next((ch for ch in code.data if unicodedata.category(ch) == "Cs"), None)
    if bad is not None:
        return ReceiptProblem(field, f"{field}: {_char_name(bad)} is a lone surrogate")
    return None


def _feed_problem(feed: Feed, field: str) -> ReceiptProblem | None:
    field = f"{field}.lines"
    if not 1 <= feed.lines <= MAX_FEED:
        return ReceiptProblem(field, f"{field}: {feed.lines} is not in 1..{MAX_FEED}")
    return None


def _logo_problem(logo: Logo, field: str) -> ReceiptProblem | None:
    return None


_CHECKS: dict[type[Any], Callable[[Any, str], ReceiptProblem | None]] = {
    TextLine: _text_line_problem,
    Separator: _separator_problem,
    Barcode: _barcode_problem,
    QrCode: _qr_problem,
    Feed: _feed_problem,
    Logo: _logo_problem,
}


def element_problem(element: Element, field: str) -> ReceiptProblem | None:
    """Checks one element of a receipt.

    :param element: the element.
    :param field: its path (``elements[3]``).
    :returns: the first problem, or None.
    """
    check = _CHECKS.get(type(element))
    if check is None:
        return ReceiptProblem(field, f"{field}: unknown element {type(element).__name__}")
    return check(element, field)


def receipt_problem(receipt: Receipt) -> ReceiptProblem | None:
    """Checks a whole receipt: at most 200 elements, each printable as given.

    :param receipt: the receipt.
    :returns: the first problem, or None when it can be printed.
    """
    if len(receipt.elements) > MAX_ELEMENTS:
        return ReceiptProblem("elements", f"elements: {len(receipt.elements)} elements, at most {MAX_ELEMENTS}")
    for index, element in enumerate(receipt.elements):
        problem = element_problem(element, f"elements[{index}]")
        if problem is not None:
            return problem
    return None


def voucher_problem(voucher: Voucher) -> ReceiptProblem | None:
    """Checks a voucher's fields, then the receipt it prints as.

    :param voucher: the voucher.
    :returns: the first problem, or None when it can be printed.
    """
    if not _VOUCHER_CODE.fullmatch(voucher.code):
        return ReceiptProblem("code", "code: 4 to 32 characters of A-Z, 0-9 and '-' are required")
    if not 1 <= voucher.amount_cents <= MAX_AMOUNT_CENTS:
        return ReceiptProblem("amount_cents", f"amount_cents: {voucher.amount_cents} is not in 1..{MAX_AMOUNT_CENTS}")
    if not _CURRENCY.fullmatch(voucher.currency):
        return ReceiptProblem("currency", "currency: three upper-case letters (ISO 4217) are required")
    for index, line in enumerate(voucher.store):
        problem = text_problem(line, f"store[{index}]")
        if problem is not None:
            return problem
    return receipt_problem(voucher.to_receipt())
