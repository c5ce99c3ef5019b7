"""What ``uiautomator dump`` prints for the screens the kiosk can bring up on a phone.

The reader dials ``*#06#`` and dumps the window hierarchy to read the IMEI dialog; the layout
(package, ids, how each vendor's dialog words the IMEIs) follows each vendor's dialer.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

_HEAD = "<?xml version='1.0' encoding='UTF-8' standalone='yes' ?>"
_FLAGS = (
    'checkable="false" checked="false" clickable="{clickable}" enabled="true" focusable="{clickable}" '
    'focused="false" scrollable="false" long-clickable="false" password="false" selected="false"'
)


def _node(index: int, cls: str, package: str, bounds: str, *children: str, text: str = "", rid: str = "") -> str:
    flags = _FLAGS.format(clickable="true" if cls.endswith("Button") else "false")
    attrs = (
        f"index={quoteattr(str(index))} text={quoteattr(text)} resource-id={quoteattr(rid)} "
        f'class={quoteattr(cls)} package={quoteattr(package)} content-desc="" {flags} bounds={quoteattr(bounds)}'
    )
    if not children:
        return f"<node {attrs} />"
    return f"<node {attrs}>{''.join(children)}</node>"


def _hierarchy(root: str) -> str:
    return f'{_HEAD}<hierarchy rotation="0">{root}</hierarchy>'


def dumped_to(path: str) -> str:
    """The line ``uiautomator dump`` prints once the hierarchy is written (sic: its own spelling)."""
    return f"UI hierchary dumped to: {path}\n"


def home_screen(launcher: str) -> str:
    """The launcher's home screen (no IMEI on it)."""
    clock = _node(
        0, "android.widget.TextView", launcher, "[63,180][1017,330]", text="10:24", rid=f"{launcher}:id/clock"
    )
    return _hierarchy(_node(0, "android.widget.FrameLayout", launcher, "[0,0][1080,2400]", clock))


def keyguard_screen() -> str:
    """The lock screen: a secure lock keeps the dialer behind it."""
    pkg = "com.android.systemui"
    hint = _node(0, "android.widget.TextView", pkg, "[0,2000][1080,2100]", text="Swipe up to unlock")
    return _hierarchy(
        _node(0, "android.widget.FrameLayout", pkg, "[0,0][1080,2400]", hint, rid=f"{pkg}:id/keyguard_root_view")
    )


def imei_dialog(dialer: str, style: str, imeis: list[str]) -> str:
    """The ``*#06#`` dialog of a vendor's dialer.

    :param dialer: the package showing the dialog.
    :param style: ``"google"`` (plain numbers), ``"samsung"`` (IMEI/SV with a slot label) or
        ``"miui"`` (one labelled line per IMEI and the MEID).
    :param imeis: the phone's IMEIs, slot 1 first.
    """
    if style == "samsung":
        lines = [f"IMEI{'' if len(imeis) == 1 else f' (Slot{n})'}\n{imei}/01" for n, imei in enumerate(imeis, 1)]
    elif style == "miui":
        lines = [f"IMEI{n}: {imei}" for n, imei in enumerate(imeis, 1)] + ["MEID: 99001234567890"]
    else:
        lines = list(imeis)
    pkg = "android"
    title_node = _node(
        0, "android.widget.TextView", dialer, "[126,945][954,1020]", text="IMEI", rid=f"{pkg}:id/alertTitle"
    )
    message = _node(
        0, "android.widget.TextView", dialer, "[126,1050][954,1250]", text="\n".join(lines), rid=f"{pkg}:id/message"
    )
    ok = _node(0, "android.widget.Button", dialer, "[780,1300][954,1400]", text="OK", rid=f"{pkg}:id/button1")
    panel = _node(1, "android.widget.LinearLayout", dialer, "[126,900][954,1420]", title_node, message, ok)
    return _hierarchy(_node(0, "android.widget.FrameLayout", dialer, "[0,0][1080,2400]", panel))
