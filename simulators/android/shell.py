"""The simulated phone's ``/system/bin/sh``: answers a command line from the phone's profile.

It understands what the kiosk's reader and a technician's ``adb shell`` send: simple commands
joined by ``;``, ``&&`` and ``||``, the redirections ``>FILE``, ``N>FILE`` and ``N>&M`` (to
``/dev/null`` or between stdout and stderr), quoting, and ``$?``. Pipes and background jobs are
not simulated: they answer a syntax error. Messages and exit codes follow Android's mksh and toybox.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass

from simulators.android import parcel, screens
from simulators.android.phone import PhoneData

_SH = "/system/bin/sh"
_PATH = ("/sbin", "/system/sbin", "/system/bin", "/system/xbin", "/odm/bin", "/vendor/bin", "/vendor/xbin")
_OPERATORS = (";", "&&", "||")
_REDIRECTS = (">", ">>", ">&")
_DENIED = "getDeviceId: The user 2000 does not meet the requirements to access device identifiers."
_IMEI_CODE = "tel:*%2306%23"


@dataclass(frozen=True)
class ShellResult:
    """What one command line printed and its exit code."""

    stdout: bytes
    stderr: bytes
    exit_code: int


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


@dataclass
class _Out:
    """One simple command's output, before redirection."""

    out: str = ""
    err: str = ""
    rc: int = 0


class Shell:
    """One phone's shell; it remembers what the screen shows between command lines.

    :param phone: the phone's facts.
    """

    def __init__(self, phone: PhoneData) -> None:
        self._phone = phone
        self._screen = "home"
        self._written: dict[str, str] = {}
        self._commands: dict[str, Callable[[list[str]], _Out]] = {
            "getprop": self._getprop,
            "echo": self._echo,
            "cat": self._cat,
            "ls": self._ls,
            "rm": self._rm,
            "which": self._which,
            "sleep": lambda _args: _Out(),
            "true": lambda _args: _Out(),
            "false": lambda _args: _Out(rc=1),
            "input": self._input,
            "am": self._am,
            "uiautomator": self._uiautomator,
            "service": self._service,
        }
        self._last_rc = 0

    def run(self, line: str) -> ShellResult:
        """Runs one command line.

        :param line: what follows ``shell:`` in the ADB request.
        :returns: the line's stdout, stderr and exit code (that of the last command run).
        """
        out, err = [], []
        try:
            for op, words in _parse(line):
                if (op == "&&" and self._last_rc != 0) or (op == "||" and self._last_rc == 0):
                    continue
                stdout, stderr = self._simple(words)
                out.append(stdout)
                err.append(stderr)
        except _Exit as stop:
            self._last_rc = stop.code
        except ValueError as exc:  # shlex: unbalanced quotes; _parse: an operator it does not simulate
            err.append(f"{_SH}: syntax error: {exc}\n")
            self._last_rc = 2
        return ShellResult(_bytes("".join(out)), _bytes("".join(err)), self._last_rc)

    def _simple(self, words: list[str]) -> tuple[str, str]:
        args, routes = _redirections(words)
        if not args:
            return "", ""
        if args[0] == "exit":
            raise _Exit(int(args[1]) % 256 if len(args) > 1 and _is_number(args[1]) else self._last_rc)
        result = self._dispatch(args)
        self._last_rc = result.rc
        produced = {"1": result.out, "2": result.err}
        pieces = {"out": "", "err": ""}
        for fd, target in routes.items():
            if target in pieces:
                pieces[target] += produced[fd]
        return pieces["out"], pieces["err"]

    def _dispatch(self, args: list[str]) -> _Out:
        key = " ".join(args)
        answer = self._phone.outputs.get(key)
        if answer is not None:
            return _Out(answer.stdout, answer.stderr, answer.exit_code)
        handler = self._commands.get(args[0])
        if handler is not None:
            return handler(args[1:])
        if args[0] in ("dumpsys", "cmd"):
            return _Out(err=f"Can't find service: {args[1] if len(args) > 1 else ''}\n")
        return _Out(err=f"{_SH}: {args[0]}: inaccessible or not found\n", rc=127)

    def _getprop(self, args: list[str]) -> _Out:
        props = self._phone.props
        if args:
            return _Out(props.get(args[0], args[1] if len(args) > 1 else "") + "\n")
        return _Out("".join(f"[{k}]: [{props[k]}]\n" for k in sorted(props)))

    def _echo(self, args: list[str]) -> _Out:
        newline = "\n"
        if args[:1] == ["-n"]:
            args, newline = args[1:], ""
        return _Out(" ".join(a.replace("$?", str(self._last_rc)) for a in args) + newline)

    def _cat(self, args: list[str]) -> _Out:
        result = _Out()
        for path in args:
            if path in self._written:
                result.out += self._written[path]
            elif path in self._phone.files:
                result.out += self._phone.files[path]
            else:
                result.err += f"cat: {path}: No such file or directory\n"
                result.rc = 1
        return result

    def _ls(self, args: list[str]) -> _Out:
        result = _Out()
        for path in (a for a in args if not a.startswith("-")):
            if path in self._phone.files:
                result.out += path + "\n"
            else:
                result.err += f"ls: {path}: No such file or directory\n"
                result.rc = 1
        return result

    def _rm(self, args: list[str]) -> _Out:
        result = _Out()
        for path in (a for a in args if not a.startswith("-")):
            if self._written.pop(path, None) is None and "-f" not in args:
                result.err += f"rm: {path}: No such file or directory\n"
                result.rc = 1
        return result

    def _which(self, args: list[str]) -> _Out:
        result = _Out()
        for name in args:
            found = [f"{d}/{name}" for d in _PATH if f"{d}/{name}" in self._phone.files]
            if not found and name in self._commands:
                found = [f"/system/bin/{name}"]
            if found:
                result.out += found[0] + "\n"
            else:
                result.rc = 1  # toybox which: nothing printed for a missing command
        return result

    def _input(self, args: list[str]) -> _Out:
        if args[:1] != ["keyevent"] or len(args) < 2:
            return _Out(err="Usage: input [<source>] <command> [<arg>...]\n", rc=1)
        if args[1] in ("KEYCODE_HOME", "KEYCODE_BACK", "3", "4"):
            self._screen = "keyguard" if self._phone.screen_locked else "home"
        return _Out()

    def _am(self, args: list[str]) -> _Out:
        if args[:1] != ["start"]:
            return _Out(err=f"Unknown command: {args[0] if args else ''}\n", rc=255)
        data = args[args.index("-d") + 1] if "-d" in args[:-1] else ""
        action = args[args.index("-a") + 1] if "-a" in args[:-1] else ""
        if self._phone.screen_locked:
            self._screen = "keyguard"
        elif action == "android.intent.action.DIAL" and data == _IMEI_CODE:
            self._screen = "imei"
        out = f"Starting: Intent {{ act={action} dat={data.split(':')[0]}:xxxxxx }}\n"
        return _Out(out)

    def _uiautomator(self, args: list[str]) -> _Out:
        if args[:1] != ["dump"]:
            return _Out(err="Usage: uiautomator <subcommand> [options]\n", rc=1)
        dialer = self._phone.dialer
        if dialer.dump_error:
            return _Out(err=dialer.dump_error + "\n", rc=1)
        if self._screen == "imei":
            xml = screens.imei_dialog(dialer.package, dialer.style, list(self._phone.imeis))
        elif self._screen == "keyguard" or self._phone.screen_locked:
            xml = screens.keyguard_screen()
        else:
            xml = screens.home_screen(self._phone.launcher)
        path = args[1] if len(args) > 1 else "/sdcard/window_dump.xml"
        if path == "/dev/tty":
            return _Out(xml + screens.dumped_to(path))
        self._written[path] = xml
        return _Out(screens.dumped_to(path))

    def _service(self, args: list[str]) -> _Out:
        if len(args) < 3 or args[0] != "call" or not _is_number(args[2]):
            return _Out(err="service: Unknown command\n", rc=255)
        if args[1] != "iphonesubinfo":
            return _Out(err=f"service: Service {args[1]} does not exist\n", rc=255)
        if self._phone.imei_service != "allowed":
            return _Out(parcel.exception_reply(_DENIED))
        slot = {"1": 0, "4": int(args[4]) - 1 if len(args) > 4 and _is_number(args[4]) else -1}.get(args[2], -1)
        imei = self._phone.imeis[slot] if 0 <= slot < len(self._phone.imeis) else None
        return _Out(parcel.string_reply(imei))


def _bytes(text: str) -> bytes:
    """Text back to the bytes it came from (the ADB side decodes with surrogateescape); total."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that no undecodable byte stands for
        return text.encode("utf-8", "replace")


def _is_number(word: str) -> bool:
    return word.isascii() and word.isdigit() and len(word) < 10


def _parse(line: str) -> list[tuple[str, list[str]]]:
    """Splits a command line into (operator before it, words) pairs."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
    lexer.whitespace_split = True
    lexer.commenters = ""  # '#' is part of dialer codes; comments are not simulated
    commands: list[tuple[str, list[str]]] = []
    op, words = ";", list[str]()
    for token in lexer:
        if token in _OPERATORS:
            commands.append((op, words))
            op, words = token, []
        elif token and token[0] in ";&|<" and token not in _REDIRECTS:
            raise ValueError(f"'{token}' unexpected")
        else:
            words.append(token)
    commands.append((op, words))
    return commands


def _redirections(words: list[str]) -> tuple[list[str], dict[str, str]]:
    """Strips redirections; returns the arguments and where fd 1 and fd 2 go (out, err or null)."""
    args: list[str] = []
    routes = {"1": "out", "2": "err"}
    i = 0
    while i < len(words):
        word = words[i]
        nxt = words[i + 1] if i + 1 < len(words) else ""
        fd = "1"
        if word in ("1", "2") and nxt in _REDIRECTS:
            fd, i = word, i + 1
            word, nxt = nxt, words[i + 1] if i + 1 < len(words) else ""
        if word in _REDIRECTS:
            # files are not simulated: output sent to one is dropped, like output sent to /dev/null
            routes[fd] = routes.get(nxt, "null") if word == ">&" else "null"
            i += 2
            continue
        args.append(word)
        i += 1
    return args, routes
