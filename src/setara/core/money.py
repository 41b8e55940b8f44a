"""Currencies and amounts.

Money is an integer count of a currency's minor units. Amounts cross the boundary as decimal
strings in major units ("1250.50") and are refused when they carry more digits than the
currency allows; floats never touch an amount.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

__all__ = [
    "AMOUNT_MINOR_MAX",
    "ISO4217_MINOR_UNITS",
    "RATE_DIGITS_MAX",
    "RATE_MAX",
    "RATE_MIN",
    "SUPPLY_MINOR_MAX",
    "AmountError",
    "Currency",
    "RateError",
    "format_amount",
    "parse_amount",
    "parse_rate",
]

# ISO 4217 minor units for the currencies a trade network in the region is likely to use, plus
# the majors. A network may declare any other three-letter code with explicit minor units.
ISO4217_MINOR_UNITS: dict[str, int] = {
    "IDR": 2, "MYR": 2, "THB": 2, "SGD": 2, "PHP": 2, "VND": 0, "CNY": 2, "KRW": 0, "JPY": 0,
    "INR": 2, "AED": 2, "SAR": 2, "BND": 2, "KHR": 2, "LAK": 2, "MMK": 2, "HKD": 2, "TWD": 2,
    "BDT": 2, "PKR": 2, "LKR": 2, "NPR": 2, "USD": 2, "EUR": 2, "GBP": 2, "CHF": 2, "AUD": 2,
    "NZD": 2, "CAD": 2, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3, "CLF": 4, "RUB": 2,
    "BRL": 2, "ZAR": 2, "TRY": 2, "EGP": 2, "NGN": 2, "KES": 2, "MXN": 2, "ISK": 0, "UGX": 0,
}

_CODE_RE = re.compile(r"[A-Z]{3}")
# Optional sign, digits, optional fraction. No exponents, no grouping, no spaces: a payment
# amount is never written "1e3" or "1,000" by a bank system that means it.
_AMOUNT_RE = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")
_AMOUNT_TEXT_MAX = 40
# No currency's supply comes near this; it keeps every amount and sum inside a signed 64-bit
# database integer.
AMOUNT_MINOR_MAX = 10**18
# The most a currency's accounts may hold in all (opening balances plus credit lines, then funding):
# the floor of a settlement agent's issuance account in the ledger, so every balance and every
# "available" figure fits a signed 64-bit database column (2**63 - 1) with room to spare.
SUPPLY_MINOR_MAX = 2**62
_POW10: list[int] = [10**k for k in range(5)]

# FX rates (units of the quote currency per unit of the base): a plain positive decimal with at
# most 18 significant digits, within [RATE_MIN, RATE_MAX]. The widest real pair (e.g. VND or IDR
# against KWD) is near 1e-5..1e5; the bounds leave seven orders of magnitude either side while
# keeping amount x rate far from overflow and from rounding every credit to zero.
_RATE_RE = re.compile(r"([0-9]+)(?:\.([0-9]+))?")
_RATE_TEXT_MAX = 40
RATE_DIGITS_MAX = 18
_RATE_MIN_TEXT, _RATE_MAX_TEXT = "0.000000000001", "1000000000000"
RATE_MIN, RATE_MAX = Fraction(_RATE_MIN_TEXT), Fraction(_RATE_MAX_TEXT)


class AmountError(ValueError):
    """An amount that is not a valid decimal string for its currency."""


class RateError(ValueError):
    """An FX rate that is not a plain positive decimal string within the documented bounds."""


@dataclass(frozen=True, slots=True)
class Currency:
    code: str
    minor_units: int

    def __post_init__(self) -> None:
        if not _CODE_RE.fullmatch(self.code):
            raise ValueError(f"currency code {self.code!r} is not three upper-case letters")
        if not 0 <= self.minor_units <= 4:
            raise ValueError(f"currency {self.code}: minor_units must be 0..4, got {self.minor_units}")
        known = ISO4217_MINOR_UNITS.get(self.code)
        if known is not None and known != self.minor_units:
            raise ValueError(
                f"currency {self.code}: ISO 4217 gives {known} minor units, not {self.minor_units}"
            )


def parse_amount(text: str, minor_units: int, *, allow_negative: bool = False) -> int:
    """Decimal string in major units -> integer minor units; exact or refused."""
    if type(text) is str:
        # The common forms ("1234.56", "1234"), without a regular expression: this runs once per
        # payment. isdigit() alone would admit other scripts' digits; isascii() keeps them out.
        # At most 18 digits in all, so below AMOUNT_MINOR_MAX without checking.
        whole, dot, frac = text.partition(".")
        if len(frac) == minor_units and len(whole) + minor_units <= 18 and whole.isdigit() and text.isascii() \
                and (frac.isdigit() if dot else not minor_units):
            return int(whole + frac)
        if not dot and len(whole) + minor_units <= 18 and whole.isdigit() and whole.isascii() and minor_units < 5:
            return int(whole) * _POW10[minor_units]
    if not isinstance(text, str):
        raise AmountError("amount must be a decimal string")
    text = text.strip()
    if len(text) > _AMOUNT_TEXT_MAX:
        raise AmountError("amount is too long")
    m = _AMOUNT_RE.fullmatch(text)
    if m is None:
        raise AmountError(f"amount {text!r} is not a decimal number")
    sign, whole, frac = m.group(1), m.group(2), m.group(3) or ""
    if len(frac) > minor_units:
        # Trailing zeros beyond the minor unit carry no value, but a bank that sends them
        # has not formatted for this currency; refuse rather than guess (AM12).
        raise AmountError(f"amount {text!r} has more than {minor_units} decimals")
    minor = int(whole) * 10**minor_units + (int(frac.ljust(minor_units, "0")) if minor_units else 0)
    minor = int(minor)
    if minor > AMOUNT_MINOR_MAX:
        raise AmountError(f"amount {text!r} is larger than any supply this network can hold")
    if sign:
        if not allow_negative:
            raise AmountError("amount must not be negative")
        minor = -minor
    return minor


def format_amount(minor: int, minor_units: int) -> str:
    """Integer minor units -> decimal string in major units, exact."""
    if minor_units == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    q, r = divmod(abs(minor), 10**minor_units)
    return f"{sign}{q}.{r:0{minor_units}d}"


def parse_rate(text: str) -> Fraction:
    """An FX rate as posted ("0.000283") -> its exact value; refused unless it is a plain decimal
    (digits, optional fraction: no sign, exponent, spaces or grouping) with at most
    RATE_DIGITS_MAX significant digits, between RATE_MIN and RATE_MAX inclusive."""
    if not isinstance(text, str):
        raise RateError("rate must be a decimal string such as \"0.000283\"")
    shown = text if len(text) <= _RATE_TEXT_MAX else text[:_RATE_TEXT_MAX] + "..."
    m = _RATE_RE.fullmatch(text) if len(text) <= _RATE_TEXT_MAX and text.isascii() else None
    if m is None:
        raise RateError(f"rate {shown!r} is not a plain decimal number such as \"0.000283\" "
                        "(digits and one point; no sign, exponent or spaces)")
    whole, frac = m.group(1), m.group(2) or ""
    if len((whole + frac).lstrip("0")) > RATE_DIGITS_MAX:
        raise RateError(f"rate {text!r} has more than {RATE_DIGITS_MAX} significant digits")
    value = Fraction(int(whole + frac), 10 ** len(frac))
    if value <= 0:
        raise RateError(f"rate {text!r} must be greater than zero")
    if not RATE_MIN <= value <= RATE_MAX:
        raise RateError(f"rate {text!r} is outside {_RATE_MIN_TEXT}..{_RATE_MAX_TEXT}")
    return value

