"""Candidate index and scoring: who on the lists could this name be, and how sure are we.

Pipeline for one query: normalise (normalize.py) -> candidates from inverted indexes (exact token,
phonetic key, one-edit deletion neighbourhood, joined neighbouring tokens) -> score the best few
candidates by order-independent token alignment -> adjust for country and birth year -> decide.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import orjson

from setara.compliance import _align
from setara.compliance._align import (
    CANDIDATES_MAX,
    DELETION_TOKEN_LEN_MIN,
    JOINED_FACTOR,
    Raw,
    Side,
    default_weight,
)
from setara.compliance.countries import country_code
from setara.compliance.lists import Entity, ListData
from setara.compliance.normalize import (
    FORM_PREFIX,
    assimilated,
    clear_word_caches,
    is_form,
    name_variants,
    phonetic_key,
)
from setara.compliance.normalize import abjad_key as _abjad_key

Decision = Literal["clear", "review", "block"]

# Calibrated on eval/cases.csv and the seeded UN perturbation set; see docs/screening.md.
REVIEW_THRESHOLD = 0.82
BLOCK_THRESHOLD = 0.95

POSTING_MAX = 5000  # a key shared by more names than this is too common to narrow anything
CACHE_SIZE_DEFAULT = 100_000
# Bump when the stored index layout changes; the fingerprint also covers changes to the code.
INDEX_FORMAT = 1
QUERY_CHARS_MAX = 300
COUNTRY_MATCH_BONUS = 0.03
COUNTRY_MISMATCH_PENALTY = 0.05
YEAR_MATCH_BONUS = 0.04
YEAR_MISMATCH_PENALTY = 0.12
YEAR_TOLERANCE = 1
YEAR_MISMATCH_GAP = 5
ABJAD_KEY_LEN_MIN = 3  # shorter skeletons ("al", "mh") are shared by too many words to narrow anything


@dataclass(frozen=True, slots=True)
class Match:
    query: str
    hit: bool
    score: float
    entity_id: str | None
    list: str | None
    matched_name: str | None
    explanation: str
    decision: Decision

    def to_dict(self) -> dict[str, object]:
        """The `setara screen` JSON Lines record."""
        return {
            "query": self.query,
            "hit": self.hit,
            "score": self.score,
            "entity_id": self.entity_id,
            "list": self.list,
            "matched_name": self.matched_name,
        }


def _deletions(token: str) -> set[str]:
    return {token[:i] + token[i + 1 :] for i in range(len(token))}


def clear_caches() -> None:
    """Forget every memoised word and pair (benchmarks of first sight; memory)."""
    _align.clear_caches()
    clear_word_caches()


def token_similarity(a: str, b: str, key_a: str | None = None, key_b: str | None = None) -> float:
    """0..1 similarity of two normalised tokens: edit distance, Jaro-Winkler, then sound."""
    return _align.token_similarity(
        a, b, phonetic_key(a) if key_a is None else key_a, phonetic_key(b) if key_b is None else key_b
    )


def abjad_similarity(a: str, b: str, key_a: str, key_b: str) -> float:
    """Similarity of a token read from an abjad (a) and a listed token (b), by sound skeleton alone
    (capped at ABJAD_CAP, below the block threshold: such a match is always for an officer)."""
    return _align.abjad_similarity(a, b, key_a, key_b)


@dataclass(frozen=True, slots=True)
class _Alignment:
    score: float
    pairs: tuple[tuple[str, str, float], ...]
    dropped: tuple[str, ...]
    extra: tuple[str, ...]
    joined: bool


def align(q: Side, c: Side, detail: bool = False) -> _Alignment | float:
    """Order-independent greedy alignment of query and list tokens, weighted by list-token weight.

    Returns the score alone unless detail is asked for (only the winning candidate needs words).
    """
    raw = _align.align(q, c)
    if not detail:
        return raw[0]
    return _detail(q, c, raw)


def _detail(q: Side, c: Side, raw: Raw) -> _Alignment:
    """Words of an alignment, for the explanation: only the winner of a query needs them."""
    score, token_score, kept, used_q, used_c = raw
    if score > token_score:
        return _Alignment(score, ((q.joined, c.joined, score / JOINED_FACTOR),), (), (), True)
    pairs = tuple((q.units[qi][0], c.units[ci][0], sim) for sim, qi, ci in kept)
    extra = tuple(t for i, t in enumerate(q.tokens) if not used_q >> i & 1)
    dropped = tuple(t for i, t in enumerate(c.tokens) if not used_c >> i & 1)
    return _Alignment(score, pairs, dropped, extra, False)


def _side(tokens: Sequence[str], abjad: bool = False) -> Side:
    return _align.build_side(tokens, [default_weight(t) for t in tokens], abjad, True)


def score_names(query: str, listed: str) -> float:
    """Score two names without a list index (no rarity weights); used for calibration on eval pairs."""
    best = 0.0
    for q in name_variants(query[:QUERY_CHARS_MAX]):
        qs = _side(q, _has_abjad(query))
        for c in name_variants(listed):
            best = max(best, float(align(qs, _side(c, _has_abjad(listed)))))  # type: ignore[arg-type]
    return round(min(1.0, best), 4)


# Whether the inner loops run compiled (setup.py builds them with mypyc), or as plain Python.
COMPILED = not _align.__file__.endswith(".py")

class _Index:
    """Inverted indexes over every reading of every name of every entity."""

    def __init__(self, lists: Sequence[ListData], blob: bytes | None = None) -> None:
        self.entities: list[Entity] = []
        self.entity_list: list[str] = []
        for data in lists:
            for entity in data.entities:
                self.entities.append(entity)
                self.entity_list.append(data.source)
        if blob is not None:
            self._load(blob)
        else:
            self._build()
        self.name_weights: list[tuple[float, ...]] = [
            tuple(self.token_weight[t] for t in tokens) for tokens in self.name_tokens
        ]
        self.name_sides: list[Side] = [
            _align.build_side(t, w, _has_abjad(d), True)
            for t, w, d in zip(self.name_tokens, self.name_weights, self.name_display, strict=True)
        ]
        # Names equal to the query up to token order: no other name can score higher, so a query
        # that is a listed name (the common case for a real hit) skips fuzzy scoring altogether.
        self.by_exact: dict[tuple[str, ...], list[int]] = {}
        # A weak alias spelt as the query is always scored too, but cannot stop the search: a strong
        # name of the same entity, misspelt, may still score higher than the weak alias's 0.95.
        self.by_exact_weak: dict[tuple[str, ...], list[int]] = {}
        for ni, tokens in enumerate(self.name_tokens):
            target = self.by_exact_weak if self.name_weak[ni] else self.by_exact
            target.setdefault(tuple(sorted(tokens)), []).append(ni)
        # Abjad skeletons of every listed word (probed by queries in Arabic script), and of the words
        # of names written in Arabic script (probed by every query, for the reverse direction).
        by_abjad: dict[str, list[int]] = {}
        by_abjad_script: dict[str, list[int]] = {}
        for ni, tokens in enumerate(self.name_tokens):
            script = self.name_sides[ni].abjad
            words = [t for t in tokens if not is_form(t)]
            # Neighbours joined too: a compound is one word in one spelling and two in another
            # ("Hamdullah" / "Hamd Allah", "Nasiruddin" / "Nasir al-Din").
            joined = [a + b for a, b in itertools.pairwise(words)]
            keys = {_abjad_key(t) for t in (*words, *joined)}
            for key in keys:
                if len(key) >= ABJAD_KEY_LEN_MIN:
                    by_abjad.setdefault(key, []).append(ni)
                    if script:
                        by_abjad_script.setdefault(key, []).append(ni)
            if script:
                # A Latin spelling joins "Nasir al-Din" as Nasiruddin or Nasiraldin: a word, the article
                # and the next word as one, with the article's l and without it before a sun letter.
                compounds = ["".join(words[i : i + 3]) for i in range(len(words) - 2) if words[i + 1] == "al"]
                alt = assimilated(tuple(words))
                if alt is not None:
                    compounds += [a + b for a, b in itertools.pairwise(alt)]
                for key in {_abjad_key(t) for t in compounds} - keys:
                    if len(key) >= ABJAD_KEY_LEN_MIN:
                        by_abjad_script.setdefault(key, []).append(ni)
        self.by_abjad: dict[str, list[int]] = {k: v for k, v in by_abjad.items() if len(v) <= POSTING_MAX}
        self.by_abjad_script: dict[str, list[int]] = {
            k: v for k, v in by_abjad_script.items() if len(v) <= POSTING_MAX
        }
        self.name_scripts: list[bool] = [side.abjad for side in self.name_sides]
        name_lengths = np.array([len(tokens) for tokens in self.name_tokens], dtype=np.float64)
        self.view = _align.IndexView(
            self.by_edit,
            self.by_key,
            self.by_abjad,
            self.by_abjad_script,
            self.token_weight,
            self.name_scripts,
            self.by_exact,
            self.by_exact_weak,
            self.name_sides,
            self.name_weak,
            self.name_entity,
            functools.partial(_top, name_lengths=name_lengths),
        )

    def _build(self) -> None:
        self.name_entity: list[int] = []
        self.name_display: list[str] = []
        self.name_tokens: list[tuple[str, ...]] = []
        self.name_weak: list[bool] = []
        for ei, entity in enumerate(self.entities):
            for names, weak in ((entity.names, False), (entity.weak_names, True)):
                for name in names:
                    for tokens in name_variants(name):
                        self.name_entity.append(ei)
                        self.name_display.append(name)
                        self.name_tokens.append(tokens)
                        self.name_weak.append(weak)
        doc_freq: dict[str, int] = {}
        for tokens in self.name_tokens:
            for t in set(tokens):
                doc_freq[t] = doc_freq.get(t, 0) + 1
        n_names = max(len(self.name_tokens), 1)
        self.token_weight: dict[str, float] = {}
        # Rarity weight: a token in one name out of 200 or fewer is fully informative; one in every
        # tenth name ("mohammed", "al") counts for much less.
        scale = math.log(200.0)
        for t, df in doc_freq.items():
            rarity = min(1.0, max(0.2, math.log(max(n_names / df, 1.0)) / scale)) if n_names > 200 else 1.0
            self.token_weight[t] = min(default_weight(t), rarity)
        by_edit: dict[str, list[int]] = {}
        by_key: dict[str, list[int]] = {}
        # Names share most tokens, so each distinct token's neighbourhood is worked out once.
        token_edits: dict[str, tuple[str, ...]] = {}
        for ni, tokens in enumerate(self.name_tokens):
            keys: set[str] = set()
            edits: set[str] = set()
            for t in tokens:
                if t[0] == FORM_PREFIX:
                    continue
                neighbours = token_edits.get(t)
                if neighbours is None:
                    neighbours = (t, *_deletions(t)) if len(t) >= DELETION_TOKEN_LEN_MIN else (t,)
                    token_edits[t] = neighbours
                edits.update(neighbours)
                key = phonetic_key(t)
                if len(key) >= 2:
                    keys.add(key)
            for a, b in itertools.pairwise(tokens):
                if a[0] != FORM_PREFIX and b[0] != FORM_PREFIX:
                    edits.add(a + b)
            for e in edits:
                posting = by_edit.get(e)
                if posting is None:
                    by_edit[e] = [ni]
                else:
                    posting.append(ni)
            for k in keys:
                by_key.setdefault(k, []).append(ni)
        # Over-long postings are dropped here, once.
        self.by_edit: dict[str, list[int]] = {k: v for k, v in by_edit.items() if len(v) <= POSTING_MAX}
        self.by_key: dict[str, list[int]] = {k: v for k, v in by_key.items() if len(v) <= POSTING_MAX}

    def to_bytes(self) -> bytes:
        """The built index (normalised readings, weights, postings) for persisting with the lists."""
        return orjson.dumps({
            "format": INDEX_FORMAT,
            "entities": [e.id for e in self.entities],
            "name_entity": self.name_entity,
            "name_display": self.name_display,
            "name_tokens": self.name_tokens,
            "name_weak": self.name_weak,
            "token_weight": self.token_weight,
            "by_edit": self.by_edit,
            "by_key": self.by_key,
        })

    def _load(self, blob: bytes) -> None:
        try:
            doc = orjson.loads(blob)
            if doc["format"] != INDEX_FORMAT:
                raise ValueError(f"index format {doc['format']!r}, expected {INDEX_FORMAT}")
            if doc["entities"] != [e.id for e in self.entities]:
                raise ValueError("index was built for other entities")
            self.name_entity = doc["name_entity"]
            self.name_display = doc["name_display"]
            self.name_tokens = [tuple(t) for t in doc["name_tokens"]]
            self.name_weak = doc["name_weak"]
            self.token_weight = doc["token_weight"]
            self.by_edit = doc["by_edit"]
            self.by_key = doc["by_key"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"not a stored screening index: {exc}") from exc

    def weight(self, token: str) -> float:
        return self.token_weight.get(token, default_weight(token))

    def candidates(self, tokens: Sequence[str], abjad: bool = False) -> list[int]:
        """Names sharing a token, a sound or a one-edit neighbour with the query, most promising
        first (`_align.candidates`, which holds the pruning rules)."""
        return _align.candidates(self.view, tuple(tokens), abjad)


def _top(touched: list[int], votes: list[float], name_lengths: npt.NDArray[np.float64]) -> list[int]:
    """The CANDIDATES_MAX names with the most votes; among equal votes the shorter names, which the
    query's words cover more of (a common word can give hundreds of names the same vote), then the
    first listed."""
    names = np.array(touched, dtype=np.int64)
    if len(names) > CANDIDATES_MAX:
        # lexsort's last key is the primary one.
        order = np.lexsort((names, name_lengths[names], -np.array(votes, dtype=np.float64)))
        names = names[order[:CANDIDATES_MAX]]
    return [int(ni) for ni in names]


class Screener:
    """Screens names against the union of the given lists. Thread-safe; caches repeated queries."""

    def __init__(
        self,
        lists: Iterable[ListData],
        review_threshold: float = REVIEW_THRESHOLD,
        block_threshold: float = BLOCK_THRESHOLD,
        cache_size: int = CACHE_SIZE_DEFAULT,
        index: bytes | None = None,
    ) -> None:
        if not 0.0 < review_threshold <= block_threshold <= 1.0:
            raise ValueError("thresholds must satisfy 0 < review <= block <= 1")
        self.lists: tuple[ListData, ...] = tuple(lists)
        self.review_threshold = review_threshold
        self.block_threshold = block_threshold
        # A persisted index (index_bytes() of a Screener over the same lists) skips normalising
        # every listed name again; ValueError when it does not fit these lists.
        self._index = _Index(self.lists, index)
        self._cache: OrderedDict[tuple[str, str | None, int | None], Match] = OrderedDict()
        self._cache_size = max(0, cache_size)
        self._lock = threading.Lock()

    def index_bytes(self) -> bytes:
        return self._index.to_bytes()

    @property
    def entity_count(self) -> int:
        return len(self._index.entities)

    def screen(self, name: str, country: str | None = None, birth_year: int | None = None) -> Match:
        if not isinstance(name, str) or not name.strip():
            raise ValueError("empty name: nothing to screen")
        key = (name, country, birth_year)
        if self._cache_size:
            with self._lock:
                cached = self._cache.get(key)
                if cached is not None:
                    self._cache.move_to_end(key)
                    return cached
        match = self._screen(name, country, birth_year)
        if self._cache_size:
            with self._lock:
                self._cache[key] = match
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return match

    def screen_many(self, queries: Iterable[str | tuple[str, str | None, int | None]]) -> list[Match]:
        out: list[Match] = []
        for q in queries:
            out.append(self.screen(q) if isinstance(q, str) else self.screen(*q))
        return out

    def decide(self, score: float) -> Decision:
        if score >= self.block_threshold:
            return "block"
        if score >= self.review_threshold:
            return "review"
        return "clear"

    def _screen(self, name: str, country: str | None, birth_year: int | None) -> Match:
        index = self._index
        variants = name_variants(name[:QUERY_CHARS_MAX])
        if not index.entities:
            return Match(name, False, 0.0, None, None, None, "no list loaded", "clear")
        if not variants:
            return Match(name, False, 0.0, None, None, None, "nothing to match after normalisation", "clear")
        # The winning candidate's words are needed for the explanation: each alignment is computed
        # once with its words, rather than aligning the winner a second time.
        abjad = _has_abjad(name)
        best_by_entity = _align.best_by_entity(index.view, variants, abjad)
        if not best_by_entity:
            return Match(name, False, 0.0, None, None, None, "no listed name comes close", "clear")
        q_country = country_code(country) if country else None
        best: tuple[float, int, int, Side, Raw, str] | None = None
        if not q_country and birth_year is None:
            # No country or year to adjust for: the scores rank as they are (the same rule, compiled).
            ei = _align.pick(index.view, best_by_entity)
            score, ni, query, aligned = best_by_entity[ei]
            best = (score, ei, ni, query, aligned, "")
        else:
            best_rank: tuple[float, bool, int] | None = None
            for ei, (score, ni, query, aligned) in best_by_entity.items():
                adjusted, note = _adjust(score, index.entities[ei], q_country, birth_year)
                # Equal scores: prefer the name written in the query's own word order, then list order.
                rank = (round(adjusted, 6), index.name_tokens[ni] == query.tokens, -ei)
                if best_rank is None or rank > best_rank:
                    best_rank = rank
                    best = (adjusted, ei, ni, query, aligned, note)
        assert best is not None
        score, ei, ni, query, aligned, note = best
        score = round(min(1.0, max(0.0, score)), 4)
        entity = index.entities[ei]
        explanation = _align.explain(
            index.name_display[ni], query, index.name_sides[ni], aligned, index.name_weak[ni]
        ) + note
        decision = self.decide(score)
        return Match(
            name,
            score >= self.review_threshold,
            score,
            entity.id,
            index.entity_list[ei],
            index.name_display[ni],
            explanation,
            decision,
        )


_has_abjad = _align.has_abjad


def index_fingerprint() -> str:
    """Names the code that builds an index: a stored index built by other code is rebuilt."""
    digest = hashlib.sha256(f"index-format-{INDEX_FORMAT}".encode())
    here = Path(__file__).resolve().parent
    for module in ("matcher.py", "_align.py", "normalize.py", "_hanja.py"):
        digest.update((here / module).read_bytes())
    return digest.hexdigest()[:32]


def _adjust(score: float, entity: Entity, country: str | None, birth_year: int | None) -> tuple[float, str]:
    notes: list[str] = []
    if country and entity.countries:
        if country in entity.countries:
            score += COUNTRY_MATCH_BONUS
            notes.append(f"country {country} matches +{COUNTRY_MATCH_BONUS}")
        else:
            score -= COUNTRY_MISMATCH_PENALTY
            notes.append(f"country {country} not in {','.join(entity.countries)} -{COUNTRY_MISMATCH_PENALTY}")
    if birth_year is not None and entity.birth_years:
        gap = min(abs(birth_year - y) for y in entity.birth_years)
        if gap <= YEAR_TOLERANCE:
            score += YEAR_MATCH_BONUS
            notes.append(f"birth year {birth_year} matches +{YEAR_MATCH_BONUS}")
        elif gap > YEAR_MISMATCH_GAP:
            score -= YEAR_MISMATCH_PENALTY
            notes.append(f"birth year {birth_year} is {gap} years off -{YEAR_MISMATCH_PENALTY}")
    return score, ("; " + "; ".join(notes)) if notes else ""


def run_screen(lines: Iterable[str], screener: Screener) -> Iterator[dict[str, object]]:
    """`setara screen`: one name a line, optionally `name<TAB>country<TAB>birth_year`.

    Blank lines are skipped; a birth year that is not a number is ignored rather than dropping the
    line, because a name must never go unscreened over a formatting slip.
    """
    for raw in lines:
        line = raw.rstrip("\r\n")
        fields = line.split("\t")
        name = fields[0].strip()
        if not name:
            continue
        country = fields[1].strip() or None if len(fields) > 1 else None
        year_text = fields[2].strip() if len(fields) > 2 else ""
        birth_year = int(year_text) if year_text.isdigit() and len(year_text) == 4 else None
        yield screener.screen(name, country, birth_year).to_dict()
