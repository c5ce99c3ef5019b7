"""The ESC/POS bytes of a receipt, asserted byte-exact where the layout is ours."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from PIL import Image

from hwd.drivers.escpos import code_page_number, fit_width, load_logo, qr_box_size, render
from hwd.errors import ConfigError
from hwd.model import Align, Barcode, BarcodeKind, Feed, Logo, QrCode, Receipt, Separator, TextLine, Voucher

INIT = b"\x1b@"
PC858 = b"\x1bt\x13"
CUT = b"\x1bd\x06\x1dV\x00"  # feed 6 lines, full cut
NORMAL = b"\x1b!\x00\x1b!\x00\x1b!\x00"  # python-escpos resets the print mode before the size


def _render(receipt: Receipt, logo: Image.Image | None) -> bytes:
    """The whole job as one byte string (render cuts it into segments at command boundaries)."""
    return b"".join(render(receipt, logo))


def style(bold: int = 0, underline: int = 0, align: int = 0) -> bytes:
    return NORMAL + b"\x1bE" + bytes((bold,)) + b"\x1b-" + bytes((underline,)) + b"\x1ba" + bytes((align,))


def test_text_is_pc858_after_init_and_code_page() -> None:
    data = _render(Receipt((TextLine("Café 5 €"),)), None)
    assert data == INIT + PC858 + style() + b"Caf\x82 5 \xd5\n" + CUT


def test_styles_and_sizes() -> None:
    line = TextLine("Ok", bold=True, underline=True, double_width=True, double_height=True, align=Align.RIGHT)
    data = _render(Receipt((line,)), None)
    assert data == INIT + PC858 + b"\x1b!\x00\x1b!\x00\x1b!0\x1bE\x01\x1b-\x01\x1ba\x02Ok\n" + CUT


def test_separator_fills_the_line() -> None:
    data = _render(Receipt((Separator("="), Feed(2))), None)
    assert data == INIT + PC858 + style() + b"=" * 48 + b"\n" + b"\n\n" + CUT


def test_code_page_select_comes_before_any_text() -> None:
    data = _render(Voucher("AB12", 2500, "EUR", datetime.date(2026, 12, 31), ("Été",)).to_receipt(), None)
    assert data.startswith(INIT + PC858)
    assert data.index(b"\x90t\x82") > data.index(PC858)  # "Été"
    assert b"25,00 \xd5" in data
    assert data.count(b"\x1bt") == 1  # nothing switches the page again
    assert data.endswith(CUT)


def test_code128_uses_function_b_with_code_set_b() -> None:
    data = _render(Receipt((Barcode(BarcodeKind.CODE128, "A{1"),)), None)
    # GS h 80, GS w 3, font A, HRI below, GS k 73 n "{B" data ("{" escaped as "{{")
    assert b"\x1dhP\x1dw\x03\x1df\x00\x1dH\x02\x1dkI\x06{BA{{1" in data


def test_long_code128_uses_thinner_bars() -> None:
    data = _render(Receipt((Barcode(BarcodeKind.CODE128, "X" * 20),)), None)
    assert b"\x1dw\x02" in data
    assert b"\x1dkI\x16{B" + b"X" * 20 in data


@pytest.mark.parametrize("digits", ["400638133393", "4006381333931"])
def test_ean13_sends_twelve_digits_with_function_b(digits: str) -> None:
    data = _render(Receipt((Barcode(BarcodeKind.EAN13, digits),)), None)
    assert b"\x1dkC\x0c400638133393" in data


def test_qr_is_an_image_that_fits_the_paper() -> None:
    data = _render(Receipt((QrCode("AB12-CD34"),)), None)
    assert b"\x1dv0" in data  # GS v 0 raster image, not the printer's own QR command
    assert b"\x1d(k" not in data
    assert qr_box_size("AB12-CD34") == 6
    assert 2 <= qr_box_size("€" * 512) < 6


def test_logo_is_scaled_and_centred() -> None:
    logo = Image.new("RGB", (1024, 100), "black")
    assert fit_width(logo).size == (512, 50)
    data = _render(Receipt((Logo(),)), logo)
    assert b"\x1dv0\x00\x40\x00\x32\x00" in data  # 64 bytes (512 dots) wide, 50 rows
    assert _render(Receipt((Logo(),)), None) == INIT + PC858 + CUT


def test_rendering_is_deterministic() -> None:
    receipt = Voucher("AB12-CD34", 2500, "EUR", datetime.date(2026, 12, 31), ("Magasin",)).to_receipt()
    logo = Image.new("L", (300, 80), 128)
    assert _render(receipt, logo) == _render(receipt, logo)


def test_profile_without_pc858_is_a_config_error() -> None:
    assert code_page_number("TM-T88V") == 19
    with pytest.raises(ConfigError):
        code_page_number("no-such-printer")


def test_load_logo(tmp_path: Path) -> None:
    path = tmp_path / "logo.png"
    Image.new("1", (600, 60), 1).save(path)
    assert load_logo(path).size == (512, 51)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ConfigError, match=r"printer\.logo"):
        load_logo(tmp_path / "bad.png")
