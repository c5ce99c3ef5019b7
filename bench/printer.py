"""Benchmark 7: the receipt printer (the simulated ESC/POS printer on TCP).

Print to DONE of a reference voucher-like receipt (logo, 20 text lines in PC858, QR code,
CODE128 barcode) on tech.sock, against python-escpos's own Network printer sending the same
content straight to the simulated printer's TCP port. The simulator's saved receipts are counted
after each block: every job must give exactly one.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from escpos.printer import Dummy, Network  # type: ignore[import-untyped]
from PIL import Image, ImageDraw

from bench.context import Context
from bench.daemon import BenchError, HwdDaemon, cpu_seconds
from bench.report import Goal, Section
from bench.stats import Summary
from hwd.drivers.escpos import BARCODE_HEIGHT, load_logo, qr_box_size, render
from hwd.model.receipt import (
    CODE128_FIXED_MODULES,
    CODE128_SYMBOL_MODULES,
    CODE_PAGE,
    MIN_MODULE_DOTS,
    PRINT_WIDTH_DOTS,
)
from hwd.rpc.pb.hwd.sim.v1 import simulator_pb2, simulator_pb2_grpc
from hwd.rpc.pb.hwd.v1 import printer_pb2, printer_pb2_grpc
from hwd.rpc.printer import receipt_from_pb

NAME = "printer"
TITLE = "7. Receipt printer (simulated ESC/POS printer on TCP, tech.sock)"
PROFILE = "TM-T88V"  # printer.profile when not configured
ROUNDS = 2  # hwd and python-escpos take turns, so drift hits both alike
CALL_TIMEOUT_S = 60.0
SETTLE_S = 5.0  # how long the receipt count may lag behind the drain query
LOGO_SIZE = (384, 96)
QR_DATA = "https://kiosk.example/v/KIOSK-2026-0042?sig=7f3a9c1e"
BARCODE_DATA = "KIOSK-2026-0042"  # CODE128, at most 20 characters
# The text lines: (text, bold, underline, double width, double height, align); every character is in PC858.
LINES: tuple[tuple[str, bool, bool, bool, bool, str], ...] = (
    ("Bon d'achat", True, False, True, True, "center"),
    ("Reprise de votre téléphone", False, False, False, False, "center"),
    ("Magasin Carrefour Étoile", False, False, False, False, "center"),
    ("12 avenue de la Grande-Armée, 75017 Paris", False, False, False, False, "center"),
    ("Le 26/11/2026 à 10:26", False, False, False, False, "left"),
    ("Appareil : iPhone 13, 128 Go, noir", False, False, False, False, "left"),
    ("État : très bon, écran intact", False, False, False, False, "left"),
    ("IMEI : 35 391805 212345 6", False, False, False, False, "left"),
    ("Valeur de reprise", True, False, False, False, "left"),
    ("250,00 €", True, False, True, True, "right"),
    ("Bonus écologique : 20,00 €", False, True, False, False, "right"),
    ("Total à valoir : 270,00 €", True, True, False, False, "right"),
    ("Code du bon : KIOSK-2026-0042", True, False, False, False, "left"),
    ("Valable jusqu'au 31/12/2026 inclus", False, False, False, False, "left"),
    ("Utilisable en une seule fois, en caisse.", False, False, False, False, "left"),
    ("Ni repris, ni échangé, ni remboursé.", False, False, False, False, "left"),
    ("Données effacées, certificat envoyé.", False, True, False, False, "left"),
    ("Conservez ce reçu, il vous sera demandé.", False, False, False, False, "left"),
    ("Merci et à bientôt !", True, False, True, False, "center"),
    ("Service client : 01 23 45 67 89", False, False, False, False, "center"),
)
_ALIGN = {"left": printer_pb2.ALIGN_UNSPECIFIED, "center": printer_pb2.ALIGN_CENTER, "right": printer_pb2.ALIGN_RIGHT}


def _ids(tag: str) -> Callable[[], str]:
    """Fresh request ids ``tag``-0, ``tag``-1, ..."""
    count = itertools.count()
    return lambda: f"{tag}-{next(count)}"


def make_logo(path: Path) -> Path:
    """Draws a 1-bit logo (a frame, a disc and bars) to ``path`` as a PNG. :returns: ``path``."""
    image = Image.new("1", LOGO_SIZE, 1)
    draw = ImageDraw.Draw(image)
    w, h = LOGO_SIZE
    draw.rectangle((0, 0, w - 1, h - 1), outline=0, width=4)
    draw.ellipse((12, 12, h - 12, h - 12), fill=0)
    for i in range(8):
        draw.rectangle((h + 16 * i + 8, 20, h + 16 * i + 16, h - 20), fill=0)
    draw.text((h + 150, h // 2 - 6), "REPRISE", fill=0)
    image.save(path)
    return path


def receipt() -> printer_pb2.Receipt:
    """The reference receipt: logo, 12 lines, QR code, 8 lines, barcode."""
    elements = [printer_pb2.ReceiptElement(logo=True)]
    for i, (text, bold, underline, dw, dh, align) in enumerate(LINES):
        if i == 12:
            elements.append(printer_pb2.ReceiptElement(qr=printer_pb2.QrCode(data=QR_DATA)))
        line = printer_pb2.TextLine(
            text=text, bold=bold, underline=underline, double_width=dw, double_height=dh, align=_ALIGN[align]
        )
        elements.append(printer_pb2.ReceiptElement(text=line))
    code = printer_pb2.Barcode(kind=printer_pb2.BARCODE_KIND_CODE128, data=BARCODE_DATA)
    elements.append(printer_pb2.ReceiptElement(barcode=code))
    return printer_pb2.Receipt(elements=elements)


def escpos_print(printer: Any, logo: Image.Image, qr_size: int) -> None:
    """The same receipt through python-escpos's own calls (text, image, qr(native=False), barcode, cut);
    ``qr_size`` is the dots per QR module hwd picks for QR_DATA, so both print the same symbol."""
    printer.set(normal_textsize=True, align="left")
    printer.image(logo, center=True)
    for i, (text, bold, underline, dw, dh, align) in enumerate(LINES):
        if i == 12:
            printer.set(normal_textsize=True, bold=False, underline=0, align="left")
            printer.qr(QR_DATA, native=False, size=qr_size, center=True)
        printer.set(
            normal_textsize=True, double_width=dw, double_height=dh, bold=bold, underline=int(underline), align=align
        )
        printer.text(text + "\n")
    modules = CODE128_FIXED_MODULES + CODE128_SYMBOL_MODULES * len(BARCODE_DATA)
    width = 3 if modules * 3 <= PRINT_WIDTH_DOTS else MIN_MODULE_DOTS
    printer.set(normal_textsize=True, bold=False, underline=0, align="left")
    with contextlib.redirect_stdout(io.StringIO()):  # python-escpos prints which renderer it used
        printer.barcode(
            "{B" + BARCODE_DATA, "CODE128", height=BARCODE_HEIGHT, width=width, pos="BELOW", function_type="B"
        )
    printer.cut()


def escpos_bytes(logo: Image.Image) -> int:
    """The bytes python-escpos sends for one receipt (its code page selection included)."""
    dummy = Dummy(profile=PROFILE)
    dummy.charcode("CP858")
    escpos_print(dummy, logo, qr_box_size(QR_DATA))
    return len(dummy.output)


class SimPrinter:
    """The daemon's simulator: its printer's TCP address, its pid and its control service."""

    def __init__(self, socket_dir: Path) -> None:
        doc = json.loads((socket_dir / "sim" / "endpoints.json").read_text())
        _, host, port = doc["devices"]["printer"]["endpoint"].split(":")
        self.host, self.port, self.pid = host, int(port), int(doc["pid"])
        self._channel = grpc.insecure_channel(doc["control"])
        self._stub = simulator_pb2_grpc.SimulatorStub(self._channel)

    def network(self) -> Any:
        """An open python-escpos Network printer on the simulated printer."""
        printer = Network(self.host, self.port, timeout=CALL_TIMEOUT_S, profile=PROFILE)
        printer.open()
        return printer

    def receipts(self) -> int:
        """How many receipts the simulated printer saved in this run."""
        status = self._stub.GetStatus(simulator_pb2.GetStatusRequest(), timeout=CALL_TIMEOUT_S)
        return len(next(d for d in status.devices if d.name == "printer").artifacts)

    def drain(self) -> None:
        """Returns once the printer has handled everything sent before: it handles what every client
        sends in arrival order, receipts saved included, so a status reply comes after all of it."""
        printer = self.network()
        try:
            if printer.paper_status() != 2:
                raise BenchError("the simulated printer reports a paper problem")
        finally:
            printer.close()

    def receipts_after(self, before: int, expected: int) -> int:
        """The receipts saved since ``before``, once ``expected`` of them are there (or SETTLE_S passed)."""
        self.drain()
        end = time.perf_counter() + SETTLE_S
        while (got := self.receipts() - before) < expected and time.perf_counter() < end:
            time.sleep(0.05)
        return got

    def close(self) -> None:
        self._channel.close()


def hwd_block(
    stub: printer_pb2_grpc.PrinterStub,
    doc: printer_pb2.Receipt,
    n: int,
    next_id: Callable[[], str],
) -> tuple[list[int], list[int]]:
    """``n`` Prints, each with a new request id. :returns: their durations in ns and each job's bytes."""
    durations, sizes = [0] * n, [0] * n
    clock = time.perf_counter_ns
    for i in range(n):
        request = printer_pb2.PrintRequest(request_id=next_id(), receipt=doc)
        t0 = clock()
        job = stub.Print(request, timeout=CALL_TIMEOUT_S).job
        durations[i] = clock() - t0
        if job.state != printer_pb2.JOB_STATE_DONE:
            raise BenchError(f"job {job.job_id} ended {printer_pb2.JobState.Name(job.state)}: {job.reason}")
        sizes[i] = job.bytes
    return durations, sizes


def escpos_block(sim: SimPrinter, logo: Image.Image, n: int) -> list[int]:
    """``n`` receipts through one python-escpos Network printer. :returns: their durations in ns."""
    printer = sim.network()
    try:
        printer.charcode("CP858")
        qr_size = qr_box_size(QR_DATA)
        out = [0] * n
        clock = time.perf_counter_ns
        for i in range(n):
            t0 = clock()
            escpos_print(printer, logo, qr_size)
            out[i] = clock() - t0
        return out
    finally:
        printer.close()


def _blocks(n: int) -> list[int]:
    return [n // ROUNDS + (1 if r < n % ROUNDS else 0) for r in range(ROUNDS)]


def run_daemon(root: Path, jobs: int) -> dict[str, Any]:
    """One ``hwd serve --simulated`` with a logo: one warm-up receipt each, then ``jobs`` Prints and
    ``jobs`` python-escpos receipts, taking turns in ROUNDS blocks.

    :returns: the samples in ns ("hwd", "escpos"), each job's bytes, the receipts each client got
        saved, the CPU seconds of the daemon and of the simulator for each client, and each
        client's wall time from its first byte to its last receipt handled by the printer.
    """
    root.mkdir(parents=True, exist_ok=True)
    logo_path = make_logo(root / "logo.png")
    logo = load_logo(logo_path)  # scaled to the printable width, as the daemon loads it
    doc = receipt()
    segments = render(receipt_from_pb(printer_pb2.PrintRequest(receipt=doc)), logo, PROFILE)
    next_id = _ids(uuid.uuid4().hex[:12])
    out: dict[str, Any] = {"hwd": [], "escpos": [], "bytes": [], "segments": len(segments)}
    out["rendered_bytes"] = sum(len(s) for s in segments)
    out["escpos_bytes"] = escpos_bytes(logo)
    for key in (
        "hwd_receipts",
        "escpos_receipts",
        "hwd_cpu_s",
        "hwd_sim_cpu_s",
        "escpos_cpu_s",
        "escpos_sim_cpu_s",
        "hwd_wall_s",
        "escpos_wall_s",
    ):
        out[key] = 0
    with HwdDaemon(root, {"HWD_PRINTER__LOGO": str(logo_path)}, simulated=True) as hwd:
        hwd.start()
        sim = SimPrinter(hwd.socket_dir)
        try:
            with grpc.insecure_channel(hwd.target("tech")) as channel:
                stub = printer_pb2_grpc.PrinterStub(channel)
                before = sim.receipts()
                hwd_block(stub, doc, 1, next_id)  # warm-up: the first link to the printer, first render
                escpos_block(sim, logo, 1)
                if (warm := sim.receipts_after(before, 2)) != 2:
                    raise BenchError(f"2 warm-up receipts gave {warm} saved receipts")
                for n in _blocks(jobs):
                    _timed(out, "hwd", sim, hwd.pid, n, lambda n=n: _hwd_samples(out, stub, doc, n, next_id))
                    _timed(out, "escpos", sim, hwd.pid, n, lambda n=n: out["escpos"].extend(escpos_block(sim, logo, n)))
        finally:
            sim.close()
    return out


def _hwd_samples(
    out: dict[str, Any],
    stub: printer_pb2_grpc.PrinterStub,
    doc: printer_pb2.Receipt,
    n: int,
    next_id: Callable[[], str],
) -> None:
    durations, sizes = hwd_block(stub, doc, n, next_id)
    out["hwd"] += durations
    out["bytes"] += sizes


def _timed(out: dict[str, Any], key: str, sim: SimPrinter, pid: int, n: int, block: Callable[[], None]) -> None:
    """Runs one client's block of ``n`` receipts; adds its CPU, wall time and saved receipts to ``out``."""
    before = sim.receipts()
    cpu0, sim0, t0 = cpu_seconds(pid), cpu_seconds(sim.pid), time.perf_counter()
    block()
    sim.drain()
    out[f"{key}_wall_s"] += time.perf_counter() - t0
    out[f"{key}_cpu_s"] += cpu_seconds(pid) - cpu0
    out[f"{key}_sim_cpu_s"] += cpu_seconds(sim.pid) - sim0
    out[f"{key}_receipts"] += sim.receipts_after(before, n)


def run(section: Section, ctx: Context) -> None:
    """Runs benchmark 7 and records its figures in ``section``."""
    jobs = ctx.counts.printer_jobs
    out = run_daemon(ctx.dir(NAME), jobs)
    hwd, esc = Summary.of_ns(out["hwd"]), Summary.of_ns(out["escpos"])
    sizes = set(out["bytes"])
    if len(sizes) != 1:
        raise BenchError(f"the same receipt gave jobs of different sizes: {sorted(sizes)}")
    size = sizes.pop()
    section.add("print_p50_ms", "Print to DONE p50", hwd.p50, "ms")
    section.add("print_p99_ms", "Print to DONE p99", hwd.p99, "ms")
    section.add("bytes_per_job", "bytes sent per job (Job.bytes)", size, "B")
    section.add("segments_per_job", "segments per job (2 status queries before each)", out["segments"], "")
    section.add("cpu_per_job_ms", "daemon CPU per job", out["hwd_cpu_s"] / jobs * 1e3, "ms")
    section.add("sim_cpu_per_job_ms", "simulator CPU per hwd job", out["hwd_sim_cpu_s"] / jobs * 1e3, "ms")
    section.add("per_s", "hwd receipts per second, to the last one handled", jobs / out["hwd_wall_s"], "/s")
    section.add("receipts_hwd", f"receipts rendered / {jobs} jobs, hwd", out["hwd_receipts"], "", Goal(jobs, "=="))
    section.add("escpos_p50_ms", "python-escpos Network receipt p50", esc.p50, "ms")
    section.add("escpos_p99_ms", "python-escpos Network receipt p99", esc.p99, "ms")
    section.add("escpos_bytes", "python-escpos bytes per receipt", out["escpos_bytes"], "B")
    section.add(
        "escpos_sim_cpu_ms", "simulator CPU per python-escpos receipt", out["escpos_sim_cpu_s"] / jobs * 1e3, "ms"
    )
    section.add(
        "escpos_per_s", "python-escpos receipts per second, to the last one handled", jobs / out["escpos_wall_s"], "/s"
    )
    section.add(
        "receipts_escpos",
        f"receipts rendered / {jobs} jobs, python-escpos",
        out["escpos_receipts"],
        "",
        Goal(jobs, "=="),
    )
    section.add("ratio_p50", "ratio hwd / python-escpos, p50", hwd.p50 / esc.p50, "x")
    section.add(
        "ratio_per_s", "ratio python-escpos / hwd, receipts per second", out["hwd_wall_s"] / out["escpos_wall_s"], "x"
    )
    section.details.update(print_ms=vars(hwd), escpos_ms=vars(esc), raw=_raw(out, jobs))
    if size != out["rendered_bytes"]:
        raise BenchError(f"Job.bytes {size} differs from the rendered receipt's {out['rendered_bytes']} bytes")
    _notes(section, jobs, size, out["segments"])


def _raw(out: dict[str, Any], jobs: int) -> dict[str, Any]:
    keys = (
        "hwd_receipts",
        "escpos_receipts",
        "hwd_cpu_s",
        "hwd_sim_cpu_s",
        "escpos_cpu_s",
        "escpos_sim_cpu_s",
        "hwd_wall_s",
        "escpos_wall_s",
        "escpos_bytes",
        "segments",
    )
    return {"jobs": jobs, **{k: out[k] for k in keys}}


def _notes(section: Section, jobs: int, size: int, segments: int) -> None:
    lines = len(LINES)
    section.notes.append(
        f"{jobs} Prints on tech.sock, each with a new request id, of one receipt: a {LOGO_SIZE[0]}x{LOGO_SIZE[1]} "
        f"logo (printer.logo), {lines} text lines of mixed styles in French ({CODE_PAGE}), a QR code and a "
        f"{len(BARCODE_DATA)}-character CODE128 barcode; {size} bytes in {segments} segments"
    )
    section.notes.append(
        f"Print returns when the job is DONE: hwd reads DLE EOT 1 to 4 before the job and DLE EOT 4 and 2 "
        f"(paper, cover) before each of the {segments} segments, {4 + 2 * segments} round trips through the "
        "printer, and journals the job (intent, outcome and 3 job events: 5 commits); python-escpos does neither"
    )
    section.notes.append(
        "python-escpos: one Network printer (CP858 forced) sending the same content straight to the simulated "
        "printer's TCP port: set, image, text, qr(native=False), barcode, cut; its call returns once the bytes "
        "are in the socket's buffer, so the receipts per second (timed until a status reply shows the printer "
        "handled the last receipt) compare the two fairly"
    )
    section.notes.append(
        f"hwd and python-escpos take turns in {ROUNDS} blocks after one warm-up receipt each; the simulated "
        "printer's saved receipts are counted after each block"
    )
