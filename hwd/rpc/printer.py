"""The hwd.v1.Printer servicer: protobuf receipts and vouchers in, jobs and status out."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf import json_format
from grpc import aio

from hwd.errors import InvalidArgument
from hwd.model import (
    Align,
    Barcode,
    BarcodeKind,
    Element,
    Feed,
    Logo,
    PrinterStatus,
    QrCode,
    Receipt,
    Separator,
    TextLine,
    Voucher,
)
from hwd.rpc.auth import current_role
from hwd.rpc.convert import device_status, ts
from hwd.rpc.pb.hwd.v1 import printer_pb2, printer_pb2_grpc
from hwd.services.printer import Job, PrinterService
from hwd.services.printer_port import validate

Ctx = aio.ServicerContext[Any, Any]


def _element(path: str, msg: printer_pb2.ReceiptElement) -> Element:
    which = msg.WhichOneof("element")
    if which == "text":
        t = msg.text
        align = {printer_pb2.ALIGN_CENTER: Align.CENTER, printer_pb2.ALIGN_RIGHT: Align.RIGHT}.get(t.align, Align.LEFT)
        return TextLine(t.text, t.bold, t.underline, t.double_width, t.double_height, align)
    if which == "separator":
        return Separator(msg.separator or "-")
    if which == "barcode":
        kinds = {
            printer_pb2.BARCODE_KIND_CODE128: BarcodeKind.CODE128,
            printer_pb2.BARCODE_KIND_EAN13: BarcodeKind.EAN13,
        }
        if msg.barcode.kind not in kinds:
            raise InvalidArgument(f"{path}.barcode.kind: CODE128 or EAN13", metadata={"field": f"{path}.barcode.kind"})
        return Barcode(kinds[msg.barcode.kind], msg.barcode.data)
    if which == "qr":
        return QrCode(msg.qr.data)
    if which == "logo":
        return Logo()
    if which == "feed":
        return Feed(msg.feed)
    raise InvalidArgument(f"{path}: an empty element", metadata={"field": path})


def receipt_from_pb(request: printer_pb2.PrintRequest) -> Receipt:
    """The receipt to print: the request's receipt, or its voucher laid out.

    :raises InvalidArgument: naming the field, for a missing document or a malformed voucher.
    """
    which = request.WhichOneof("document")
    if which == "receipt":
        return Receipt(tuple(_element(f"receipt.elements[{i}]", e) for i, e in enumerate(request.receipt.elements)))
    if which == "voucher":
        v = request.voucher
        try:
            expires = datetime.date.fromisoformat(v.expires)
        except ValueError:
            raise InvalidArgument("voucher.expires: a date YYYY-MM-DD", metadata={"field": "voucher.expires"}) from None
        voucher = Voucher(v.code, v.amount_cents, v.currency or "EUR", expires, tuple(v.store))
        validate(voucher)
        return voucher.to_receipt()
    raise InvalidArgument("document: a receipt or a voucher is required", metadata={"field": "document"})


def job_to_pb(job: Job) -> printer_pb2.Job:
    """A job as the API shows it."""
    msg = printer_pb2.Job(
        job_id=job.job_id, state=printer_pb2.JobState.Value(f"JOB_STATE_{job.state}"), reason=job.reason,
        detail=job.detail, bytes=job.bytes, created=ts(job.created_ns),
    )  # fmt: skip
    if job.finished_ns:
        msg.finished.CopyFrom(ts(job.finished_ns))
    return msg


class PrinterServicer(printer_pb2_grpc.PrinterServicer):
    """Serves the Printer service from a :class:`PrinterService`."""

    def __init__(self, printer: PrinterService) -> None:
        self._printer = printer

    async def GetStatus(
        self, request: printer_pb2.GetPrinterStatusRequest, context: Ctx
    ) -> printer_pb2.GetPrinterStatusResponse:
        p = self._printer
        msg = printer_pb2.GetPrinterStatusResponse(status=device_status(p.registry, p.name))
        st: PrinterStatus | None = p.current
        if st is not None:
            msg.online, msg.cover_open, msg.paper_near_end, msg.paper_out = (
                st.online, st.cover_open, st.paper_near_end, st.paper_out,
            )  # fmt: skip
            msg.cutter_error, msg.unrecoverable_error, msg.feed_button = (
                st.cutter_error, st.unrecoverable_error, st.feed_button,
            )  # fmt: skip
        return msg

    async def Print(self, request: printer_pb2.PrintRequest, context: Ctx) -> printer_pb2.PrintResponse:
        receipt = receipt_from_pb(request)
        params = json_format.MessageToDict(request, preserving_proto_field_name=True)
        params.pop("request_id", None)
        job = await self._printer.print(request.request_id, current_role.get(), receipt, params)
        return printer_pb2.PrintResponse(job=job_to_pb(job))

    async def GetJob(self, request: printer_pb2.GetJobRequest, context: Ctx) -> printer_pb2.GetJobResponse:
        return printer_pb2.GetJobResponse(job=job_to_pb(await self._printer.job(request.job_id)))

    async def WatchJobs(self, request: printer_pb2.WatchJobsRequest, context: Ctx) -> AsyncIterator[printer_pb2.Job]:
        async for change in self._printer.watch_jobs():
            yield printer_pb2.Job(
                job_id=change.job_id, state=printer_pb2.JobState.Value(f"JOB_STATE_{change.state}"),
                reason=change.reason, bytes=change.bytes,
            )  # fmt: skip
