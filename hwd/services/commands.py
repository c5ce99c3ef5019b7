"""Request-id idempotency for every world-changing command.

The intent is journaled (PENDING) before the command acts; the outcome is journaled after. The
same request id again returns the first outcome and does not act twice; with other parameters it
is rejected. A command left PENDING by a crash becomes OUTCOME_UNKNOWN at start-up, is announced
by an event, and is never redone on its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from hwd.errors import (
    CommandInProgress,
    HwdError,
    InvalidArgument,
    OutcomeUnknown,
    RequestIdReused,
    error_from_reason,
)
from hwd.journal import Journal
from hwd.model import CommandOutcomeUnknown, CommandRecord, CommandState
from hwd.services.events import EventBus

log = logging.getLogger(__name__)

REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
Outcome = dict[str, Any]


def params_hash(method: str, params: Mapping[str, Any]) -> str:
    """A stable digest of a command's method and parameters (JSON with sorted keys)."""
    text = json.dumps({"method": method, "params": params}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class CommandRunner:
    """Runs commands at most once per request id.

    :param journal: where intents and outcomes are kept.
    :param bus: where OUTCOME_UNKNOWN events go.
    """

    def __init__(self, journal: Journal, bus: EventBus) -> None:
        self._journal = journal
        self._bus = bus
        self._inflight: dict[str, tuple[str, asyncio.Task[Outcome]]] = {}

    async def recover(self) -> list[CommandRecord]:
        """Marks commands a crash left unfinished as OUTCOME_UNKNOWN and publishes an event for each."""
        unknown = await self._journal.mark_unfinished_unknown()
        for rec in unknown:
            log.warning("command %s (%s) was cut by a crash: outcome unknown", rec.request_id, rec.method)
            await self._bus.publish("commands", CommandOutcomeUnknown(rec.request_id, rec.method, rec.started_ns))
        return unknown

    async def run(
        self,
        request_id: str,
        method: str,
        params: Mapping[str, Any],
        role: str,
        action: Callable[[], Awaitable[Outcome]],
    ) -> Outcome:
        """Runs ``action`` once for ``request_id`` and returns its JSON-able outcome.

        The action runs in its own task: a caller that disconnects does not cut a command in half.

        :raises InvalidArgument: for a malformed request id.
        :raises RequestIdReused: when the id was used with another method or parameters.
        :raises OutcomeUnknown: when the first attempt was cut by a crash.
        :raises HwdError: the first attempt's error, when it failed.
        """
        if not REQUEST_ID.fullmatch(request_id):
            raise InvalidArgument("request_id must be 1 to 128 characters of [A-Za-z0-9._:-]")
        digest = params_hash(method, params)
        running = self._inflight.get(request_id)
        if running is not None:
            if running[0] != digest:
                raise RequestIdReused(f"request id {request_id!r} is in use with other parameters")
            return await asyncio.shield(running[1])
        task = asyncio.create_task(self._execute(request_id, method, digest, role, action), name=f"cmd:{request_id}")
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        self._inflight[request_id] = (digest, task)
        task.add_done_callback(lambda _: self._inflight.pop(request_id, None))
        return await asyncio.shield(task)

    async def _execute(
        self, request_id: str, method: str, digest: str, role: str, action: Callable[[], Awaitable[Outcome]]
    ) -> Outcome:
        record = CommandRecord(request_id, method, digest, CommandState.PENDING, role, time.time_ns())
        stored = await self._journal.begin_command(record)
        if stored is not record:
            return _replay(stored, method, digest)
        try:
            outcome = await action()
        except HwdError as exc:
            error = {
                "reason": exc.reason, "message": exc.message, "device": exc.device, "hint": exc.hint,
                "metadata": exc.metadata,
            }  # fmt: skip
            await self._journal.finish_command(request_id, CommandState.FAILED, error=error)
            raise
        except BaseException:
            # A bug or a cancellation mid-action: whether it acted is unknown, and we say so.
            await asyncio.shield(self._journal.finish_command(request_id, CommandState.OUTCOME_UNKNOWN))
            await asyncio.shield(
                self._bus.publish("commands", CommandOutcomeUnknown(request_id, method, record.started_ns))
            )
            raise
        await self._journal.finish_command(request_id, CommandState.SUCCEEDED, outcome=outcome)
        return outcome


def _replay(stored: CommandRecord, method: str, digest: str) -> Outcome:
    """The first outcome of a repeated request id."""
    if (stored.method, stored.params_hash) != (method, digest):
        raise RequestIdReused(f"request id {stored.request_id!r} was used with other parameters")
    if stored.state is CommandState.SUCCEEDED:
        return stored.outcome or {}
    if stored.state is CommandState.FAILED and stored.error:
        err = stored.error
        raise error_from_reason(
            err["reason"], err["message"], device=err.get("device", ""), hint=err.get("hint", ""),
            metadata=err.get("metadata"),
        )  # fmt: skip
    if stored.state is CommandState.PENDING:
        raise CommandInProgress(f"request id {stored.request_id!r} is still running")
    raise OutcomeUnknown(f"request id {stored.request_id!r} was interrupted; whether it acted is unknown")
