"""`setara fx rate|quote|rates|positions`: FX providers' rates, quotes and positions."""

import csv
import re
import sys
from typing import Annotated

import typer

from setara.cli.common import DEFAULT_DB, DbOpt, FormatOpt, check_format, emit, fail, open_node, out, refusals

fx_app = typer.Typer(no_args_is_help=True, help="FX providers' rates and quotes.")

ProviderOpt = Annotated[str, typer.Option("--provider")]
PairOpt = Annotated[str, typer.Option("--pair", help="BASE/QUOTE, e.g. IDR/MYR.")]
RateOpt = Annotated[str, typer.Option("--rate", help="Units of QUOTE per unit of BASE, a decimal string.")]

# A decimal string written out: no sign, exponent or fraction, so the logged text means one value.
_RATE = re.compile(r"(\d+)(?:\.(\d+))?")
RATE_DIGITS_MAX = 18


def _check_rate(text: str) -> None:
    m = _RATE.fullmatch(text)
    if m is None:
        fail(f"--rate: {text!r} is not a decimal number such as 0.000283 (no sign or exponent)", 2)
    digits = (m.group(1) + (m.group(2) or "")).lstrip("0")
    if not digits.strip("0"):
        fail("--rate: must be greater than zero", 2)
    if len(digits.rstrip("0")) > RATE_DIGITS_MAX:
        fail(f"--rate: at most {RATE_DIGITS_MAX} significant digits", 2)


def _post(provider: str, pair: str, rate: str, seconds: int, option: str, db: str, *, locked: bool) -> str:
    from setara.node.usecases import post_rate

    base, _, quote_ccy = pair.partition("/")
    if not base or not quote_ccy:
        fail("--pair must look like IDR/MYR", 2)
    _check_rate(rate)
    with open_node(db, write=True) as node, refusals({"provider": "--provider", "pair": "--pair", "rate": "--rate",
                                                      "expires_in": option}):
        return post_rate(node, provider, base, quote_ccy, rate, valid_for_s=seconds, locked=locked)


@fx_app.command("rate")
def fx_rate(provider: ProviderOpt, pair: PairOpt, rate: RateOpt,
            expires_in: Annotated[int, typer.Option("--expires-in", help="Seconds (default 24 h).")] = 86400,
            db: DbOpt = DEFAULT_DB) -> None:
    """An FX provider posts a rate: units of the second currency per unit of the first."""
    out(_post(provider, pair, rate, expires_in, "--expires-in", db, locked=False) + "\n")


@fx_app.command("quote")
def fx_quote(provider: ProviderOpt, pair: PairOpt, rate: RateOpt,
             valid_for: Annotated[int, typer.Option("--valid-for", help="Seconds the quote is locked.")] = 60,
             db: DbOpt = DEFAULT_DB) -> None:
    """Lock a rate for N seconds; prints the quote id an instruction may carry (`quote_id`)."""
    out(_post(provider, pair, rate, valid_for, "--valid-for", db, locked=True) + "\n")


@fx_app.command("rates")
def fx_rates(db: DbOpt = DEFAULT_DB,
             all_: Annotated[bool, typer.Option("--all", help="Include expired rates.")] = False) -> None:
    """List posted rates as CSV, best first per pair, with the spread against the best."""
    from setara.node.views import rates
    from setara.ports import now_ms

    with open_node(db, write=False) as node:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(["pair", "provider", "rate", "spread_vs_best_pct", "expires_ms", "valid"])
        for v in rates(node.engine, now_ms(), include_expired=all_):
            r = v.rate
            w.writerow([f"{r.base}/{r.quote}", r.provider, r.text, f"{float(v.spread * 100):.4f}", r.expires_ms,
                        "yes" if v.valid else "no"])


@fx_app.command("positions")
def fx_positions(db: DbOpt = DEFAULT_DB, fmt: FormatOpt = "csv") -> None:
    """Each FX provider's position per currency and its exposure to queued cross-currency payments."""
    from setara.core.money import format_amount
    from setara.node.views import fx_positions as positions

    check_format(fmt)
    with open_node(db, write=False) as node, refusals():
        net = node.network

        def amount(minor: int, currency: str) -> str:
            return format_amount(minor, net.minor_units(currency) or 0)

        rows = ({"provider": p.provider, "currency": p.currency, "balance": amount(p.balance_minor, p.currency),
                 "available": amount(p.available_minor, p.currency),
                 "queued_to_pay": amount(p.queued_to_pay_minor, p.currency),
                 "queued_to_receive": amount(p.queued_to_receive_minor, p.currency),
                 "shortfall": amount(p.shortfall_minor, p.currency), "queued_payments": p.queued_payments}
                for p in positions(node.engine, net))
        emit(rows, fmt, ["provider", "currency", "balance", "available", "queued_to_pay", "queued_to_receive",
                         "shortfall", "queued_payments"])


def register(app: typer.Typer) -> None:
    app.add_typer(fx_app, name="fx")
