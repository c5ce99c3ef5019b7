"""Marketing names of phones whose ``ro.product.model`` is a model code.

Samsung and Xiaomi report codes such as ``SM-G991B``; Xiaomi (MIUI) also publishes
``ro.product.marketname``, which is read first. Google, Motorola, Nokia (HMD) and OnePlus put
the marketing name in the model property itself.
"""

from __future__ import annotations

#: Model code (without a ``/DS`` dual-SIM suffix) -> marketing name.
MARKETING_NAMES: dict[str, str] = {
    "SM-G960F": "Galaxy S9",
    "SM-G960U": "Galaxy S9",
    "SM-G965F": "Galaxy S9+",
    "SM-G973F": "Galaxy S10",
    "SM-G975F": "Galaxy S10+",
    "SM-G980F": "Galaxy S20",
    "SM-G981B": "Galaxy S20 5G",
    "SM-G991B": "Galaxy S21 5G",
    "SM-G991U": "Galaxy S21 5G",
    "SM-G996B": "Galaxy S21+ 5G",
    "SM-G998B": "Galaxy S21 Ultra 5G",
    "SM-S901B": "Galaxy S22",
    "SM-S911B": "Galaxy S23",
    "SM-S921B": "Galaxy S24",
    "SM-A515F": "Galaxy A51",
    "SM-A525F": "Galaxy A52",
    "SM-A526B": "Galaxy A52 5G",
    "SM-A536B": "Galaxy A53 5G",
    "SM-A546B": "Galaxy A54 5G",
    "M2101K7AG": "Redmi Note 10",
    "M2101K7AI": "Redmi Note 10",
    "M2101K7BG": "Redmi Note 10S",
    "M2101K6G": "Redmi Note 10 Pro",
    "2201117TG": "Redmi Note 11",
}

#: Makers whose ``ro.product.model`` is already the marketing name (lower case).
MODEL_IS_MARKETING_NAME = frozenset({"google", "motorola", "hmd global", "oneplus", "nothing", "fairphone"})

#: Properties that carry a marketing name, most specific first.
MARKETING_PROPS = ("ro.product.marketname", "ro.product.vendor.marketname", "ro.config.marketing_name")


def marketing_name(model: str) -> str:
    """The marketing name of a model code, "" when the table does not know it."""
    return MARKETING_NAMES.get(model.split("/", 1)[0].strip().upper(), "")
