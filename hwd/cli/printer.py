"""`hwd printer ...`: the Printer service on tech.sock (status, test page, voucher, job)."""

from __future__ import annotations

import argparse
import datetime
import re
import uuid
from collections.abc import Callable
from typing import TypeAlias

from hwd.cli.client import CliError
from hwd.cli.exitcodes import ExitCode
from hwd.cli.peripherals import _device_fields, tech_channel
from hwd.cli.render import EMPTY_CELL, clean, enum_name, fields, timestamp, to_json, yes_no
from hwd.rpc.pb.hwd.v1 import printer_pb2, printer_pb2_grpc

Handler = Callable[[argparse.Namespace], int]
SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

# Printing and cutting takes seconds (more when the printer waits for paper): at least this deadline.
PRINT_TIMEOUT_S = 60.0
# Jobs that did not (certainly) print: the print commands exit with PRECONDITION for them.
UNPRINTED_STATES = (printer_pb2.JOB_STATE_FAILED, printer_pb2.JOB_STATE_OUTCOME_UNKNOWN)
# Euros with an optional decimal point or comma and at most two decimals: "25", "25.5", "25,00".
AMOUNT = re.compile(r"(?P<euros>\d{1,9})(?:[.,](?P<cents>\d{1,2}))?")
ISO_DATE = re.compile(r"\d{4}-\d\d-\d\d")

TEST_FRENCH = "Reçu : 25,00 € - déjà payé, très bien"
TEST_CODE128 = "HWD-TEST-0001"
TEST_EAN13 = "400638133393"
TEST_QR = "https://example.invalid/hwd/test"


def print_timeout(args: argparse.Namespace) -> float:
    """The deadline of a print: --timeout, but at least :data:`PRINT_TIMEOUT_S`."""
    return max(float(args.timeout), PRINT_TIMEOUT_S)


def amount_type(text: str) -> int:
    """argparse type of --amount: euros (``25.00``, ``25,5``, ``25``) to cents, more than zero."""
    match = AMOUNT.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"must be an amount in euros such as 25.00 or 25,00: {text!r}")
    cents = int(match["euros"]) * 100 + int((match["cents"] or "0").ljust(2, "0"))
    if cents == 0:
        raise argparse.ArgumentTypeError(f"must be more than zero: {text!r}")
    return cents


def date_type(text: str) -> str:
    """argparse type of --expires: a real date written YYYY-MM-DD."""
    try:
        if ISO_DATE.fullmatch(text) is None:
            raise ValueError(text)
        datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a date written YYYY-MM-DD: {text!r}") from None
    return text


def text_line(
    text: str,
    *,
    bold: bool = False,
    underline: bool = False,
    double_width: bool = False,
    double_height: bool = False,
    align: printer_pb2.Align.ValueType = printer_pb2.ALIGN_UNSPECIFIED,
) -> printer_pb2.ReceiptElement:
    """A receipt element holding one line of text."""
    line = printer_pb2.TextLine(
        text=text, bold=bold, underline=underline, double_width=double_width, double_height=double_height, align=align
    )
    return printer_pb2.ReceiptElement(text=line)


def receipt_of_test_page() -> printer_pb2.Receipt:
    """A receipt using every element kind and every text style, to check a printer at a glance."""
    barcode = printer_pb2.Barcode
    elements = [
        printer_pb2.ReceiptElement(logo=True),
        text_line("hwd test page", bold=True, double_width=True, double_height=True, align=printer_pb2.ALIGN_CENTER),
        printer_pb2.ReceiptElement(separator="="),
        text_line("normal"),
        text_line("bold", bold=True),
        text_line("underline", underline=True),
        text_line("double width", double_width=True),
        text_line("double height", double_height=True),
        text_line("left"),
        text_line("centre", align=printer_pb2.ALIGN_CENTER),
        text_line("right", align=printer_pb2.ALIGN_RIGHT),
        printer_pb2.ReceiptElement(separator="-"),
        text_line(TEST_FRENCH),
        printer_pb2.ReceiptElement(separator="-"),
        text_line("CODE128", align=printer_pb2.ALIGN_CENTER),
        printer_pb2.ReceiptElement(barcode=barcode(kind=printer_pb2.BARCODE_KIND_CODE128, data=TEST_CODE128)),
        text_line("EAN-13", align=printer_pb2.ALIGN_CENTER),
        printer_pb2.ReceiptElement(barcode=barcode(kind=printer_pb2.BARCODE_KIND_EAN13, data=TEST_EAN13)),
        text_line("QR code", align=printer_pb2.ALIGN_CENTER),
        printer_pb2.ReceiptElement(qr=printer_pb2.QrCode(data=TEST_QR)),
        printer_pb2.ReceiptElement(feed=2),
    ]
    return printer_pb2.Receipt(elements=elements)


def render_printer(status: printer_pb2.GetPrinterStatusResponse) -> str:
    """The printer's status: device state, then its status flags."""
    return fields(
        [
            *_device_fields(status.status),
            ("online", yes_no(status.online)),
            ("cover open", yes_no(status.cover_open)),
            ("paper near end", yes_no(status.paper_near_end)),
            ("paper out", yes_no(status.paper_out)),
            ("cutter error", yes_no(status.cutter_error)),
            ("unrecoverable error", yes_no(status.unrecoverable_error)),
            ("feed button", yes_no(status.feed_button)),
        ]
    )


def job_state(job: printer_pb2.Job) -> str:
    """The job's state without its prefix (``DONE``)."""
    return enum_name(printer_pb2.JobState.DESCRIPTOR, job.state)


def render_job(job: printer_pb2.Job) -> str:
    """A print job: id, state, why it failed, bytes sent, times."""
    return fields(
        [
            ("job", job.job_id or EMPTY_CELL),
            ("state", job_state(job)),
            ("reason", job.reason or EMPTY_CELL),
            ("detail", job.detail or EMPTY_CELL),
            ("bytes", str(job.bytes)),
            ("created", timestamp(job.created)),
            ("finished", timestamp(job.finished)),
        ]
    )


def printer_status(args: argparse.Namespace) -> int:
    """`hwd printer status`: prints the printer's state and status flags."""
    with tech_channel(args) as channel:
        stub = printer_pb2_grpc.PrinterStub(channel)
        response = stub.GetStatus(printer_pb2.GetPrinterStatusRequest(), timeout=args.timeout)
    print(to_json(response) if args.json else render_printer(response))
    return 0


def printer_test_page(args: argparse.Namespace) -> int:
    """`hwd printer test-page`: prints a receipt showing every feature of the printer."""
    request = printer_pb2.PrintRequest(request_id=args.request_id or uuid.uuid4().hex, receipt=receipt_of_test_page())
    return _print(args, request, "test page")


def printer_voucher(args: argparse.Namespace) -> int:
    """`hwd printer voucher --code CODE --amount EUROS --expires DATE`: prints a voucher."""
    voucher = printer_pb2.Voucher(code=args.code, amount_cents=args.amount, expires=args.expires, store=args.store)
    request = printer_pb2.PrintRequest(request_id=args.request_id or uuid.uuid4().hex, voucher=voucher)
    return _print(args, request, "voucher")


def _print(args: argparse.Namespace, request: printer_pb2.PrintRequest, what: str) -> int:
    """Sends `request`, prints the job; a job that did not print ends the command with PRECONDITION."""
    with tech_channel(args) as channel:
        stub = printer_pb2_grpc.PrinterStub(channel)
        response = stub.Print(request, timeout=print_timeout(args))
    job = response.job
    if args.json:
        print(to_json(response))
    else:
        print(f"{what}: {job_state(job)} (request id {request.request_id})\n\n{render_job(job)}")
    if job.state in UNPRINTED_STATES:
        message = f"job {job.job_id} {job_state(job)}" + (f" {job.reason}" if job.reason else "")
        raise CliError(clean(message + (f": {job.detail}" if job.detail else "")), ExitCode.PRECONDITION)
    return 0


def printer_job(args: argparse.Namespace) -> int:
    """`hwd printer job JOB_ID`: prints one job."""
    with tech_channel(args) as channel:
        stub = printer_pb2_grpc.PrinterStub(channel)
        response = stub.GetJob(printer_pb2.GetJobRequest(job_id=args.job_id), timeout=args.timeout)
    print(to_json(response) if args.json else render_job(response.job))
    return 0


def add_printer_parsers(sub: SubParsers, common: list[argparse.ArgumentParser]) -> None:
    """Adds `hwd printer ...` to the top-level subparsers `sub`."""
    printer = sub.add_parser("printer", help="show the receipt printer and print on it", parents=common)
    psub = printer.add_subparsers(dest="printer_command", metavar="COMMAND", required=True)
    _sub(psub, "status", printer_status, "show the printer's paper, cover and error flags", common)
    p = _sub(psub, "test-page", printer_test_page, "print a receipt showing every printer feature", common)
    _add_request_id(p)
    p = _sub(psub, "voucher", printer_voucher, "print a voucher", common)
    p.add_argument("--code", required=True, metavar="CODE", help="the voucher code (4 to 32 of A-Z, 0-9, -)")
    p.add_argument("--amount", required=True, type=amount_type, metavar="EUROS", help="e.g. 25.00 or 25,00")
    p.add_argument("--expires", required=True, type=date_type, metavar="YYYY-MM-DD", help="last day of validity")
    p.add_argument(
        "--store",
        action="extend",
        nargs="+",
        default=[],
        metavar="LINE",
        help="the store's name and address lines (repeatable)",
    )
    _add_request_id(p)
    p = _sub(psub, "job", printer_job, "show one print job", common)
    p.add_argument("job_id", metavar="JOB_ID", help="the job id (the request id it was printed under)")


def _sub(
    sub: SubParsers, name: str, handler: Handler, help_text: str, common: list[argparse.ArgumentParser]
) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text, parents=common)
    parser.set_defaults(handler=handler)
    return parser


def _add_request_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--request-id", metavar="ID", help="id making a retry safe (default: a new uuid)")
