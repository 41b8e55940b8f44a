"""FX for payment-versus-payment: providers' rates, the choice of rate, and the converted amount.

Rates are exact fractions parsed from the decimal strings providers post, so conversion never
touches a float: the credited amount is amount x rate rounded to the target currency's minor unit,
halves to even (error at most half a minor unit, no bias).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from setara.core.commands import EngineError, Notice, PostRate, Submit
from setara.core.money import RateError
from setara.core.money import parse_rate as strict_rate

if TYPE_CHECKING:
    from setara.core.engine import Engine, Payment
    from setara.core.network import Network

__all__ = ["QUOTES_MAX", "Rate", "best_rate", "convert", "converted_amount", "parse_rate", "post_rate",
           "purge_expired_quotes", "rate_from", "rate_state"]

# Locked quotes live until they expire; expired ones are purged at day close. Above this many live
# quotes a new one is refused (a provider should lock a quote per trade, not per second).
QUOTES_MAX = 100_000
RATE_TEXT_MAX = 32


@dataclass(slots=True)
class Rate:
    provider: str
    base: str
    quote: str
    text: str
    value: Fraction
    expires_ms: int
    posted_ms: int


def parse_rate(text: str) -> Fraction:
    """A posted rate: a positive decimal string (the shell checks its form more strictly before it
    reaches the log; this is what replay relies on)."""
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise EngineError(f"rate {text!r} is not a decimal number") from None
    if value <= 0 or "/" in text or len(text) > RATE_TEXT_MAX:
        raise EngineError(f"rate {text!r} must be a positive decimal")
    return value


def rate_state(r: Rate) -> list[Any]:
    return [r.provider, r.base, r.quote, r.text, r.expires_ms, r.posted_ms]


def rate_from(r: Sequence[Any]) -> Rate:
    return Rate(r[0], r[1], r[2], r[3], parse_rate(r[3]), r[4], r[5])


def converted_amount(amount_minor: int, rate: Fraction, from_units: int, to_units: int) -> int:
    """Documented FX rounding rule: amount x rate in the target currency's minor units, rounded
    half to even."""
    credit: int = round(amount_minor * rate * 10**to_units / 10**from_units)
    return credit


def best_rate(rates: Mapping[tuple[str, str, str], Rate], network: Network, frozen: Mapping[str, str],
              base: str, quote: str, time_ms: int, exclude: tuple[str, ...]) -> tuple[Fraction, str, str] | None:
    """Best valid rate for the payer (most `quote` per `base`); ties go to the lower id so the
    choice is deterministic. A provider's B/A rate serves A->B at its reciprocal unless it posted
    A/B itself."""
    best: tuple[Fraction, str, str] | None = None
    for (prov, b, q), r in sorted(rates.items()):
        if r.expires_ms <= time_ms or prov in exclude:
            continue
        m = network.members.get(prov)
        if m is None or m.suspended or prov in frozen:
            continue
        if (b, q) == (base, quote):
            cand = (r.value, prov, r.text)
        elif (b, q) == (quote, base) and (prov, base, quote) not in rates:
            cand = (1 / r.value, prov, f"1/{r.text}")
        else:
            continue
        if best is None or cand[0] > best[0]:
            best = cand
    return best


def convert(engine: Engine, p: Payment, cmd: Submit) -> tuple[str, str] | None:
    """Fix the provider, rate and credited amount of a cross-currency payment, or say why not
    (reason code, text)."""
    net = engine.net()
    to = cmd.to_currency
    if to is None:
        return ("AM03", "no target currency")
    if to not in net.currencies:
        return ("AM03", f"currency {to} is not in the network")
    best: tuple[Fraction, str, str] | None
    if cmd.quote_id is not None:
        q = engine.quotes.get(cmd.quote_id)
        if q is None or q.expires_ms <= cmd.time_ms:
            return ("AG09", f"FX quote {cmd.quote_id} is unknown or expired")
        if (q.base, q.quote) != (p.currency, to):
            return ("AG09", f"FX quote {cmd.quote_id} is for {q.base}/{q.quote}")
        best = (q.value, q.provider, q.text)
    else:
        best = best_rate(engine.rates, net, engine.frozen, p.currency, to, cmd.time_ms, (p.debtor, p.creditor))
    if best is None:
        return ("AG09", f"no valid FX rate for {p.currency}/{to}")
    value, provider, text = best
    credit = converted_amount(p.amount_minor, value, net.currencies[p.currency].currency.minor_units,
                              net.currencies[to].currency.minor_units)
    if credit <= 0:
        return ("AM12", f"amount converts to less than one {to} minor unit")
    limit = net.currencies[to].max_amount_minor
    if credit > (limit if limit is not None else engine.supply(to)):
        return ("AM12", f"converted amount exceeds the {to} maximum")
    p.to_currency, p.provider, p.credit_minor = to, provider, credit
    p.rate = f"{p.currency}/{to}={text}@{provider}"
    return None


def post_rate(engine: Engine, cmd: PostRate) -> None:
    net = engine.net()
    m = net.members.get(cmd.provider)
    if m is None or not m.is_fx_provider:
        raise EngineError(f"{cmd.provider} is not an FX provider")
    for c in (cmd.base, cmd.quote):
        if c not in net.currencies:
            raise EngineError(f"currency {c} is not in the network")
        if not engine.ledger.has((cmd.provider, c)):
            raise EngineError(f"{cmd.provider} has no {c} account")
    if cmd.base == cmd.quote:
        raise EngineError("a rate needs two different currencies")
    try:
        strict_rate(cmd.rate)  # the form a newly posted rate must have (stored ones reload as they were)
    except RateError as e:
        raise EngineError(f"rate: {e}") from None
    value = parse_rate(cmd.rate)
    rate = Rate(cmd.provider, cmd.base, cmd.quote, cmd.rate, value, cmd.expires_ms, cmd.time_ms)
    if cmd.quote_id is not None:
        if cmd.quote_id in engine.quotes:
            raise EngineError(f"quote id {cmd.quote_id} already used")
        if len(engine.quotes) >= QUOTES_MAX:
            raise EngineError(f"{QUOTES_MAX} locked quotes are live; wait for some to expire")
        engine.quotes[cmd.quote_id] = rate
    else:
        engine.rates[(cmd.provider, cmd.base, cmd.quote)] = rate
    engine.emit(Notice("rate", {"provider": cmd.provider, "pair": f"{cmd.base}/{cmd.quote}", "rate": cmd.rate,
                                "quote_id": cmd.quote_id}))


def purge_expired_quotes(quotes: dict[str, Rate], time_ms: int) -> None:
    """Drop locked quotes that can no longer be used: a payment naming one gets the same answer
    (unknown or expired) either way."""
    for qid in [k for k, q in quotes.items() if q.expires_ms <= time_ms]:
        del quotes[qid]
