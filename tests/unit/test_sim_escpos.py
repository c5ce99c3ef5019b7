"""The simulated printer's ESC/POS parser, renderer and state, fed with python-escpos's own bytes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from escpos.printer import Dummy  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from simulators import escpos
from simulators.escpos import EscPosParser, Op
from simulators.printer import PrinterState
from simulators.receipt import WIDTH, Receipt, decode_text

DLE_EOT = b"\x10\x04"


def stream(build: Callable[[Dummy], object]) -> bytes:
    """What python-escpos sends for ``build(printer)``."""
    printer = Dummy(profile="TM-T88V")
    build(printer)
    data: bytes = printer.output
    return data


def everything(printer: Dummy) -> None:
    logo = Image.new("1", (40, 20), 1)
    ImageDraw.Draw(logo).ellipse((0, 0, 39, 19), outline=0)
    printer.set(bold=True, double_width=True, double_height=True, align="center", underline=1)
    printer.text("KIOSK voucher\n")
    printer.set(normal_textsize=True)
    printer.charcode("CP858")
    printer.text("Montant : 25,00 €\tà payer\n")
    printer.image(logo)
    printer.image(logo, impl="graphics")
    printer.image(logo, impl="bitImageColumn")
    printer.qr("https://example.com/v/42", native=False)
    printer.qr("KIOSK-2026-0042", native=True, size=4)
    printer.barcode("123456789012", "EAN13", width=2)
    printer.barcode("{BKIOSK-2026-0042", "CODE128", function_type="B", width=2)
    printer.ln(2)
    printer.cut()


def parse(data: bytes, chunk: int | None = None) -> list[Op]:
    parser = EscPosParser()
    size = chunk or len(data) or 1
    ops = [op for start in range(0, len(data), size) for op in parser.feed(data[start : start + size])]
    return ops + parser.flush()


def render(ops: list[Op]) -> Image.Image:
    receipt = Receipt()
    for op in ops:
        receipt.apply(op)
    receipt.feed()
    image = receipt.finish()
    assert image is not None
    return image


@pytest.fixture(scope="module")
def full_stream() -> bytes:
    return stream(everything)


@pytest.mark.parametrize("chunk", range(1, 8))
def test_chunked_stream_parses_like_the_whole(full_stream: bytes, chunk: int) -> None:
    assert parse(full_stream, chunk) == parse(full_stream)


def test_python_escpos_commands_are_all_understood(full_stream: bytes, caplog: pytest.LogCaptureFixture) -> None:
    ops = parse(full_stream)

    kinds = {type(op) for op in ops}
    assert {escpos.Text, escpos.Feed, escpos.Setting, escpos.Raster, escpos.Graphics, escpos.Qr} <= kinds
    assert [op for op in ops if isinstance(op, escpos.Barcode)] == [
        escpos.Barcode(67, b"123456789012"),
        escpos.Barcode(73, b"{BKIOSK-2026-0042"),
    ]
    assert ops[-1] == escpos.Cut(partial=False)
    assert "skipped" not in caplog.text


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=50))
def test_garbage_never_raises(garbage: bytes, chunk: int) -> None:
    ops = parse(garbage, chunk)
    assert ops == parse(garbage)
    receipt = Receipt()
    for op in ops:
        receipt.apply(op)
    receipt.feed(lines=1)
    assert receipt.finish() is not None


def test_pc858_decodes_french_and_the_euro() -> None:
    ops = parse(stream(lambda p: (p.charcode("CP858"), p.text("é à ç €\n"))))

    assert escpos.Setting("codepage", 19) in ops
    texts = [op.data for op in ops if isinstance(op, escpos.Text)]
    assert texts == [b"\x82 \x85 \x87 \xd5"]
    assert decode_text(texts[0], 19) == "é à ç €"
    assert decode_text(b"\x80", 16) == "€"
    assert decode_text(b"\x82", 0) == decode_text(b"\x82", 2) == "é"


def ink_width(image: Image.Image) -> int:
    box = Image.eval(image.convert("L"), lambda v: 255 - v).getbbox()
    assert box is not None
    return box[2] - box[0]


def test_double_width_is_twice_as_wide() -> None:
    normal = render(parse(stream(lambda p: p.text("ABCD 1234\n"))))
    double = render(parse(stream(lambda p: (p.set(double_width=True), p.text("ABCD 1234\n")))))

    assert normal.width == double.width == WIDTH
    assert ink_width(double) == 2 * ink_width(normal)


def test_48_characters_fit_a_line_and_the_49th_wraps() -> None:
    assert render(parse(b"M" * 48 + b"\n")).height == 30
    assert render(parse(b"M" * 49 + b"\n")).height == 60


# --- printer state -------------------------------------------------------------------------------


@pytest.fixture
def printer(tmp_path: Path) -> PrinterState:
    state = PrinterState(tmp_path / "receipts")
    state.prepare()
    return state


def status(printer: PrinterState) -> list[int]:
    return list(printer.handle(parse(b"".join(DLE_EOT + bytes([n]) for n in (1, 2, 3, 4)))))


@pytest.mark.parametrize(
    ("faults", "expected"),
    [
        ([], [0x12, 0x12, 0x12, 0x12]),
        ([("offline", {})], [0x1A, 0x12, 0x12, 0x12]),
        ([("cover-open", {})], [0x1A, 0x16, 0x12, 0x12]),
        ([("paper-out", {"after_mm": "999"})], [0x12, 0x12, 0x12, 0x1E]),
        ([("paper-out", {})], [0x1A, 0x32, 0x12, 0x7E]),
        ([("paper-out", {}), ("load-paper", {})], [0x12, 0x12, 0x12, 0x12]),
        ([("cover-open", {}), ("cover-close", {}), ("offline", {}), ("online", {})], [0x12, 0x12, 0x12, 0x12]),
    ],
)
def test_status_bytes(printer: PrinterState, faults: list[tuple[str, dict[str, str]]], expected: list[int]) -> None:
    for name, params in faults:
        printer.fault(name, params)
    assert status(printer) == expected


def test_a_cut_saves_one_png(printer: PrinterState) -> None:
    printer.handle(parse(stream(lambda p: (p.text("one receipt\n"), p.cut()))))

    assert [path.name for path in printer.artifacts] == ["receipt-0001.png"]
    with Image.open(printer.artifacts[0]) as image:
        assert image.width == WIDTH
        assert image.mode == "1"
    assert sorted(path.name for path in printer.receipts.iterdir()) == ["receipt-0001.png"]
    assert printer.state == "ready, 1 receipt"


def test_paper_runs_out_mid_receipt_tears_it_and_discards_the_rest(printer: PrinterState) -> None:
    printer.fault("paper-out", {"after_mm": "10"})  # 80 dot rows
    printer.handle(parse(stream(lambda p: (p.text("line\n" * 10), p.cut()))))

    assert len(printer.artifacts) == 1
    with Image.open(printer.artifacts[0]) as image:
        assert image.height == 80 + 12  # the paper, then the tear mark
        assert image.convert("L").crop((0, 80, WIDTH, 92)).getextrema()[0] == 0
    assert status(printer) == [0x1A, 0x32, 0x12, 0x7E]
    printer.handle(parse(stream(lambda p: (p.text("lost\n"), p.cut()))))
    assert len(printer.artifacts) == 1
    printer.fault("load-paper", {})
    printer.handle(parse(stream(lambda p: (p.text("next\n"), p.cut()))))
    assert len(printer.artifacts) == 2


def test_cutter_jam_holds_the_receipt_until_clear(printer: PrinterState) -> None:
    printer.fault("cutter-jam", {})
    printer.handle(parse(stream(lambda p: (p.text("jammed\n"), p.cut()))))

    assert printer.artifacts == []
    assert status(printer) == [0x1A, 0x52, 0x1A, 0x12]
    printer.fault("clear", {})
    assert len(printer.artifacts) == 1
    assert status(printer) == [0x12, 0x12, 0x12, 0x12]


def test_cover_open_discards_data_but_answers_status(printer: PrinterState) -> None:
    printer.fault("cover-open", {})
    assert printer.handle(parse(stream(lambda p: (p.text("x\n"), p.cut())) + DLE_EOT + b"\x02")) == b"\x16"
    assert printer.artifacts == []


def test_reset_gives_fresh_paper_and_keeps_receipts(printer: PrinterState) -> None:
    printer.handle(parse(stream(lambda p: (p.text("kept\n"), p.cut()))))
    printer.fault("paper-out", {})
    printer.fault("cover-open", {})

    printer.reset()

    assert status(printer) == [0x12, 0x12, 0x12, 0x12]
    assert len(printer.artifacts) == 1


@pytest.mark.parametrize(
    ("name", "params"), [("jam", {}), ("paper-out", {"after": "1"}), ("paper-out", {"after_mm": "-1"})]
)
def test_bad_faults_are_refused(printer: PrinterState, name: str, params: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"fault|after_mm"):
        printer.fault(name, params)
