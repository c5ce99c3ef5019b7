"""Reading a phone's IMEIs: the strategies each Android version leaves open, tried in order.

1. ``service call iphonesubinfo`` (answered in the first batch): Android 9 and older return the
   IMEI to the shell user; 10 and later throw a SecurityException.
2. ``dumpsys iphonesubinfo`` (same batch): old releases print ``Device ID = ...``.
3. The ``*#06#`` dialog (one more round trip): dial the code, dump the window hierarchy and read
   the numbers; a secure lock screen or an unreadable hierarchy defeats it.

A number is reported only if it is 15 digits and passes the Luhn check; otherwise the field is
UNKNOWN and its detail lists what each strategy gave. Nothing is guessed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from hwd.drivers.android.parse import ParseError
from hwd.drivers.android.parse_imei import find_imeis, parse_parcel_string, parse_subinfo_dump, parse_ui_dump
from hwd.model.phones import Field, luhn_valid

IMEI1_CALL = "service call iphonesubinfo 1 s16 com.android.shell"
IMEI2_CALL = "service call iphonesubinfo 4 i32 2 s16 com.android.shell"
SUBINFO = "dumpsys iphonesubinfo"
SOURCE_SERVICE_CALL = "adb:service call iphonesubinfo 1"
SOURCE_SERVICE_CALL_2 = "adb:service call iphonesubinfo 4 i32 2"
SOURCE_SUBINFO = "adb:dumpsys iphonesubinfo"
SOURCE_DIALER = "adb:uiautomator dump (dialer *#06#)"
_DUMP = "/data/local/tmp/hwd-window.xml"
#: Wakes the screen, dials *#06#, waits for the dialog, dumps the window, goes back home.
DIALER_COMMAND = (
    "input keyevent KEYCODE_WAKEUP; "
    "am start -a android.intent.action.DIAL -d 'tel:*%2306%23' >/dev/null 2>&1; "
    f"sleep 1; rm -f {_DUMP}; uiautomator dump {_DUMP} 2>&1; cat {_DUMP} 2>&1; "
    f"rm -f {_DUMP}; input keyevent KEYCODE_BACK; input keyevent KEYCODE_HOME"
)


@dataclass
class _Attempt:
    """What one strategy gave: (number, source) by slot, or why it gave nothing."""

    strategy: str
    numbers: list[tuple[str, str]] = field(default_factory=list)
    failure: str = ""


def from_service_call(imei1: str, imei2: str) -> _Attempt:
    """Strategy 1, from the answers to :data:`IMEI1_CALL` and :data:`IMEI2_CALL`."""
    attempt = _Attempt("service_call")
    for slot, (text, source) in enumerate(((imei1, SOURCE_SERVICE_CALL), (imei2, SOURCE_SERVICE_CALL_2))):
        reply = parse_parcel_string(text)
        if isinstance(reply, ParseError):
            problem = reply.reason
        elif reply.exception != 0:
            problem = f"refused (binder exception {reply.exception}): {reply.text or ''}"
        elif not reply.text:
            problem = "returned no identifier"
        else:
            attempt.numbers.append((reply.text, source))
            continue
        if slot == 0:
            attempt.failure = f"service call iphonesubinfo {problem}"
            return attempt
    return attempt


def from_subinfo(text: str) -> _Attempt:
    """Strategy 2, from the answer to :data:`SUBINFO`."""
    ids = parse_subinfo_dump(text)
    if not ids:
        return _Attempt("dumpsys", failure="dumpsys iphonesubinfo prints no Device ID on this release")
    return _Attempt("dumpsys", [(n, SOURCE_SUBINFO) for n in ids])


def from_dialer(answer: str) -> _Attempt:
    """Strategy 3, from the answer to :data:`DIALER_COMMAND`."""
    dump = parse_ui_dump(answer)
    if isinstance(dump, ParseError):
        return _Attempt("dialer", failure=f"*#06# screen unreadable: {dump.reason}")
    numbers = find_imeis(dump.texts)
    if not numbers:
        shown = dump.package or "an unnamed window"
        return _Attempt("dialer", failure=f"*#06# screen: no IMEI shown ({shown} in front; a lock screen?)")
    return _Attempt("dialer", [(n, SOURCE_DIALER) for n in numbers])


def _checked(attempt: _Attempt) -> tuple[list[tuple[str, str]], str]:
    """The attempt's numbers up to the first that fails the checks, and what failed ("" if none)."""
    good: list[tuple[str, str]] = []
    for number, source in attempt.numbers:
        if len(number) != 15 or not luhn_valid(number):
            return good, f"{attempt.strategy}: {number[:32]!r} is not a valid IMEI (15 digits, Luhn check)"
        good.append((number, source))
    return good, attempt.failure


async def read_imeis(
    first: Callable[[str], str], more: Callable[[str], Awaitable[str]], dual_sim: bool
) -> tuple[Field, Field]:
    """Runs the strategies in order until one gives a valid IMEI for slot 1.

    :param first: the answer to a command of the first batch, by command.
    :param more: runs one more command line on the phone and returns its answer.
    :param dual_sim: whether the phone has a second SIM slot (so a second IMEI).
    :returns: the ``imei`` and ``imei2`` fields.
    :raises hwd.errors.PhoneError: the dialer round trip failed at the transport.
    """
    reasons: list[str] = []
    for attempt in (from_service_call(first(IMEI1_CALL), first(IMEI2_CALL)), from_subinfo(first(SUBINFO))):
        good, problem = _checked(attempt)
        if good:
            return _fields(attempt.strategy, good, reasons, problem, dual_sim)
        reasons.append(problem)
    attempt = from_dialer(await more(DIALER_COMMAND))
    good, problem = _checked(attempt)
    if good:
        return _fields(attempt.strategy, good, reasons, problem, dual_sim)
    why = "; ".join([*reasons, problem])
    return Field.unknown(SOURCE_SERVICE_CALL, why), Field.unknown(SOURCE_SERVICE_CALL_2, why)


def _fields(
    strategy: str, good: list[tuple[str, str]], earlier: list[str], problem: str, dual_sim: bool
) -> tuple[Field, Field]:
    """The fields for the numbers a strategy gave; ``earlier`` says why the strategies before failed."""
    after = f" (after: {'; '.join(earlier)})" if earlier else ""
    detail = f"strategy {strategy}, Luhn check passed{after}"
    imei = Field.of(good[0][0], good[0][1], detail)
    if len(good) > 1:
        return imei, Field.of(good[1][0], good[1][1], detail)
    if not dual_sim:
        return imei, Field.unknown(good[0][1], "single-SIM phone: no second IMEI")
    return imei, Field.unknown(good[0][1], problem or f"strategy {strategy} gave no second IMEI")
