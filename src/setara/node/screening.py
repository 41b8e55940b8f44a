"""Sanctions screening in the settlement path.

Every party of every payment is screened before the engine sees it; the decision travels inside the
Submit command (clear / review / block, with the list versions and the best score), so replay never
re-screens and an audit can reproduce it. What is screened:
- country measures: a party whose country, address, or any bank's BIC country is under comprehensive
  UN measures (the network's `comprehensive_sanction_countries`, KP always) is blocked (RR04);
- names: debtor, creditor, ultimate parties and intermediaries, against the union of the lists that
  bind every member the payment touches (debtor's bank, creditor's bank and, for cross-currency
  payments, every FX provider that could be chosen), so no member can route around a list that
  binds another. The UN list binds everyone.
Screening cannot be switched off for a payment: without a loaded list the names find no hit, and the
CLI says so on every command.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from setara.core.instructions import Instruction
from setara.core.network import Network
from setara.ports import ScreeningDecision
from setara.store import Store

if TYPE_CHECKING:
    from setara.compliance import ListData, Match, Screener

__all__ = ["ListVersion", "PaymentScreening", "hold_reference", "index_key", "latest_lists", "list_change_refusal",
           "list_status", "load_screener", "persist_indexes", "record_forced_list", "store_list"]

_NO_PARTIES = ScreeningDecision("clear", "no-parties")
NAME_FIELDS = ("debtor_name", "creditor_name", "ultimate_debtor_name", "ultimate_creditor_name")
SCREENERS_CACHED_MAX = 16
# A new version of a list may drop at most this share of the current version's entities: more looks
# like a truncated or wrong file, and every dropped entity is a designated party no longer screened.
LIST_DROP_SHARE_MAX = 0.05


@dataclass(frozen=True)
class ListVersion:
    version: int  # the import's number in this store
    source: str
    list_date: str | None
    checksum: str
    imported_ms: int
    entities: int


def store_list(store: Store, data: ListData) -> ListVersion:
    """Record one imported list as a new version (idempotent for an identical file)."""
    known = store.list_version_of(data.source, data.sha256)
    if known is not None:
        return ListVersion(known[0], data.source, data.list_date, data.sha256, known[1], data.entity_count)
    now = time.time_ns() // 1_000_000
    n = store.add_list_version(data.source, data.list_date, data.sha256, now, data.entity_count, data.to_bytes())
    return ListVersion(n, data.source, data.list_date, data.sha256, now, data.entity_count)


def hold_reference(list_versions: str, field: str, score: float, list_source: str | None,
                   entity_id: str | None) -> str:
    """The screening reference of a held or rejected payment, one format everywhere (docs/screening.md):
    `<list versions> <field> <score> <list>:<entity id>`, e.g.
    `un-xml@1 creditor_name 0.895 un-xml:111209`. List versions are `source@version` joined by `;`,
    the score has three decimals. It names the list record, so only compliance roles may see it."""
    return f"{list_versions} {field} {score:.3f} {list_source}:{entity_id}"[:200]


def list_change_refusal(current: ListData | None, new: ListData) -> str | None:
    """Why `new` must not replace `current` (same source) without an officer's --force, or None.

    Refused: a list dated before the current version (a downgrade), or one that drops more than
    LIST_DROP_SHARE_MAX of the current version's entities (by list id). Lists without a date in the
    file (OFAC legacy CSV) are compared by their entities only. Pure, so the CLI and a running
    server apply the same rule.
    """
    if current is None or current.sha256 == new.sha256:
        return None
    if current.list_date and new.list_date and new.list_date < current.list_date:
        return f"list dated {new.list_date} is older than the current version ({current.list_date})"
    kept = {e.id for e in new.entities}
    dropped = sum(1 for e in current.entities if e.id not in kept)
    if current.entities and dropped > LIST_DROP_SHARE_MAX * len(current.entities):
        return (f"list drops {dropped} of the current version's {len(current.entities)} entities "
                f"(more than {LIST_DROP_SHARE_MAX:.0%})")
    return None


def record_forced_list(store: Store, version: ListVersion, officer: str, why: str) -> None:
    """Log who loaded a refused list anyway, when, and what was overridden."""
    store.add_screening_audit(time.time_ns() // 1_000_000, "list-import", "forced",
                              f"officer {officer} forced {version.source}@{version.version}: {why}"[:500],
                              version.source, version.version)


def list_status(store: Store) -> list[ListVersion]:
    return [ListVersion(*r) for r in store.latest_list_versions()]


def latest_lists(store: Store) -> dict[str, tuple[int, ListData]]:
    out: dict[str, tuple[int, ListData]] = {}
    for v in list_status(store):
        from setara.compliance.lists import ListData  # only when a list is loaded: it pulls in ICU

        out[v.source] = (v.version, ListData.from_bytes(store.list_data(v.version)))
    return out


class PaymentScreening:
    """Screens instructions for the service; one Screener per combination of lists in force."""

    def __init__(self, lists: dict[str, tuple[int, ListData]],
                 review_threshold: float | None = None, block_threshold: float | None = None,
                 store: Store | None = None) -> None:
        self.lists = lists
        # With a store, built indexes are persisted with the list versions they cover and loaded from
        # there next time (a process start then skips normalising every listed name again). Only the
        # process that opened the store may use its connection: intake workers are forked from it.
        self.store = store
        self._pid = os.getpid()
        self._thresholds = (review_threshold, block_threshold)
        self._screeners: dict[tuple[str, ...], Screener] = {}

    @property
    def review_threshold(self) -> float:
        # The matcher (and its defaults) load only when a name is actually screened.
        from setara.compliance.matcher import REVIEW_THRESHOLD

        return REVIEW_THRESHOLD if self._thresholds[0] is None else self._thresholds[0]

    @property
    def block_threshold(self) -> float:
        from setara.compliance.matcher import BLOCK_THRESHOLD

        return BLOCK_THRESHOLD if self._thresholds[1] is None else self._thresholds[1]

    @classmethod
    def from_store(cls, store: Store) -> PaymentScreening:
        return cls(latest_lists(store), store=store)

    @property
    def loaded(self) -> bool:
        return bool(self.lists)

    def screener(self, sources: Iterable[str]) -> Screener | None:
        key = tuple(sorted(s for s in set(sources) if s in self.lists))
        if not key:
            return None
        sc = self._screeners.get(key)
        if sc is None:

            if len(self._screeners) >= SCREENERS_CACHED_MAX:
                self._screeners.pop(next(iter(self._screeners)))
            store = self.store if os.getpid() == self._pid else None
            sc = load_screener(store, {s: self.lists[s] for s in key}, self.review_threshold,
                               self.block_threshold)
            self._screeners[key] = sc
        return sc

    def drop_screeners(self) -> None:
        """Forget the screeners built so far; the next use loads them again (from the store's
        persisted index where there is one)."""
        self._screeners.clear()

    def sources_for(self, ins: Instruction, network: Network) -> list[str]:
        members = [ins.debtor, ins.creditor]
        if ins.to_currency is not None:
            members += [m.id for m in network.members.values() if m.is_fx_provider]
        sources = {"un-xml"}
        for mid in members:
            m = network.members.get(mid)
            if m is not None:
                sources.update(m.lists)
        return sorted(sources)

    def _refs(self, sources: Iterable[str]) -> str:
        return ";".join(f"{s}@{self.lists[s][0]}" for s in sources if s in self.lists) or "no-list"

    def decide(self, ins: Instruction, network: Network) -> ScreeningDecision:
        p = ins.parties
        if not p:
            # Members' own BIC countries are checked when they join and on every list change.
            return _NO_PARTIES
        if network.comprehensive_sanction_countries:
            bics = [network.members[m].bic for m in (ins.debtor, ins.creditor) if m in network.members]
            countries = [c for c in (p.get("debtor_country"), p.get("creditor_country")) if c]
            countries += [c for c in p.get("debtor_bic_countries", ()) if c]
            address = " | ".join(x for x in (p.get("debtor_address"), p.get("creditor_address")) if x) or None
            from setara.compliance.countries import country_rule_hit

            why = country_rule_hit(countries, address, bics, network.comprehensive_sanction_countries)
            if why is not None:
                return ScreeningDecision("block", f"country-rule: {why}"[:200], (
                    {"subject": "country", "decision": "block", "score": 1.0, "explanation": why},))
        sources = self.sources_for(ins, network)
        screener = self.screener(sources)
        if screener is None:
            return ScreeningDecision("clear", "no-list")
        best: tuple[float, str, Match] | None = None
        audits: list[dict[str, Any]] = []
        for field, name in _names(p):
            m = screener.screen(name, _country_for(field, p))
            if m.hit:
                audits.append({"subject": field, "decision": m.decision, "score": round(m.score, 4),
                               "entity_id": m.entity_id, "list": m.list, "matched_name": m.matched_name,
                               "list_versions": self._refs(sources), "explanation": m.explanation})
            if best is None or m.score > best[0]:
                best = (m.score, field, m)
        ref = self._refs(sources)
        if best is None:
            return ScreeningDecision("clear", ref)
        score, field, m = best
        decision = "block" if score >= self.block_threshold else "review" if score >= self.review_threshold \
            else "clear"
        if decision != "clear":
            ref = hold_reference(ref, field, score, m.list, m.entity_id)
        return ScreeningDecision(decision, ref[:200], tuple(audits))


def index_key(lists: dict[str, tuple[int, ListData]]) -> str:
    """The list versions an index covers, e.g. "eu-xml@2;un-xml@5"."""
    return ";".join(f"{s}@{lists[s][0]}" for s in sorted(lists))


def load_screener(store: Store | None, lists: dict[str, tuple[int, ListData]],
                  review_threshold: float | None = None, block_threshold: float | None = None,
                  persist: bool = False) -> Screener:
    """A Screener over `lists`, its index read from the store when one was persisted for exactly these
    list versions by this matcher code, else built (and persisted when asked: only list imports write,
    so intake workers reading the store never contend for it)."""
    from setara.compliance.matcher import BLOCK_THRESHOLD, REVIEW_THRESHOLD, Screener, index_fingerprint

    datas = [lists[s][1] for s in sorted(lists)]
    review = REVIEW_THRESHOLD if review_threshold is None else review_threshold
    block = BLOCK_THRESHOLD if block_threshold is None else block_threshold
    if store is None:
        return Screener(datas, review, block)
    key, fingerprint = index_key(lists), index_fingerprint()
    blob = store.get_list_index(key, fingerprint)
    if blob is not None:
        try:
            return Screener(datas, review, block, index=blob)
        except ValueError:
            pass  # not this matcher's index after all: build it again below
    sc = Screener(datas, review, block)
    if persist:
            store.put_list_index(key, fingerprint, sc.index_bytes(), time.time_ns() // 1_000_000)
    return sc


def persist_indexes(store: Store, network: Network) -> list[str]:
    """After a list import: build and store the indexes for the combinations of lists that payments
    between the network's members use (UN plus each member's lists), and for all lists together."""
    lists = latest_lists(store)
    combos = {tuple(sorted(({"un-xml"} | set(m.lists)) & set(lists))) for m in network.members.values()}
    combos.add(tuple(sorted(lists)))
    done: list[str] = []
    for combo in sorted(c for c in combos if c):
        chosen = {s: lists[s] for s in combo}
        load_screener(store, chosen, persist=True)
        done.append(index_key(chosen))
    return done


def _names(p: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for field in NAME_FIELDS:
        v = p.get(field)
        if v:
            yield field, v
    for v in p.get("intermediary_names", ()) or ():
        if v:
            yield "intermediary_name", v


def _country_for(field: str, p: dict[str, Any]) -> str | None:
    if field.startswith("debtor"):
        return p.get("debtor_country")
    if field.startswith("creditor"):
        return p.get("creditor_country")
    return None
