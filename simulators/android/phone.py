"""The facts of one simulated phone, as the shell needs them (loaded from a profile file)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Answer:
    """A command's canned answer: what it prints and its exit code."""

    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0


@dataclass(frozen=True)
class Dialer:
    """How the phone answers the ``*#06#`` code.

    :ivar package: the dialer package that shows the IMEI dialog.
    :ivar style: how the dialog words the IMEIs (see :func:`simulators.android.screens.imei_dialog`).
    :ivar dump_error: when set, ``uiautomator dump`` fails with this message instead of dumping.
    """

    package: str = "com.google.android.dialer"
    style: str = "google"
    dump_error: str = ""


@dataclass(frozen=True)
class PhoneData:
    """What a phone prints and holds.

    :ivar props: the system properties (``getprop`` prints them sorted).
    :ivar outputs: answers by exact command line (words joined by one space), e.g. ``"dumpsys battery"``.
    :ivar files: file contents by path (``cat``); a path here also exists for ``ls`` and ``which``.
    :ivar imeis: the IMEIs, slot 1 first.
    :ivar imei_service: ``"allowed"`` when ``service call iphonesubinfo`` answers the shell user,
        ``"denied"`` when it throws a SecurityException (Android 10 and later).
    :ivar screen_locked: a secure lock screen is up: the dialer cannot show over it.
    """

    props: dict[str, str]
    outputs: dict[str, Answer] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    imeis: tuple[str, ...] = ()
    imei_service: str = "denied"
    dialer: Dialer = Dialer()
    launcher: str = "com.google.android.apps.nexuslauncher"
    screen_locked: bool = False

    @property
    def sdk(self) -> int:
        """The API level (``ro.build.version.sdk``), 0 when the profile lacks it."""
        value = self.props.get("ro.build.version.sdk", "0")
        return int(value) if value.isascii() and value.isdigit() else 0
