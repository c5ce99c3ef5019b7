"""Receipts and vouchers: every check names the field, text is printed as given or refused."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from hwd.drivers.escpos import render
from hwd.errors import InvalidArgument
from hwd.model import (
    Align,
    Barcode,
    BarcodeKind,
    Element,
    Feed,
    Logo,
    QrCode,
    Receipt,
    Separator,
    TextLine,
    Voucher,
    receipt_problem,
    voucher_problem,
)
from hwd.model.receipt import code128_fits, ean13_check_digit, format_amount
from hwd.services.printer_port import validate

EXPIRES = datetime.date(2026, 12, 31)


def _render(receipt: Receipt, logo: Image.Image | None) -> bytes:
    """The whole job as one byte string (render cuts it into segments at command boundaries)."""
    return b"".join(render(receipt, logo))


def voucher(**changes: object) -> Voucher:
    fields: dict[str, object] = {
        "code": "AB12-CD34",
        "amount_cents": 2500,
        "currency": "EUR",
        "expires": EXPIRES,
        "store": ("Magasin Été", "1 rue de la Paix"),
    }
    fields.update(changes)
    return Voucher(**fields)  # type: ignore[arg-type]


def problem_of(*elements: Element) -> tuple[str, str] | None:
    problem = receipt_problem(Receipt(elements))
    return None if problem is None else (problem.field, problem.message)


def test_french_text_and_euro_are_printable() -> None:
    assert problem_of(TextLine("Ça coûte 25 € à Noël, déjà payé ù"), Separator("="), Logo(), Feed(3)) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Łódź", "elements[1].text: 'Ł' (U+0141) cannot be printed in code page PC858"),
        ("ok → no", "elements[1].text: '→' (U+2192) cannot be printed in code page PC858"),
        ("tab\there", "elements[1].text: control character U+0009 is not allowed"),
        ("line\n", "elements[1].text: control character U+000A is not allowed"),
        ("\ud800", "elements[1].text: U+D800 cannot be printed in code page PC858"),
        ("x" * 49, "elements[1].text: 49 characters, at most 48 fit this line"),
    ],
)
def test_text_problems_name_field_and_character(text: str, message: str) -> None:
    assert problem_of(Logo(), TextLine(text)) == ("elements[1].text", message)


def test_double_width_halves_the_line() -> None:
    assert problem_of(TextLine("x" * 24, double_width=True)) is None
    assert problem_of(TextLine("x" * 25, double_width=True)) == (
        "elements[0].text",
        "elements[0].text: 25 characters, at most 24 fit this line",
    )
    assert problem_of(TextLine("x" * 48, double_height=True)) is None


@pytest.mark.parametrize("char", ["", "--", "\n", "Ł", " \u200b"])
def test_separator_is_one_printable_character(char: str) -> None:
    problem = problem_of(Separator(char))
    assert problem is not None
    assert problem[0] == "elements[0].char"


def test_ean13_check_digit() -> None:
    assert ean13_check_digit("400638133393") == 1
    assert problem_of(Barcode(BarcodeKind.EAN13, "400638133393")) is None
    assert problem_of(Barcode(BarcodeKind.EAN13, "4006381333931")) is None
    assert problem_of(Barcode(BarcodeKind.EAN13, "4006381333932")) == (
        "elements[0].data",
        "elements[0].data: EAN-13 check digit is 2, expected 1",
    )


@pytest.mark.parametrize("data", ["", "12345678901", "12345678901234", "40063813339a", "\uff14" * 12])
def test_ean13_shape(data: str) -> None:
    assert problem_of(Barcode(BarcodeKind.EAN13, data)) is not None


def test_code128_printable_ascii_that_fits_the_line() -> None:
    assert problem_of(Barcode(BarcodeKind.CODE128, "A{b} ~")) is None
    assert problem_of(Barcode(BarcodeKind.CODE128, "x" * 20)) is None
    assert code128_fits("x" * 20)
    assert not code128_fits("x" * 21)
    for data in ("", "é", "a\tb", "x" * 21, "x" * 49):
        problem = problem_of(Barcode(BarcodeKind.CODE128, data))
        assert problem is not None
        assert problem[0] == "elements[0].data"


def test_qr_and_feed_bounds() -> None:
    assert problem_of(QrCode("x" * 512), QrCode("é€漢字"), Feed(1), Feed(10)) is None
    assert problem_of(QrCode("")) is not None
    assert problem_of(QrCode("x" * 513)) is not None
    assert problem_of(QrCode("a\udc80")) is not None
    assert problem_of(Feed(0)) == ("elements[0].lines", "elements[0].lines: 0 is not in 1..10")
    assert problem_of(Feed(11)) is not None


def test_at_most_200_elements() -> None:
    assert problem_of(*[Feed(1)] * 200) is None
    assert problem_of(*[Feed(1)] * 201) == ("elements", "elements: 201 elements, at most 200")


def test_validate_raises_invalid_argument_with_field() -> None:
    with pytest.raises(InvalidArgument) as err:
        validate(Receipt((TextLine("ok"), TextLine("Straße ł"))))
    assert str(err.value) == "elements[1].text: 'ł' (U+0142) cannot be printed in code page PC858"
    assert err.value.metadata == {"field": "elements[1].text"}
    validate(Receipt((TextLine("Straße"),)))  # ß is in PC858


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"code": "ab12"}, "code"),
        ({"code": "A1"}, "code"),
        ({"code": "A" * 33}, "code"),
        ({"amount_cents": 0}, "amount_cents"),
        ({"amount_cents": 10_000_001}, "amount_cents"),
        ({"currency": "eur"}, "currency"),
        ({"store": ("ok", "Łódź")}, "store[1]"),
        ({"store": ("x" * 49,)}, "store[0]"),
    ],
)
def test_voucher_problems(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        validate(voucher(**changes))
    assert err.value.metadata == {"field": field}
    assert str(err.value).startswith(f"{field}: ")


def test_voucher_layout() -> None:
    v = voucher()
    assert voucher_problem(v) is None
    elements = v.to_receipt().elements
    assert elements[0] == Logo()
    assert elements[1] == TextLine("Magasin Été", align=Align.CENTER)
    texts = [e.text for e in elements if isinstance(e, TextLine)]
    assert texts[2:] == ["BON D'ACHAT", "25,00 €", "Valable jusqu'au 31/12/2026", "AB12-CD34"]
    big = next(e for e in elements if isinstance(e, TextLine) and e.text == "25,00 €")
    assert (big.double_width, big.double_height, big.align) == (True, True, Align.CENTER)
    assert Barcode(BarcodeKind.CODE128, "AB12-CD34") in elements
    assert QrCode("AB12-CD34") in elements
    assert isinstance(elements[-1], Feed)


def test_long_voucher_code_has_no_barcode_but_text_and_qr() -> None:
    v = voucher(code="A" * 32)
    assert voucher_problem(v) is None
    elements = v.to_receipt().elements
    assert not any(isinstance(e, Barcode) for e in elements)
    assert QrCode("A" * 32) in elements


@pytest.mark.parametrize(
    ("cents", "currency", "text"),
    [
        (2500, "EUR", "25,00 €"),
        (1, "EUR", "0,01 €"),
        (10_000_000, "EUR", "100 000,00 €"),
        (123456, "CHF", "1 234,56 CHF"),
    ],
)
def test_format_amount(cents: int, currency: str, text: str) -> None:
    assert format_amount(cents, currency) == text


# ---- properties --------------------------------------------------------------------------------------------


@given(st.text(max_size=60), st.booleans())
def test_any_text_validates_and_renders_or_is_refused_by_name(text: str, wide: bool) -> None:
    receipt = Receipt((Feed(1), TextLine(text, double_width=wide)))
    problem = receipt_problem(receipt)
    if problem is None:
        data = _render(receipt, None)
        assert text.encode("cp858") in data
    else:
        assert problem.field == "elements[1].text"
        assert problem.message.startswith("elements[1].text: ")


@given(st.text(max_size=600))
def test_any_qr_or_barcode_data_renders_or_is_refused(data: str) -> None:
    for element in (QrCode(data), Barcode(BarcodeKind.CODE128, data), Barcode(BarcodeKind.EAN13, data)):
        problem = receipt_problem(Receipt((element,)))
        if problem is None:
            assert _render(Receipt((element,)), None).endswith(b"\x1dV\x00")
        else:
            assert problem.field == "elements[0].data"


_printable = st.text(st.characters(codec="cp858", exclude_categories=["Cc"]), max_size=24)
_elements = st.one_of(
    st.builds(TextLine, _printable, st.booleans(), st.booleans(), st.booleans(), st.booleans(), st.sampled_from(Align)),
    st.builds(Separator, st.sampled_from("-=*_.~#é€")),
    st.builds(
        Barcode,
        st.just(BarcodeKind.CODE128),
        st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=20),
    ),
    st.builds(Barcode, st.just(BarcodeKind.EAN13), st.from_regex(r"[0-9]{12}", fullmatch=True)),
    st.builds(QrCode, st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=64)),
    st.just(Logo()),
    st.builds(Feed, st.integers(1, 10)),
)


@given(st.lists(_elements, max_size=12))
def test_valid_receipts_always_render(elements: list[Element]) -> None:
    receipt = Receipt(tuple(elements))
    assert receipt_problem(receipt) is None
    data = _render(receipt, None)
    assert data.startswith(b"\x1b@\x1bt\x13")
    assert data.endswith(b"\x1dV\x00")
