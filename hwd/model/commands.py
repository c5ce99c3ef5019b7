"""World-changing commands as kept in the journal, keyed by the client's request id."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class CommandState(enum.Enum):
    """Where a command stands (mirrors hwd.v1.CommandState)."""

    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    OUTCOME_UNKNOWN = "OUTCOME_UNKNOWN"


@dataclass(frozen=True)
class CommandRecord:
    """One journaled command.

    ``outcome`` is the JSON-able result of a SUCCEEDED command; ``error`` holds the reason code,
    message, device and hint of a FAILED one.
    """

    request_id: str
    method: str
    params_hash: str
    state: CommandState
    role: str
    started_ns: int
    finished_ns: int | None = None
    outcome: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
