"""A business day of payments: generated from a seed, or loaded from a recorded CSV or ISO 20022 files.

The generator follows what payment-flow studies find in real RTGS data (Soramäki et al. 2007,
"The topology of interbank payment flows"): a scale-free counterparty network grown by preferential
attachment, so a few hubs carry most of the traffic; lognormal, heavy-tailed values; and an intraday
pattern with a morning and an afternoon peak. A share of payments crosses currencies (settled
payment-versus-payment through an FX provider), and a few carry parties that screening must catch.

Money is integral throughout (minor units); floats only shape the random draws.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from setara.core.money import AmountError, parse_amount
from setara.core.network import Network, example_toml, load_network

__all__ = [
    "DAY_END_S",
    "DAY_START_S",
    "REFERENCE_RATES",
    "Day",
    "DayError",
    "Payment",
    "base_network",
    "generate_day",
    "home_currencies",
    "load_csv_day",
    "load_day",
    "load_iso20022_day",
    "rate_text",
]

DAY_START_S = 8 * 3600  # opening of the business day, seconds after midnight
DAY_END_S = 18 * 3600  # cut-off
PAYMENTS_MAX = 2_000_000
SANCTIONED_MAX = 1000
# Units of each currency per US dollar: reference rates for FX quotes and for USD-equivalent
# figures in reports (documented in docs/simulator.md; override in a scenario's [rates]).
REFERENCE_RATES: dict[str, str] = {
    "USD": "1", "IDR": "16000", "MYR": "4.5", "THB": "35", "PHP": "57", "SGD": "1.35", "VND": "25000",
    "EUR": "0.92", "CNY": "7.2", "INR": "84", "JPY": "150", "KRW": "1350", "BND": "1.35",
}

# Customer names for generated parties: fictional trading firms per country.
_NAME_PARTS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "ID": (("PT",), ("Sinar", "Cahaya", "Mitra", "Karya", "Bumi", "Surya", "Mega", "Putra", "Sentosa", "Makmur"),
           ("Abadi Jaya", "Nusantara", "Lestari", "Sejahtera", "Perkasa", "Mandiri", "Utama", "Agung")),
    "MY": (("",), ("Syarikat", "Perniagaan", "Kilang", "Gemilang", "Seri", "Cahaya", "Bintang", "Harimau"),
           ("Maju Sdn Bhd", "Timur Sdn Bhd", "Emas Sdn Bhd", "Jaya Sdn Bhd", "Setia Sdn Bhd", "Bakti Sdn Bhd")),
    "TH": (("",), ("Siam", "Chao", "Lanna", "Rattana", "Thai", "Sukhothai", "Kasem", "Prasert"),
           ("Rubber Co Ltd", "Rice Export Co Ltd", "Trading Co Ltd", "Industries Co Ltd", "Logistics Co Ltd")),
    "PH": (("",), ("Luzon", "Visayas", "Mindanao", "Bayani", "Maharlika", "Tala", "Dagat", "Araw"),
           ("Trading Corp", "Exports Inc", "Holdings Inc", "Shipping Corp", "Foods Corp", "Textiles Inc")),
}
_GENERIC_PARTS = (("",), ("Harbour", "Meridian", "Summit", "Coastal", "Pioneer", "Lotus", "Orchid", "Jade"),
                  ("Trading Ltd", "Exports Ltd", "Industries Ltd", "Supply Ltd", "Foods Ltd"))


class DayError(ValueError):
    """An unreadable or inconsistent recorded day; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Payment:
    id: str
    debtor: str
    creditor: str
    currency: str
    amount_minor: int
    priority: int  # 0 URGENT, 1 NORMAL
    time_s: int  # seconds after midnight of the business day
    to_currency: str | None = None
    debtor_name: str = ""
    creditor_name: str = ""
    debtor_country: str = ""
    creditor_country: str = ""
    sanctioned: bool = False  # generated ground truth: a party screening must catch


@dataclass(frozen=True)
class Day:
    """One business day: payments in submission order and the FX rates quoted at the opening."""

    payments: tuple[Payment, ...]
    rates: tuple[tuple[str, str, str, str], ...] = ()  # (provider, base, quote, rate decimal text)
    start_s: int = DAY_START_S
    end_s: int = DAY_END_S
    date: str = "2026-01-05"
    source: str = "generated"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.payments) > PAYMENTS_MAX:
            raise DayError(f"a day holds at most {PAYMENTS_MAX} payments")

    @property
    def currencies(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for p in self.payments:
            seen[p.currency] = None
            if p.to_currency:
                seen[p.to_currency] = None
        return tuple(seen)

    def gross_minor(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.payments:
            out[p.currency] = out.get(p.currency, 0) + p.amount_minor
        return out

    def start_ms(self) -> int:
        """Epoch milliseconds of midnight (UTC) of the day's date."""
        d = dt.date.fromisoformat(self.date)
        return int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp()) * 1000

    def without_fx_provider(self, provider: str) -> Day:
        return replace(self, rates=tuple(r for r in self.rates if r[0] != provider))


# ---------------------------------------------------------------------------------------------- network


def base_network() -> Network:
    """The example network (10 banks, IDR/MYR/THB/PHP, two FX providers) the demo and the
    generated scenarios run on."""
    return load_network(example_toml())


def home_currencies(network: Network) -> dict[str, str]:
    """Each member's home currency: the currency whose settlement agent sits in its country."""
    by_country = {c.agent_bic[4:6]: code for code, c in network.currencies.items()}
    first = next(iter(network.currencies))
    return {m.id: by_country.get(m.country, first) for m in network.members.values()}


def rate_text(value: Fraction | float, digits: int = 12) -> str:
    """A positive decimal rate as plain text (no exponent), at most 32 characters."""
    d = Decimal(float(value)) if isinstance(value, float) else Decimal(value.numerator) / Decimal(value.denominator)
    text = f"{d:.{digits}f}".rstrip("0").rstrip(".")
    if text in ("", "0"):
        raise ValueError(f"rate {value} rounds to zero")
    return text[:32]


def _ref(rates: dict[str, str], code: str) -> Fraction:
    return Fraction(rates.get(code, "1"))


def fx_quotes(network: Network, rates: dict[str, str] | None = None, spread_bp: int = 20
              ) -> tuple[tuple[str, str, str, str], ...]:
    """Every FX provider quotes every ordered currency pair it holds accounts in, at the reference
    cross rate less a spread (each provider a little wider than the previous, so the best quote is
    deterministic)."""
    rates = rates or REFERENCE_RATES
    out = []
    providers = [m.id for m in network.members.values() if m.is_fx_provider]
    for k, prov in enumerate(providers):
        held = [c for c in network.currencies if (prov, c) in network.accounts]
        spread = Fraction(spread_bp + 5 * k, 10_000)
        for base in held:
            for quote in held:
                if base != quote:
                    r = _ref(rates, quote) / _ref(rates, base) * (1 - spread)
                    out.append((prov, base, quote, rate_text(r)))
    return tuple(out)


# ---------------------------------------------------------------------------------------------- generator


def _pa_weights(rng: np.random.Generator, n: int, links: int) -> np.ndarray:
    """Directed traffic weights from a Barabási-Albert graph (preferential attachment): a new node
    links to `links` existing nodes chosen in proportion to their degree; a link's traffic grows with
    both ends' degree, times lognormal noise."""
    w = np.zeros((n, n))
    links = max(1, min(links, n - 1))
    degree = np.zeros(n)
    core = list(range(links + 1))
    for i in core:
        for j in core:
            if i < j:
                w[i, j] = w[j, i] = 1.0
                degree[i] += 1
                degree[j] += 1
    for v in range(links + 1, n):
        p = degree[:v] / degree[:v].sum()
        targets = rng.choice(v, size=links, replace=False, p=p)
        for t in targets.tolist():
            w[v, t] = w[t, v] = 1.0
            degree[v] += 1
            degree[t] += 1
    noise = rng.lognormal(0.0, 0.6, size=(n, n))
    traffic = w * np.outer(degree, degree) * np.sqrt(noise * noise.T)  # two-way trade on a link
    # a thin floor of direct traffic between every pair: real members all trade a little
    traffic += 0.05 * traffic.mean() * (1 - np.eye(n))
    np.fill_diagonal(traffic, 0.0)
    out: np.ndarray = traffic / traffic.sum()
    return out


def _intraday_times(rng: np.random.Generator, n: int, start_s: int, end_s: int) -> np.ndarray:
    """Two peaks (late morning and mid-afternoon) over a flat base; the last half hour before
    cut-off stays quiet so queues can clear."""
    span = end_s - start_s
    last = end_s - 1800
    pick = rng.random(n)
    t = np.where(pick < 0.45, rng.normal(start_s + 0.22 * span, 0.09 * span, n),
                 np.where(pick < 0.85, rng.normal(start_s + 0.68 * span, 0.11 * span, n),
                          rng.uniform(start_s, last, n)))
    return np.clip(np.rint(t), start_s, last).astype(np.int64)


def _company_names(rng: np.random.Generator, country: str, k: int) -> list[str]:
    pre, mid, suf = _NAME_PARTS.get(country, _GENERIC_PARTS)
    out: dict[str, None] = {}
    for _ in range(k * 4):
        name = " ".join(x for x in (pre[int(rng.integers(len(pre)))], mid[int(rng.integers(len(mid)))],
                                    mid[int(rng.integers(len(mid)))], suf[int(rng.integers(len(suf)))]) if x)
        out[name] = None
        if len(out) >= k:
            break
    return list(out)


def generate_day(
    network: Network,
    payments: int = 20_000,
    *,
    seed: int = 1,
    cross_currency_share: float = 0.2,
    urgent_share: float = 0.1,
    value_median_usd: float = 25_000.0,
    value_sigma: float = 1.7,
    links_per_member: int = 2,
    sanctioned_names: tuple[str, ...] = (),
    sanctioned_payments: int = 6,
    rates: dict[str, str] | None = None,
    date: str = "2026-01-05",
    start_s: int = DAY_START_S,
    end_s: int = DAY_END_S,
) -> Day:
    """A trade day on `network`, reproducible from `seed` (numpy's PCG64)."""
    if not 1 <= payments <= PAYMENTS_MAX:
        raise ValueError(f"payments must be in 1..{PAYMENTS_MAX}")
    if not 0.0 <= cross_currency_share <= 1.0 or not 0.0 <= urgent_share <= 1.0:
        raise ValueError("shares must be in [0, 1]")
    if not 0 <= start_s < end_s - 1800 <= 86_400:
        raise ValueError("the day must open at least 30 minutes before its cut-off")
    rates = {**REFERENCE_RATES, **(rates or {})}
    rng = np.random.default_rng(seed)
    members = [m.id for m in network.members.values() if not m.suspended]
    if len(members) < 2:
        raise ValueError("the network needs at least two members")
    home = home_currencies(network)
    country = {m.id: m.country for m in network.members.values()}
    order = rng.permutation(len(members))  # who joins the graph first (becomes a hub) is random too
    shuffled = [members[i] for i in order.tolist()]
    w = _pa_weights(rng, len(shuffled), links_per_member).ravel()
    pairs = rng.choice(len(w), size=payments, p=w)
    deb_idx, cred_idx = np.divmod(pairs, len(shuffled))
    times = np.sort(_intraday_times(rng, payments, start_s, end_s), kind="stable")
    usd = np.minimum(value_median_usd * rng.lognormal(0.0, value_sigma, payments), 5e8)
    urgent = rng.random(payments) < urgent_share
    cross = rng.random(payments) < cross_currency_share
    pay_home = rng.random(payments) < 0.5
    names = {c: _company_names(rng, c, 40) for c in sorted(set(country.values()))}
    name_pick = rng.zipf(1.6, size=(payments, 2))
    bad = set(rng.choice(payments, size=min(sanctioned_payments, payments, SANCTIONED_MAX), replace=False).tolist()
              ) if sanctioned_names and sanctioned_payments > 0 else set()
    out: list[Payment] = []
    for i in range(payments):
        d = shuffled[int(deb_idx[i])]
        c = shuffled[int(cred_idx[i])]
        hd, hc = home[d], home[c]
        to: str | None = None
        if cross[i] and hd != hc and (d, hd) in network.accounts and (c, hc) in network.accounts:
            ccy, to = hd, hc
        else:
            ccy = hd if pay_home[i] else hc
            if (d, ccy) not in network.accounts or (c, ccy) not in network.accounts:
                ccy = hd
        units = network.currencies[ccy].currency.minor_units
        amount = max(1, round(float(usd[i]) * float(_ref(rates, ccy)) * 10**units))
        cd, cc = country[d], country[c]
        pool_d, pool_c = names[cd], names[cc]
        dn = pool_d[(int(name_pick[i, 0]) - 1) % len(pool_d)]
        cn = pool_c[(int(name_pick[i, 1]) - 1) % len(pool_c)]
        flagged = i in bad
        if flagged:
            listed = sanctioned_names[int(rng.integers(len(sanctioned_names)))]
            if rng.random() < 0.5:
                listed = _misspell(listed, rng)  # a near match: held for review, not refused outright
            if rng.random() < 0.5:
                dn = listed
            else:
                cn = listed
        out.append(Payment(f"D{i + 1:07d}", d, c, ccy, amount, 0 if urgent[i] else 1, int(times[i]), to,
                           dn, cn, cd, cc, flagged))
    return Day(tuple(out), fx_quotes(network, rates), start_s, end_s, date, f"generated(seed={seed})",
               {"seed": seed, "payments": payments, "cross_currency_share": cross_currency_share})


def _misspell(name: str, rng: np.random.Generator) -> str:
    """One vowel of the longest word changed: how a name drifts in transliteration or typing."""
    words = name.split()
    k = max(range(len(words)), key=lambda j: len(words[j]))
    w = words[k]
    spots = [j for j, ch in enumerate(w) if ch.lower() in "aeiou" and j > 0]
    if not spots:
        return name
    j = spots[int(rng.integers(len(spots)))]
    repl = "aeiou"[(("aeiou".index(w[j].lower())) + 1 + int(rng.integers(4))) % 5]
    words[k] = w[:j] + repl + w[j + 1:]
    return " ".join(words)


# ---------------------------------------------------------------------------------------------- recorded days


def _time_of(text: str, where: str, date: str | None) -> tuple[int, str | None]:
    """Seconds after midnight from `3600`, `09:30`, `09:30:15` or an ISO datetime."""
    t = text.strip()
    if not t:
        raise DayError(f"{where}: empty time")
    if t.isdigit():
        return int(t), None
    if "T" in t or len(t) > 8:
        try:
            stamp = dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
        except ValueError:
            raise DayError(f"{where}: time {t!r} is not seconds, HH:MM[:SS] or an ISO datetime") from None
        return stamp.hour * 3600 + stamp.minute * 60 + stamp.second, stamp.date().isoformat()
    parts = t.split(":")
    if len(parts) in (2, 3) and all(x.isdigit() for x in parts):
        h, m = int(parts[0]), int(parts[1])
        s = int(parts[2]) if len(parts) == 3 else 0
        if h < 24 and m < 60 and s < 60:
            return h * 3600 + m * 60 + s, date
    raise DayError(f"{where}: time {t!r} is not seconds, HH:MM[:SS] or an ISO datetime")


def _finish_recorded(payments: list[Payment], network: Network, source: str, date: str | None,
                     rates: dict[str, str] | None) -> Day:
    if not payments:
        raise DayError(f"{source}: no payments")
    payments.sort(key=lambda p: p.time_s)  # stable: equal times keep file order
    start = min(DAY_START_S, payments[0].time_s)
    end = max(DAY_END_S, payments[-1].time_s + 1800)
    if end > 86_400 + 1800:
        raise DayError(f"{source}: times beyond the day")
    return Day(tuple(payments), fx_quotes(network, {**REFERENCE_RATES, **(rates or {})}), start, end,
               date or "2026-01-05", source)


def load_csv_day(text: str, network: Network, *, source: str = "csv", rates: dict[str, str] | None = None) -> Day:
    """A recorded day as CSV: header `id,debtor,creditor,currency,amount,priority,time` (amount a
    decimal string in major units; priority URGENT|NORMAL, empty = NORMAL; time seconds after
    midnight, HH:MM[:SS] or ISO datetime), optional `to_currency, debtor_name, creditor_name,
    debtor_country, creditor_country`."""
    reader = csv.DictReader(io.StringIO(text))
    need = {"id", "debtor", "creditor", "currency", "amount", "time"}
    missing = need - set(reader.fieldnames or ())
    if missing:
        raise DayError(f"{source}: missing column(s) {', '.join(sorted(missing))}")
    out: list[Payment] = []
    seen: set[str] = set()
    date: str | None = None
    for n, row in enumerate(reader, start=2):
        where = f"{source}:{n}"
        pid = (row.get("id") or "").strip()
        if not pid or pid in seen:
            raise DayError(f"{where}: missing or repeated id {pid!r}")
        seen.add(pid)
        deb, cred, ccy = (row.get(k, "").strip() for k in ("debtor", "creditor", "currency"))
        for who in (deb, cred):
            if who not in network.members:
                raise DayError(f"{where}: {who!r} is not a member of the network")
        units = network.minor_units(ccy)
        if units is None:
            raise DayError(f"{where}: currency {ccy!r} is not in the network")
        try:
            amount = parse_amount((row.get("amount") or "").strip(), units)
        except AmountError as e:
            raise DayError(f"{where}: amount: {e}") from None
        prio = (row.get("priority") or "NORMAL").strip().upper()
        if prio not in ("URGENT", "NORMAL", "0", "1"):
            raise DayError(f"{where}: priority must be URGENT or NORMAL")
        t, d = _time_of(row.get("time") or "", where, date)
        date = date or d
        to = (row.get("to_currency") or "").strip() or None
        if to is not None and to not in network.currencies:
            raise DayError(f"{where}: to_currency {to!r} is not in the network")
        out.append(Payment(pid, deb, cred, ccy, amount, 0 if prio in ("URGENT", "0") else 1, t,
                           None if to == ccy else to, (row.get("debtor_name") or "").strip(),
                           (row.get("creditor_name") or "").strip(), (row.get("debtor_country") or "").strip(),
                           (row.get("creditor_country") or "").strip()))
    return _finish_recorded(out, network, source, date, rates)


def load_iso20022_day(folder: Path, network: Network, *, rates: dict[str, str] | None = None) -> Day:
    """A recorded day as a folder of ISO 20022 pacs.008/pacs.009 files (one message a file, any
    number of transactions). A transaction's time is its message's CreDtTm; members are found by
    the settlement BICs; transactions the hub would reject are skipped and counted in `meta`."""
    from setara.iso20022 import Iso20022Error, parse_message, settlement_members

    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".xml")
    if not files:
        raise DayError(f"{folder}: no .xml files")
    out: list[Payment] = []
    skipped = 0
    date: str | None = None
    seen: set[str] = set()
    for f in files:
        try:
            msg = parse_message(f.read_bytes())
        except Iso20022Error as e:
            raise DayError(f"{f}: {e}") from None
        t_s = 0
        if msg.created_at_text:
            t_s, d = _time_of(msg.created_at_text, str(f), date)
            date = date or d
        for tx in msg.transactions:
            if tx.kind not in ("credit_transfer", "fi_credit_transfer") or tx.error is not None:
                skipped += 1
                continue
            deb, cred = settlement_members(tx, network.member_by_bic)
            ccy = tx.currency or ""
            units = network.minor_units(ccy)
            pid = tx.instr_id or tx.end_to_end_id or tx.uetr or f"{msg.msg_id}:{tx.index}"
            if deb is None or cred is None or units is None or tx.amount_text is None or pid in seen:
                skipped += 1
                continue
            try:
                amount = parse_amount(tx.amount_text, units)
            except AmountError:
                skipped += 1
                continue
            seen.add(pid)
            prio = 0 if (tx.priority or "").upper() in ("HIGH", "URGT") else 1
            dn = tx.debtor.name if tx.debtor is not None and tx.debtor.name else ""
            cn = tx.creditor.name if tx.creditor is not None and tx.creditor.name else ""
            dc = tx.debtor.country if tx.debtor is not None and tx.debtor.country else ""
            cc = tx.creditor.country if tx.creditor is not None and tx.creditor.country else ""
            out.append(Payment(pid[:64], deb, cred, ccy, amount, prio, t_s, None, dn, cn, dc, cc))
    day = _finish_recorded(out, network, str(folder), date, rates)
    day.meta["skipped"] = skipped
    return day


def load_day(path: str, network: Network, *, rates: dict[str, str] | None = None) -> Day:
    """A CSV file or a folder of ISO 20022 files."""
    p = Path(path)
    if p.is_dir():
        return load_iso20022_day(p, network, rates=rates)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise DayError(f"{path}: {e.strerror or e}") from None
    return load_csv_day(text, network, source=str(path), rates=rates)


def usd_value(amount_minor: int, currency: str, units: int, rates: dict[str, str] | None = None) -> float:
    """USD equivalent at the reference rates (statistics and plots only)."""
    r = (rates or REFERENCE_RATES).get(currency, "1")
    try:
        return float(amount_minor / 10**units / float(Decimal(r)))
    except (InvalidOperation, ZeroDivisionError):
        return float(amount_minor / 10**units)
