"""The "Allow USB debugging?" prompt of a simulated phone, and the keys it trusts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from cryptography.hazmat.primitives.asymmetric import rsa

from simulators.adb.auth import HostKey, signed_by_any

log = logging.getLogger(__name__)

ANSWERS = ("accept", "refuse", "ignore")
#: The longest a simulated customer may take to answer.
MAX_TRUST_DELAY_S = 3600.0


def trust_answer(text: str) -> str:
    """Validate a trust answer; empty means ``accept``.

    :raises ValueError: not one of :data:`ANSWERS`.
    """
    answer = text or "accept"
    if answer not in ANSWERS:
        raise ValueError(f"trust answer must be one of {', '.join(ANSWERS)}, not {text!r}")
    return answer


def trust_delay(seconds: float) -> float:
    """Validate how long the customer takes to answer.

    :raises ValueError: negative, not a number, or above :data:`MAX_TRUST_DELAY_S`.
    """
    if not 0 <= seconds <= MAX_TRUST_DELAY_S:  # also refuses nan
        raise ValueError(f"trust delay must be from 0 to {MAX_TRUST_DELAY_S:g} seconds, not {seconds!r}")
    return seconds


class TrustStore:
    """The host keys a phone trusts, and what its customer answers to each prompt."""

    def __init__(self, answer: str, delay_s: float, keys: Iterable[rsa.RSAPublicKey] = ()) -> None:
        """:param answer: ``accept``, ``refuse`` or ``ignore`` (see :func:`trust_answer`).

        :param delay_s: how long the customer takes to answer.
        :param keys: keys trusted from the start (a phone that already allowed this computer).
        """
        self.answer = answer
        self.delay_s = delay_s
        self._keys = list(keys)
        self.prompts_shown = 0
        self.prompts_open = 0

    def signed(self, token: bytes, signature: bytes) -> bool:
        """Whether a trusted key signed ``token``."""
        return signed_by_any(self._keys, token, signature)

    def trusts(self, key: rsa.RSAPublicKey) -> bool:
        """Whether ``key`` is trusted already."""
        return any(known.public_numbers() == key.public_numbers() for known in self._keys)

    async def prompt(self, host: HostKey, never_answered: bool) -> bool | None:
        """Show the prompt for ``host``'s key and wait for the customer.

        :param never_answered: the customer walks away (``prompt-never-answered``), whatever
            the usual answer is.
        :returns: True when allowed (the key is trusted from then on), False when refused;
            never returns when the prompt is ignored (cancel the wait).
        """
        self.prompts_shown += 1
        self.prompts_open += 1
        log.info("phone prompt: allow USB debugging for %s (%s)?", host.comment, host.fingerprint)
        try:
            if never_answered or self.answer == "ignore":
                await asyncio.Event().wait()  # nobody answers; the connection's end cancels this
            await asyncio.sleep(self.delay_s)  # the customer reads the prompt
        finally:
            self.prompts_open -= 1
        if self.answer == "refuse":
            log.info("phone prompt refused for %s", host.fingerprint)
            return False
        if not self.trusts(host.key):
            self._keys.append(host.key)
        log.info("phone prompt accepted for %s", host.fingerprint)
        return True
