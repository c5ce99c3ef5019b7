"""Regenerates the checked-in gRPC stubs under hwd/rpc/pb/ from protos/.

Usage: python protos/generate.py [OUT_DIR]   (default: hwd/rpc/pb)

protoc writes imports such as ``from hwd.v1 import common_pb2`` (rooted at protos/); they are
rewritten to ``hwd.rpc.pb.hwd.v1`` so the stubs live inside the hwd package while the proto
file names seen through reflection stay ``hwd/v1/*.proto``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
PACKAGE = "hwd.rpc.pb"
_IMPORT = re.compile(r"^(from|import) (hwd\.(?:sim\.)?v1)", re.MULTILINE)


def generate(out_dir: Path) -> None:
    """Writes the Python, gRPC and mypy stubs of every proto file into ``out_dir``."""
    bin_dir = Path(sys.executable).parent
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
            f"--python_out={tmp}",
            f"--grpc_python_out={tmp}",
            f"--mypy_out={tmp}",
            f"--mypy_grpc_out={tmp}",
            *protos,
        ]
        subprocess.run(cmd, check=True)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        for src in Path(tmp).rglob("*.py*"):
            dst = out_dir / src.relative_to(tmp)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(_IMPORT.sub(rf"\1 {PACKAGE}.\2", src.read_text()))
    for pkg in [out_dir, *(d for d in out_dir.rglob("*") if d.is_dir())]:
        (pkg / "__init__.py").touch()


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else PROTO_ROOT.parent / "hwd" / "rpc" / "pb")
