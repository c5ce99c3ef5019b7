"""Figures, goals and the report: a readable table on stdout and a JSON file."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Goal:
    """A bound a figure must respect: ``value <op> limit`` with op one of "<=", ">=", "==".

    :param limit: the bound, in the figure's unit.
    :param op: how the figure compares with it.
    """

    limit: float
    op: str = "<="

    def met(self, value: float) -> bool:
        """Whether ``value`` respects the goal."""
        if self.op == "<=":
            return value <= self.limit
        if self.op == ">=":
            return value >= self.limit
        return value == self.limit

    def __str__(self) -> str:
        return f"{self.op} {_number(self.limit)}"


@dataclass(frozen=True)
class Figure:
    """One measured value, with an optional goal.

    :param key: a stable identifier in the JSON file, e.g. ``getstatus.p50_ms``.
    :param label: what a reader sees in the table.
    """

    key: str
    label: str
    value: float
    unit: str
    goal: Goal | None = None

    @property
    def verdict(self) -> str:
        """PASS or MISS against the goal; empty without a goal."""
        if self.goal is None:
            return ""
        return "PASS" if self.goal.met(self.value) else "MISS"

    def as_json(self) -> dict[str, Any]:
        """The figure as a JSON object."""
        out: dict[str, Any] = {"key": self.key, "label": self.label, "value": self.value, "unit": self.unit}
        if self.goal is not None:
            out["goal"] = {"op": self.goal.op, "limit": self.goal.limit}
            out["verdict"] = self.verdict
        return out


@dataclass
class Section:
    """The outcome of one benchmark: its figures, free-text notes and the raw details."""

    name: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    def add(self, key: str, label: str, value: float, unit: str, goal: Goal | None = None) -> Figure:
        """Records a figure; its key is prefixed with the section's name."""
        fig = Figure(f"{self.name}.{key}", label, value, unit, goal)
        self.figures.append(fig)
        return fig

    def as_json(self) -> dict[str, Any]:
        """The section as a JSON object."""
        return {
            "title": self.title,
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "figures": [f.as_json() for f in self.figures],
            "notes": self.notes,
            "details": self.details,
        }


def _number(value: float) -> str:
    if value == int(value) and abs(value) >= 10:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) < 0.01 else f"{value:.2f}"


def render_section(section: Section) -> str:
    """A section as text: a title, a table of figures (value, goal, verdict), then notes."""
    lines = [f"== {section.title}  ({section.seconds:.1f} s)"]
    if section.error:
        lines.append(f"   BROKEN: {section.error}")
    width = max((len(f.label) for f in section.figures), default=0)
    for fig in section.figures:
        value = f"{_number(fig.value)} {fig.unit}".strip()
        goal = f"goal {fig.goal} {fig.unit}".rstrip() if fig.goal else ""
        lines.append(f"   {fig.label:<{width}}  {value:>14}  {goal:<20} {fig.verdict}".rstrip())
    lines.extend(f"   - {note}" for note in section.notes)
    return "\n".join(lines)


def render_summary(sections: list[Section]) -> str:
    """One line per goal, for the end of the report."""
    goals = [f for s in sections for f in s.figures if f.goal is not None]
    missed = [f for f in goals if f.verdict == "MISS"]
    broken = [s.name for s in sections if s.error]
    lines = [f"== Summary: {len(goals) - len(missed)}/{len(goals)} goals met"]
    lines.extend(f"   MISS {f.label}: {_number(f.value)} {f.unit} (goal {f.goal} {f.unit})" for f in missed)
    lines.extend(f"   BROKEN benchmark: {name}" for name in broken)
    return "\n".join(lines)


def write_json(path: Path, header: dict[str, Any], sections: list[Section]) -> None:
    """Writes the whole run to ``path`` (its directory is created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {**header, "benchmarks": {s.name: s.as_json() for s in sections}}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)


def as_dict(obj: Any) -> dict[str, Any]:
    """A dataclass instance as a plain dict (for the JSON details)."""
    return asdict(obj)
