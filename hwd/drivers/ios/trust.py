"""The "Trust This Computer?" flow: prompt the customer, retry Pair until they answer or time runs out.

lockdownd has no notification for the customer's answer: a client repeats its Pair request and
reads PairingDialogResponsePending until the dialog was answered (libimobiledevice and
pymobiledevice3 both do this), so the retries here run at a fixed, bounded pace. A locked phone
cannot show the dialog (Pair answers PasswordProtected); a dialog that goes away and comes back
(the phone was locked, or the USB connection was reset) is shown to the customer again, a bounded
number of times, all within the one deadline that started with the first prompt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from hwd.errors import PhoneError

log = logging.getLogger(__name__)

T = TypeVar("T")
PromptCallback = Callable[[str, float], Awaitable[None]]

#: What the customer sees while the phone shows "Trust This Computer?".
TRUST_PROMPT = 'Tap "Trust" on the phone, then enter its passcode.'
#: What the customer sees while the phone is locked and cannot show the dialog.
UNLOCK_PROMPT = 'Unlock the phone, then tap "Trust" and enter its passcode.'
#: The pace of Pair retries while the dialog is open (lockdownd has no answer notification).
PAIR_RETRY_S = 1.0
#: How many times the customer is prompted in all (the first time included).
MAX_PROMPTS = 4


class TrustFlow:
    """One phone's trust dialog, across reconnections.

    :param on_prompt: awaited with what the customer must do and the seconds left.
    :param timeout_s: how long the customer has, from the first prompt.
    :param retry_s: the pace of Pair retries.
    :param max_prompts: how many prompts in all before giving up (TRUST_TIMEOUT).
    :param clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        on_prompt: PromptCallback,
        timeout_s: float,
        *,
        retry_s: float = PAIR_RETRY_S,
        max_prompts: int = MAX_PROMPTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_prompt = on_prompt
        self._timeout_s = timeout_s
        self._retry_s = retry_s
        self._max_prompts = max_prompts
        self._clock = clock
        self._deadline: float | None = None
        self._showing = ""  # the prompt on screen now ("" when the dialog is not known to be up)
        self.prompts = 0

    @property
    def engaged(self) -> bool:
        """Whether the customer was prompted (a reset of the connection is expected from then on)."""
        return self.prompts > 0

    def remaining_s(self) -> float:
        """Seconds left to answer; the whole timeout before the first prompt."""
        return self._timeout_s if self._deadline is None else max(0.0, self._deadline - self._clock())

    def interrupted(self) -> None:
        """The connection dropped: a dialog seen again afterwards is a new prompt."""
        self._showing = ""

    async def run(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Calls ``attempt`` (one Pair request) until it succeeds.

        :returns: what the successful attempt returned.
        :raises hwd.errors.PhoneError: ``TRUST_REFUSED`` when the customer refused,
            ``TRUST_TIMEOUT`` when time or prompts ran out; whatever ``attempt`` raises otherwise.
        """
        from pymobiledevice3 import exceptions as pmd3

        while True:
            try:
                return await attempt()
            except pmd3.UserDeniedPairingError as exc:
                raise PhoneError('the customer tapped "Don\'t Trust" on the phone', code="TRUST_REFUSED") from exc
            except pmd3.PairingDialogResponsePendingError:
                await self._show(TRUST_PROMPT)
            except (pmd3.PasswordRequiredError, pmd3.PasscodeRequiredError):
                await self._show(UNLOCK_PROMPT)
            left = self.remaining_s()
            if left <= 0:
                raise PhoneError(
                    f"nobody trusted the kiosk on the phone within {self._timeout_s:g} s", code="TRUST_TIMEOUT"
                )
            await asyncio.sleep(min(self._retry_s, left))

    async def _show(self, prompt: str) -> None:
        if prompt == self._showing:
            return
        if self._deadline is None:
            self._deadline = self._clock() + self._timeout_s
        if self.prompts >= self._max_prompts:
            raise PhoneError(f"the Trust dialog went away {self.prompts} times without an answer", code="TRUST_TIMEOUT")
        self.prompts += 1
        self._showing = prompt
        log.info("phone asks the customer (prompt %d): %s", self.prompts, prompt)
        await self._on_prompt(prompt, self.remaining_s())
