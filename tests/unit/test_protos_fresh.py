"""The checked-in stubs under hwd/rpc/pb/ are exactly what protos/ generates today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_generated_stubs_are_fresh(tmp_path: Path) -> None:
    out = tmp_path / "pb"
    subprocess.run([sys.executable, str(ROOT / "protos" / "generate.py"), str(out)], check=True, capture_output=True)
    fresh, checked_in = _tree(out), _tree(ROOT / "hwd" / "rpc" / "pb")
    assert sorted(fresh) == sorted(checked_in), "stub files differ: run `make protos`"
    stale = [name for name in fresh if fresh[name] != checked_in[name]]
    assert not stale, f"stale generated stubs (run `make protos`): {stale}"


def test_every_rpc_and_field_has_a_comment() -> None:
    for proto in (ROOT / "protos").rglob("*.proto"):
        lines = proto.read_text().splitlines()
        for i, line in enumerate(lines):
            stripped = line.strip()
            is_decl = stripped.startswith(("rpc ", "message ", "enum ", "service ")) or (
                "=" in stripped
                and stripped.endswith(";")
                and not stripped.startswith(("syntax", "option", "package", "//"))
            )
            if is_decl:
                above = lines[i - 1].strip() if i else ""
                assert above.startswith("//"), f"{proto.name}:{i + 1}: no comment above {stripped!r}"
