"""Candidate index and scoring: who on the lists could this name be, and how sure are we.

Pipeline for one query: normalise (normalize.py) -> candidates from inverted indexes (exact token,
phonetic key, one-edit deletion neighbourhood, joined neighbouring tokens) -> score the best few
candidates by order-independent token alignment -> adjust for country and birth year -> decide.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import operator
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import orjson
from rapidfuzz.distance import OSA, JaroWinkler, Levenshtein

from setara.compliance.countries import country_code
from setara.compliance.lists import Entity, ListData
from setara.compliance.normalize import (
    FORM_PREFIX,
    PARTICLES,
    TOKENS_MAX,
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

DISTANCE_STRETCH = 1.5
SOUND_LIFT_LONG = 0.2
SOUND_CAP_LONG = 0.9
SOUND_LIFT_SHORT = 0.1
SOUND_CAP_SHORT = 0.85
FUZZY_VOTE = 0.8
PRUNE_BOUND = 0.5  # share of the query's weight a name must share before it is scored
PRUNE_BOUND_ABJAD = 0.3  # a query read from Arabic script shares fewer keys with a Latin spelling
# A Latin query against a listed name written in Arabic script: lower than PRUNE_BOUND, as they share
# fewer keys, but not as low as PRUNE_BOUND_ABJAD: 0.4 found 2% more of them and aligned 40% more names.
PRUNE_BOUND_SCRIPT = 0.45
CANDIDATES_MAX = 40  # names scored in full per query reading
POSTING_MAX = 5000  # a key shared by more names than this is too common to narrow anything
CACHE_SIZE_DEFAULT = 100_000
# Bump when the stored index layout changes; the fingerprint also covers changes to the code.
INDEX_FORMAT = 1
QUERY_CHARS_MAX = 300
JOINED_UNIT_MIN = 0.85
MATCH_MIN = 0.6  # token pairs below this similarity are not aligned at all
DROPPED_MIDDLE_SHARE = 0.2  # a dropped middle name costs a fifth of its weight
DROPPED_EDGE_SHARE = 0.5  # a dropped first or last name is stronger evidence of another person
EXTRA_MIDDLE_SHARE = 0.3  # a patronymic the list leaves out ("Vladimir Vladimirovich Putin")
EXTRA_EDGE_SHARE = 1.0
WEAK_ALIAS_FACTOR = 0.95
JOINED_FACTOR = 0.97
FORM_WEIGHT = 0.15
PARTICLE_WEIGHT = 0.25
COUNTRY_MATCH_BONUS = 0.03
COUNTRY_MISMATCH_PENALTY = 0.05
YEAR_MATCH_BONUS = 0.04
YEAR_MISMATCH_PENALTY = 0.12
YEAR_TOLERANCE = 1
YEAR_MISMATCH_GAP = 5
DELETION_TOKEN_LEN_MIN = 4
ABJAD_CAP = 0.94
ABJAD_STRETCH = 1.0
ABJAD_SHORT_CAP = 0.85  # one-consonant skeletons ("ri" / "ry"): the cap of short sound-alike words
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


# A unit is one token, or two neighbouring tokens joined ("jong un" ~ "jongun"):
# (text, phonetic key, weight, bitmask of the token positions it covers, is a single token).
_Unit = tuple[str, str, float, int, bool]


@dataclass(frozen=True, slots=True)
class _Side:
    """A name reading prepared for alignment; built once per list name and once per query."""

    tokens: tuple[str, ...]
    weights: tuple[float, ...]
    units: tuple[_Unit, ...]
    joined: str  # name tokens concatenated, legal forms (canonical) last
    edge_mask: int  # first and last token: dropping those costs more than dropping a middle name
    abjad: bool = False  # read from a script that writes no short vowels (Arabic, Persian, Urdu)
    # Per unit: its abjad skeleton and written final vowel (see _ending), for pairs where one side is abjad.
    skeletons: tuple[tuple[str, bool | None], ...] = ()
    # Columns of the units, so the alignment loop indexes tuples instead of unpacking units per pair.
    keys: tuple[str, ...] = ()  # phonetic key of each token
    bits: tuple[int, ...] = ()  # token positions each unit covers
    unit_weights: tuple[float, ...] = ()
    # Joined units (index into units, text, length): compared with the other side's tokens by spelling.
    pairs: tuple[tuple[int, str, int], ...] = ()
    lengths: tuple[int, ...] = ()  # length of each token
    # Shortest and longest token, shortest and longest joined unit: a joined unit is compared by spelling
    # only with words whose length is within 15% of its own, so most pairs are ruled out by these four.
    length_range: tuple[int, int, int, int] = (0, 0, 0, 0)
    # A query's skeletons, worked out the first time a name read from an abjad is aligned with it.
    skeleton_memo: list[tuple[tuple[str, bool | None], ...]] = field(default_factory=list, compare=False)

    @classmethod
    def build(
        cls, tokens: Sequence[str], weights: Sequence[float], abjad: bool = False, skeletons: bool = True
    ) -> _Side:
        """skeletons=False for a query: its skeletons are then worked out only if an abjad name needs them."""
        tokens = tuple(tokens)
        weights = tuple(weights)
        n = len(tokens)
        keys = tuple([phonetic_key(t) for t in tokens])
        forms = [t.startswith(FORM_PREFIX) for t in tokens]
        units: list[_Unit] = [(tokens[i], keys[i], weights[i], 1 << i, True) for i in range(n)]
        bits = [1 << i for i in range(n)]
        unit_weights = list(weights)
        pairs: list[tuple[int, str, int]] = []
        for i in range(n - 1):
            if not (forms[i] or forms[i + 1]):
                text = tokens[i] + tokens[i + 1]
                w = weights[i] + weights[i + 1]
                pairs.append((len(units), text, len(text)))
                units.append((text, "", w, 3 << i, False))
                bits.append(3 << i)
                unit_weights.append(w)
        edge = 1 | (1 << (n - 1)) if tokens else 0
        lengths = tuple([len(t) for t in tokens])
        # Forms go last and canonical, so "X OOO" and "X LLC" join alike but "X AG" and "X GmbH" do not.
        if any(forms):
            joined = "".join([t for t in tokens if not t.startswith(FORM_PREFIX)]) + "".join(
                sorted([t for t in tokens if t.startswith(FORM_PREFIX)])
            )
        else:
            joined = "".join(tokens)
        return cls(
            tokens,
            weights,
            tuple(units),
            joined,
            edge,
            abjad,
            _skeletons(units) if skeletons else (),
            keys,
            tuple(bits),
            tuple(unit_weights),
            tuple(pairs),
            lengths,
            (
                min(lengths, default=0),
                max(lengths, default=0),
                min([p[2] for p in pairs], default=0),
                max([p[2] for p in pairs], default=0),
            ),
        )


def _skeletons(units: Sequence[_Unit]) -> tuple[tuple[str, bool | None], ...]:
    return tuple((_abjad_key(u[0]), _ending(u[0])) for u in units)


def _deletions(token: str) -> set[str]:
    return {token[:i] + token[i + 1 :] for i in range(len(token))}


# Memo of token similarities: query token -> listed token -> similarity. Rows keyed by the query token,
# so the alignment loop looks a pair up without building a tuple for it.
_SIM_CACHE: dict[str, dict[str, float]] = {}
# The same for pairs where one side is read from an abjad: the similarity after the skeleton and
# written-ending rules, or -1.0 when a written final vowel rules the pair out.
_ABJAD_CACHE: dict[str, dict[str, float]] = {}
_ABJAD_PAIRS: dict[tuple[str, str], float] = {}
_SIM_CACHE_MAX = 500_000
_sim_entries = [0]  # pairs held in the rows above; a cheap bound, not an exact count across threads


def clear_caches() -> None:
    """Forget every memoised word and pair (benchmarks of first sight; memory)."""
    _SIM_CACHE.clear()
    _ABJAD_CACHE.clear()
    _ABJAD_PAIRS.clear()
    _sim_entries[0] = 0
    clear_word_caches()


def _row(rows: dict[str, dict[str, float]], token: str) -> dict[str, float]:
    row = rows.get(token)
    if row is None:
        if _sim_entries[0] >= _SIM_CACHE_MAX:
            # Cheap bound; refills from the hot pairs within a few queries.
            _SIM_CACHE.clear()
            _ABJAD_CACHE.clear()
            _sim_entries[0] = 0
        row = {}
        rows[token] = row
    return row


def token_similarity(a: str, b: str, key_a: str | None = None, key_b: str | None = None) -> float:
    """0..1 similarity of two normalised tokens: edit distance, Jaro-Winkler, then sound."""
    if a == b:
        return 1.0
    row = _row(_SIM_CACHE, a)
    sim = row.get(b)
    if sim is None:
        sim = _token_similarity(a, b, key_a, key_b)
        row[b] = sim
        _sim_entries[0] += 1
    return sim


def _token_similarity(a: str, b: str, key_a: str | None, key_b: str | None) -> float:
    if a[0] == FORM_PREFIX or b[0] == FORM_PREFIX:
        return 0.0
    if len(a) == 1 or len(b) == 1:
        return 0.7 if a[0] == b[0] else 0.0  # an initial stands for any name with that letter
    # OSA counts a transposition as one edit ("Okti" / "Koti"); Jaro-Winkler rewards shared prefixes.
    raw = 0.5 * (JaroWinkler.normalized_similarity(a, b) + OSA.normalized_similarity(a, b))
    # Stretch the distance: "Ortiz"/"Ortega" (0.68 raw) is another surname, not 68% of the same one.
    sim = max(0.0, 1.0 - DISTANCE_STRETCH * (1.0 - raw))
    ka = phonetic_key(a) if key_a is None else key_a
    kb = phonetic_key(b) if key_b is None else key_b
    # Same sound skeleton lifts the score, but only by so much: it corroborates a spelling
    # variant (Muhammad/Mohamed), it must not make unrelated short names equal.
    if ka and ka == kb and len(ka) >= 2:
        sim = max(
            sim,
            min(SOUND_CAP_LONG, raw + SOUND_LIFT_LONG)
            if len(ka) >= 3
            else min(SOUND_CAP_SHORT, raw + SOUND_LIFT_SHORT),
        )
    return sim


def _abjad_pair(
    a: str, b: str, key_a: str, key_b: str, skel_a: tuple[str, bool | None], skel_b: tuple[str, bool | None]
) -> float:
    """A token pair where one side is read from an abjad: -1.0 when a written final vowel tells the
    names apart however close the spelling, else the better of spelling and skeleton."""
    sim = token_similarity(a, b, key_a, key_b)
    if sim < ABJAD_CAP:
        sk_a, end_a = skel_a
        sk_b, end_b = skel_b
        if end_a is not None and end_b is not None and end_a != end_b:
            return -1.0
        if sk_a and sk_b and sk_a[0] == sk_b[0]:
            sim = max(sim, abjad_similarity(a, b, sk_a, sk_b))
    return sim


def abjad_similarity(a: str, b: str, key_a: str, key_b: str) -> float:
    """Similarity of a token read from an abjad (a) and a listed token (b), by sound skeleton alone.

    Arabic script writes no short vowels and one letter for w/u/o and for y/i/e, so "ahmd" is as
    good a reading of Ahmed as any: compare consonant skeletons. Equal skeletons give ABJAD_CAP,
    below the block threshold: a name matched this way is always for an officer to review.
    """
    if not key_a or not key_b or key_a[0] != key_b[0]:
        return 0.0
    return _abjad_similarity(a, b, key_a, key_b, _ending(a), _ending(b))


def _abjad_similarity(a: str, b: str, key_a: str, key_b: str, end_a: bool | None, end_b: bool | None) -> float:
    """abjad_similarity past its first test, with the written endings (_ending) of a and b given."""
    # A vowel ending is written in the script too (ی, ا, و, ه): Salma is not Salim, Mohammadi not
    # Mohammad.
    if end_a is not None and end_b is not None and end_a != end_b:
        return 0.0
    if len(key_a) < 2 or len(key_b) < 2:
        # A one-consonant skeleton ("ri" / "ry", "mu" / "mw") says little: only words of at most three
        # letters with the same skeleton count, and no more than short sound-alike words do.
        return ABJAD_SHORT_CAP if key_a == key_b and 2 <= len(a) <= 3 and 2 <= len(b) <= 3 else 0.0
    cached = _ABJAD_PAIRS.get((a, b))
    if cached is not None:
        return cached
    raw = Levenshtein.normalized_similarity(key_a, key_b)
    sim = max(0.0, ABJAD_CAP - ABJAD_STRETCH * (1.0 - raw))
    if len(_ABJAD_PAIRS) >= _SIM_CACHE_MAX:
        _ABJAD_PAIRS.clear()
    _ABJAD_PAIRS[(a, b)] = sim
    return sim


def _ending(token: str) -> bool | None:
    """Does the word end in a letter an abjad writes for a final vowel (ا ی و ه: a, y, w, h)? None
    for a final e, i, o or u, which a Latin spelling may add or drop ("Kiyurige", "Mohammadi")."""
    last = token[-1]
    return None if last in "eiou" else last in "aywh"


@dataclass(frozen=True, slots=True)
class _Alignment:
    score: float
    pairs: tuple[tuple[str, str, float], ...]
    dropped: tuple[str, ...]
    extra: tuple[str, ...]
    joined: bool


def align(q: _Side, c: _Side, detail: bool = False) -> _Alignment | float:
    """Order-independent greedy alignment of query and list tokens, weighted by list-token weight.

    Returns the score alone unless detail is asked for (only the winning candidate needs words).
    """
    raw = _align(q, c)
    if not detail:
        return raw[0]
    return _detail(q, c, raw)


# score, token-alignment score, aligned (query unit, list unit) index pairs with similarity,
# query and list token positions used.
_Raw = tuple[float, float, list[tuple[float, int, int]], int, int]


def _detail(q: _Side, c: _Side, raw: _Raw) -> _Alignment:
    """Words of an alignment, for the explanation: only the winner of a query needs them."""
    score, token_score, kept, used_q, used_c = raw
    if score > token_score:
        return _Alignment(score, ((q.joined, c.joined, score / JOINED_FACTOR),), (), (), True)
    pairs = tuple((q.units[qi][0], c.units[ci][0], sim) for sim, qi, ci in kept)
    extra = tuple(t for i, t in enumerate(q.tokens) if not used_q >> i & 1)
    dropped = tuple(t for i, t in enumerate(c.tokens) if not used_c >> i & 1)
    return _Alignment(score, pairs, dropped, extra, False)


_BY_SIM = operator.itemgetter(0)


def _align(q: _Side, c: _Side) -> _Raw:
    scored: list[tuple[float, int, int]] = []
    n_q, n_c = len(q.tokens), len(c.tokens)
    q_heads, c_heads = q.tokens, c.tokens
    q_keys, c_keys = q.keys, c.keys
    abjad = q.abjad or c.abjad
    q_skeletons, c_skeletons = q.skeletons, c.skeletons
    if abjad and not q_skeletons:
        memo = q.skeleton_memo
        if not memo:
            memo.append(_skeletons(q.units))
        q_skeletons = memo[0]
    c_range = range(n_c)
    if abjad:
        rows = _ABJAD_CACHE
        for qi in range(n_q):
            qt = q_heads[qi]
            row = _row(rows, qt)
            for ci in c_range:
                ct = c_heads[ci]
                if qt == ct:
                    scored.append((1.0, qi, ci))
                    continue
                sim = row.get(ct)
                if sim is None:
                    sim = _abjad_pair(qt, ct, q_keys[qi], c_keys[ci], q_skeletons[qi], c_skeletons[ci])
                    row[ct] = sim
                    _sim_entries[0] += 1
                if sim >= MATCH_MIN:
                    scored.append((sim, qi, ci))
    else:
        rows = _SIM_CACHE
        for qi in range(n_q):
            qt = q_heads[qi]
            row = _row(rows, qt)
            for ci in c_range:
                ct = c_heads[ci]
                if qt == ct:
                    scored.append((1.0, qi, ci))
                    continue
                sim = row.get(ct)
                if sim is None:
                    sim = _token_similarity(qt, ct, q_keys[qi], c_keys[ci])
                    row[ct] = sim
                    _sim_entries[0] += 1
                if sim >= MATCH_MIN:
                    scored.append((sim, qi, ci))
    if n_q != n_c:
        # A spacing difference changes the word count: only then can two joined neighbours stand for
        # one word. Joined units match by spelling alone, never by sound; a length gap over 15%
        # cannot reach JOINED_UNIT_MIN, so the edit distance is skipped.
        q_lens, c_lens = q.lengths, c.lengths
        if abjad:
            for qi, qt, q_len in q.pairs:
                for ci in c_range:
                    c_len = c_lens[ci]
                    sim = 0.0
                    if abs(q_len - c_len) <= _JOIN_GAP * (q_len if q_len > c_len else c_len):
                        sim = Levenshtein.normalized_similarity(qt, c_heads[ci], score_cutoff=JOINED_UNIT_MIN)
                    if sim < JOINED_UNIT_MIN:
                        # "Abdul Rahman" / "عبدالرحمن" (abdalrhman): the skeletons of compounds agree.
                        key_a, end_a = q_skeletons[qi]
                        key_b, end_b = c_skeletons[ci]
                        if key_a and key_b and key_a[0] == key_b[0]:  # abjad_similarity's first test, inlined
                            sim = _abjad_similarity(qt, c_heads[ci], key_a, key_b, end_a, end_b)
                    if sim >= JOINED_UNIT_MIN:
                        scored.append((sim, qi, ci))
            for qi in range(n_q):
                qt, q_len = q_heads[qi], q_lens[qi]
                for ci, ct, c_len in c.pairs:
                    sim = 0.0
                    if abs(q_len - c_len) <= _JOIN_GAP * (q_len if q_len > c_len else c_len):
                        sim = Levenshtein.normalized_similarity(qt, ct, score_cutoff=JOINED_UNIT_MIN)
                    if sim < JOINED_UNIT_MIN:
                        key_a, end_a = q_skeletons[qi]
                        key_b, end_b = c_skeletons[ci]
                        if key_a and key_b and key_a[0] == key_b[0]:
                            sim = _abjad_similarity(qt, ct, key_a, key_b, end_a, end_b)
                    if sim >= JOINED_UNIT_MIN:
                        scored.append((sim, qi, ci))
        else:
            # The same pairs in the same order, those outside the length window skipped whole.
            c_min, c_max, c_pair_min, c_pair_max = c.length_range
            for qi, qt, q_len in q.pairs:
                lo, hi = _partner_lengths(q_len)
                if c_max < lo or c_min > hi:
                    continue
                for ci in c_range:
                    if lo <= c_lens[ci] <= hi:
                        sim = Levenshtein.normalized_similarity(qt, c_heads[ci], score_cutoff=JOINED_UNIT_MIN)
                        if sim >= JOINED_UNIT_MIN:
                            scored.append((sim, qi, ci))
            if c.pairs:
                for qi in range(n_q):
                    lo, hi = _partner_lengths(q_lens[qi])
                    if c_pair_max < lo or c_pair_min > hi:
                        continue
                    qt = q_heads[qi]
                    for ci, ct, c_len in c.pairs:
                        if lo <= c_len <= hi:
                            sim = Levenshtein.normalized_similarity(qt, ct, score_cutoff=JOINED_UNIT_MIN)
                            if sim >= JOINED_UNIT_MIN:
                                scored.append((sim, qi, ci))
    # Stable: equal similarities keep query order, so the alignment does not depend on the sort.
    scored.sort(key=_BY_SIM, reverse=True)
    used_q = 0
    used_c = 0
    num = 0.0
    den = 0.0
    kept: list[tuple[float, int, int]] = []
    q_bits, c_bits, c_weights = q.bits, c.bits, c.unit_weights
    for item in scored:
        sim, qi, ci = item
        q_bit, c_bit = q_bits[qi], c_bits[ci]
        if used_q & q_bit or used_c & c_bit:
            continue
        used_q |= q_bit
        used_c |= c_bit
        w = c_weights[ci]
        num += sim * w
        den += w
        kept.append(item)
    # Words the query has beyond the list name (a patronymic, a repeated word) cost like dropped ones.
    full_q = (1 << n_q) - 1
    if used_q & full_q != full_q:
        matched_q = {q_heads[i] for i in range(n_q) if used_q >> i & 1}
        for i, w in enumerate(q.weights):
            if not used_q >> i & 1 and q_heads[i] not in matched_q:
                den += w * (EXTRA_EDGE_SHARE if q.edge_mask >> i & 1 else EXTRA_MIDDLE_SHARE)
    full_c = (1 << n_c) - 1
    if used_c & full_c != full_c:
        # Summed in position order, as before, so scores do not move in the last bit.
        c_weights, edge_mask = c.weights, c.edge_mask
        middle = sum([c_weights[i] for i in c_range if not (used_c | edge_mask) >> i & 1])
        edge = sum([c_weights[i] for i in c_range if not (used_c | ~edge_mask) >> i & 1])
        den += DROPPED_MIDDLE_SHARE * middle
        den += DROPPED_EDGE_SHARE * edge
    score = num / den if den > 0 else 0.0
    # Spacing differences ("Abdulhai" / "Abdul Hai", "Kim Jongun") compare better as one string.
    joined_score = 0.0
    if q.joined and c.joined:
        joined_score = JOINED_FACTOR * OSA.normalized_similarity(q.joined, c.joined, score_cutoff=0.75)
        if abjad and n_q != n_c:
            # Compounds are split differently on either side of a script change ("Nazirullah" /
            # "Nazir Allah", "Sirajuddin" / "Siraj al-Din"): compare whole-name skeletons too.
            ka, kb = _abjad_key(q.joined), _abjad_key(c.joined)
            joined_score = max(joined_score, JOINED_FACTOR * abjad_similarity(q.joined, c.joined, ka, kb))
    return max(score, joined_score), score, kept, used_q, used_c


_JOIN_GAP = 1.0 - JOINED_UNIT_MIN


def _join_window(length: int) -> tuple[int, int]:
    """The lengths b with abs(length - b) <= _JOIN_GAP * max(length, b), the test _align applies: tried
    on each b around length, so the window agrees with that float test exactly. The test fails more
    the further b is from length, so a window whose two outer neighbours fail is complete."""
    tried = range(max(0, length * 4 // 5 - 2), length * 5 // 4 + 3)
    ok = [b for b in tried if abs(length - b) <= _JOIN_GAP * max(length, b)]
    if ok != list(range(ok[0], ok[-1] + 1)) or (ok[0] == tried[0] and ok[0] > 0) or ok[-1] == tried[-1]:
        raise AssertionError(f"join window of {length} is not an interval inside {tried}")
    return ok[0], ok[-1]


_JOIN_WINDOWS: dict[int, tuple[int, int]] = {}


def _partner_lengths(length: int) -> tuple[int, int]:
    window = _JOIN_WINDOWS.get(length)
    if window is None:
        window = _JOIN_WINDOWS[length] = _join_window(length)
    return window


def default_weight(token: str) -> float:
    if is_form(token):
        return FORM_WEIGHT
    if token in PARTICLES or len(token) == 1:
        return PARTICLE_WEIGHT
    return 1.0


def _side(tokens: Sequence[str], abjad: bool = False) -> _Side:
    return _Side.build(tokens, [default_weight(t) for t in tokens], abjad)


def score_names(query: str, listed: str) -> float:
    """Score two names without a list index (no rarity weights); used for calibration on eval pairs."""
    best = 0.0
    for q in name_variants(query[:QUERY_CHARS_MAX]):
        qs = _side(q, _has_abjad(query))
        for c in name_variants(listed):
            best = max(best, float(align(qs, _side(c, _has_abjad(listed)))))  # type: ignore[arg-type]
    return round(min(1.0, best), 4)


_Posting = list[int] | npt.NDArray[np.int32]
_POSTING_ARRAY_MIN = 32


def _posting(ids: list[int]) -> _Posting:
    return np.array(ids, dtype=np.int32) if len(ids) >= _POSTING_ARRAY_MIN else ids


class _Index:
    """Inverted indexes over every reading of every name of every entity."""

    def __init__(self, lists: Sequence[ListData], blob: bytes | None = None) -> None:
        self.entities: list[Entity] = []
        self.entity_list: list[str] = []
        for data in lists:
            for entity in data.entities:
                self.entities.append(entity)
                self.entity_list.append(data.source)
        self._probe_cache: dict[tuple[str, bool], _Posting] = {}
        if blob is not None:
            self._load(blob)
        else:
            self._build()
        self.name_weights: list[tuple[float, ...]] = [
            tuple(self.token_weight[t] for t in tokens) for tokens in self.name_tokens
        ]
        self.name_sides: list[_Side] = [
            _Side.build(t, w, _has_abjad(d))
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
            for key in {_abjad_key(t) for t in (*words, *joined)}:
                if len(key) >= ABJAD_KEY_LEN_MIN:
                    by_abjad.setdefault(key, []).append(ni)
                    if script:
                        by_abjad_script.setdefault(key, []).append(ni)
        self.by_abjad: dict[str, _Posting] = {k: _posting(v) for k, v in by_abjad.items() if len(v) <= POSTING_MAX}
        self.by_abjad_script: dict[str, _Posting] = {
            k: _posting(v) for k, v in by_abjad_script.items() if len(v) <= POSTING_MAX
        }
        self.name_script = np.array([side.abjad for side in self.name_sides], dtype=bool)

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
        # Long postings become arrays (vectorised ORs in candidates()); short ones stay lists, which
        # numpy indexes as cheaply. Over-long postings are dropped here, once.
        self.by_edit: dict[str, _Posting] = {k: _posting(v) for k, v in by_edit.items() if len(v) <= POSTING_MAX}
        self.by_key: dict[str, _Posting] = {k: _posting(v) for k, v in by_key.items() if len(v) <= POSTING_MAX}

    def to_bytes(self) -> bytes:
        """The built index (normalised readings, weights, postings) for persisting with the lists."""

        def postings(d: dict[str, _Posting]) -> dict[str, list[int]]:
            return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in d.items()}

        return orjson.dumps({
            "format": INDEX_FORMAT,
            "entities": [e.id for e in self.entities],
            "name_entity": self.name_entity,
            "name_display": self.name_display,
            "name_tokens": self.name_tokens,
            "name_weak": self.name_weak,
            "token_weight": self.token_weight,
            "by_edit": postings(self.by_edit),
            "by_key": postings(self.by_key),
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
            self.by_edit = {k: _posting(v) for k, v in doc["by_edit"].items()}
            self.by_key = {k: _posting(v) for k, v in doc["by_key"].items()}
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"not a stored screening index: {exc}") from exc

    def weight(self, token: str) -> float:
        return self.token_weight.get(token, default_weight(token))

    def candidates(self, tokens: Sequence[str], abjad: bool = False) -> list[int]:
        """Names sharing a token, a sound or a one-edit neighbour with the query, most promising first.

        A name whose shared tokens cannot reach PRUNE_BOUND even if they matched perfectly is not
        scored: most traffic is names on no list, and this is where their time goes.
        """
        # Each query position counts once per name, exact sharing more than a fuzzy neighbour, so
        # names sharing the rare tokens rank above names sharing one common token many ways.
        weights = [0.0 if is_form(t) else self.weight(t) for t in tokens]
        probes: list[tuple[str, int]] = [(t, 1 << i) for i, t in enumerate(tokens) if not is_form(t)]
        for i in range(len(tokens) - 1):
            if weights[i] and weights[i + 1]:
                probes.append((tokens[i] + tokens[i + 1], 3 << i))
        by_edit = self.by_edit
        by_skeleton = self.by_abjad if abjad else self.by_abjad_script
        probe_cache = self._probe_cache
        exact_hits: list[tuple[_Posting, int]] = []
        fuzzy_hits: list[tuple[_Posting, int]] = []
        for token, mask in probes:
            posting = by_edit.get(token)
            if posting is not None:
                exact_hits.append((posting, mask))
            if mask & (mask - 1):
                # A joined pair is looked up as spelt (a typo on top of a spacing change is rare), and
                # by skeleton: "Abdul Rahman" is one word in Arabic script (عبدالرحمن).
                if by_skeleton:
                    posting = by_skeleton.get(_abjad_key(token))
                    if posting is not None:
                        fuzzy_hits.append((posting, mask))
                continue
            # Names recur in traffic word by word even when whole names are new, so each word's
            # neighbourhood (one-edit deletions, sound key, skeleton) is merged once and reused.
            fuzzy_posting = probe_cache.get((token, abjad))
            if fuzzy_posting is None:
                fuzzy_posting = self._fuzzy_posting(token, by_skeleton)
                if len(probe_cache) >= _PROBE_CACHE_MAX:
                    probe_cache.clear()
                probe_cache[(token, abjad)] = fuzzy_posting
            if len(fuzzy_posting):
                fuzzy_hits.append((fuzzy_posting, mask))
                if abjad and token not in self.token_weight:
                    # A word read from Arabic script is spelt like no listed word, so its rarity is
                    # that of the listed words it may stand for: "mwhmd" weighs like Mohammed.
                    at = mask.bit_length() - 1
                    weights[at] = min(weights[at], self._rarity(len(fuzzy_posting)))
        if not exact_hits and not fuzzy_hits:
            return []
        bound = (PRUNE_BOUND_ABJAD if abjad else PRUNE_BOUND) * sum(weights)
        # A Latin spelling shares fewer keys with a name written in Arabic script: a lower bound for
        # those names.
        bound_script = None if abjad or not self.by_abjad_script else PRUNE_BOUND_SCRIPT * sum(weights)
        if sum(len(p) for p, _ in exact_hits) + sum(len(p) for p, _ in fuzzy_hits) <= _SPARSE_VOTES_MAX:
            # Most queries touch a few dozen names: counting them in a dict costs a fraction of
            # clearing and indexing arrays over every listed name.
            return self._candidates_sparse(exact_hits, fuzzy_hits, weights, bound, bound_script)
        return self._candidates_dense(exact_hits, fuzzy_hits, weights, bound, bound_script)

    def _candidates_dense(
        self,
        exact_hits: list[tuple[_Posting, int]],
        fuzzy_hits: list[tuple[_Posting, int]],
        weights: Sequence[float],
        bound: float,
        bound_script: float | None,
    ) -> list[int]:
        # One array: exact positions in the low 16 bits, fuzzy ones in the high 16 (TOKENS_MAX is 12).
        masks = np.zeros(len(self.name_tokens), dtype=np.int32)
        for posting, mask in exact_hits:
            masks[posting] |= mask
        for posting, mask in fuzzy_hits:
            masks[posting] |= mask << 16
        touched = np.flatnonzero(masks)
        both = masks[touched]
        e_mask = both & 0xFFFF
        f_mask = (both >> 16) & ~e_mask
        # mask_weight[m] is the summed weight of the query positions whose bits are set in m.
        mask_weight = np.zeros(1, dtype=np.float64)
        for w in weights:
            mask_weight = np.concatenate((mask_weight, mask_weight + w))
        votes = mask_weight[e_mask] + FUZZY_VOTE * mask_weight[f_mask]
        keep = votes >= (bound if bound_script is None else np.where(self.name_script[touched], bound_script, bound))
        return _top(touched[keep], votes[keep])

    def _rarity(self, names: int) -> float:
        n_names = len(self.name_tokens)
        if n_names <= 200:
            return 1.0
        return min(1.0, max(0.2, math.log(max(n_names / max(names, 1), 1.0)) / math.log(200.0)))

    def _fuzzy_posting(self, token: str, by_skeleton: dict[str, _Posting]) -> _Posting:
        """Every name holding a one-edit neighbour, the sound key or the skeleton of a query word."""
        postings: list[_Posting] = []
        by_edit = self.by_edit
        if len(token) >= DELETION_TOKEN_LEN_MIN:
            for i in range(len(token)):
                posting = by_edit.get(token[:i] + token[i + 1 :])
                if posting is not None:
                    postings.append(posting)
        posting = self.by_key.get(phonetic_key(token))
        if posting is not None:
            postings.append(posting)
        if by_skeleton:
            posting = by_skeleton.get(_abjad_key(token))
            if posting is not None:
                postings.append(posting)
        if not postings:
            return []
        if sum(len(p) for p in postings) <= _MERGE_IN_SET_MAX:
            # Few names: a set merges them in a fraction of numpy's fixed cost per call.
            names: set[int] = set()
            for p in postings:
                names.update(p.tolist() if isinstance(p, np.ndarray) else p)
            ordered = sorted(names)
            return np.array(ordered, dtype=np.int32) if len(ordered) >= _POSTING_ARRAY_MIN else ordered
        merged = np.unique(np.concatenate([np.asarray(p, dtype=np.int32) for p in postings]))
        return merged if len(merged) >= _POSTING_ARRAY_MIN else merged.tolist()

    def _candidates_sparse(
        self,
        exact_hits: list[tuple[_Posting, int]],
        fuzzy_hits: list[tuple[_Posting, int]],
        weights: Sequence[float],
        bound: float,
        bound_script: float | None,
    ) -> list[int]:
        """candidates() for few touched names; the same votes, summed in the same order."""
        exact: dict[int, int] = {}
        fuzzy: dict[int, int] = {}
        for hits, masks in ((exact_hits, exact), (fuzzy_hits, fuzzy)):
            for posting, mask in hits:
                for ni in posting:
                    key = int(ni)
                    masks[key] = masks.get(key, 0) | mask
        touched: list[int] = []
        votes: list[float] = []
        for ni in sorted(exact.keys() | fuzzy.keys()):
            e_mask = exact.get(ni, 0)
            f_mask = fuzzy.get(ni, 0) & ~e_mask
            e_vote = 0.0
            f_vote = 0.0
            for i, w in enumerate(weights):
                if e_mask >> i & 1:
                    e_vote += w
                if f_mask >> i & 1:
                    f_vote += w
            vote = e_vote + FUZZY_VOTE * f_vote
            if vote >= bound or (bound_script is not None and vote >= bound_script and self.name_script[ni]):
                touched.append(ni)
                votes.append(vote)
        if len(touched) <= CANDIDATES_MAX:
            return touched
        return _top(np.array(touched, dtype=np.int64), np.array(votes, dtype=np.float64))


_PROBE_CACHE_MAX = 100_000  # query words whose merged neighbourhood postings are kept
# _candidates_dense keeps a name's exact and fuzzy query positions in one int32, 16 bits each.
if TOKENS_MAX > 16:
    raise RuntimeError("TOKENS_MAX must fit in 16 bits of a vote mask")
_MERGE_IN_SET_MAX = 256  # posting entries below which a query word's postings are merged in a set
_SPARSE_VOTES_MAX = 48  # posting entries a query touches, below which votes are counted in a dict


def _top(touched: npt.NDArray[np.int64], votes: npt.NDArray[np.float64]) -> list[int]:
    if len(touched) > CANDIDATES_MAX:
        touched = touched[np.argpartition(-votes, CANDIDATES_MAX - 1)[:CANDIDATES_MAX]]
    return [int(ni) for ni in touched]


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
        best_by_entity: dict[int, tuple[float, int, _Side, _Raw]] = {}
        exact = [ni for tokens in variants for ni in index.by_exact.get(tuple(sorted(tokens)), ())]
        abjad = _has_abjad(name)
        token_weight = index.token_weight
        for tokens in variants:
            weights = [token_weight[t] if t in token_weight else default_weight(t) for t in tokens]
            query = _Side.build(tokens, weights, abjad, skeletons=abjad)
            weak_exact = index.by_exact_weak.get(tuple(sorted(tokens)), [])
            for ni in exact or [*weak_exact, *index.candidates(tokens, abjad)]:
                aligned = _align(query, index.name_sides[ni])
                score = aligned[0]
                if index.name_weak[ni]:
                    score *= WEAK_ALIAS_FACTOR
                ei = index.name_entity[ni]
                held = best_by_entity.get(ei)
                if held is None or score > held[0]:
                    best_by_entity[ei] = (score, ni, query, aligned)
        if not best_by_entity:
            return Match(name, False, 0.0, None, None, None, "no listed name comes close", "clear")
        q_country = country_code(country) if country else None
        best: tuple[float, int, int, _Side, _Raw, str] | None = None
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
        result = _detail(query, index.name_sides[ni], aligned)
        explanation = _explain(index.name_display[ni], result, index.name_weak[ni]) + note
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


def _has_abjad(text: str) -> bool:
    return any("\u0600" <= ch <= "\u06ff" or "\u0750" <= ch <= "\u077f" for ch in text)


def index_fingerprint() -> str:
    """Names the code that builds an index: a stored index built by other code is rebuilt."""
    digest = hashlib.sha256(f"index-format-{INDEX_FORMAT}".encode())
    here = Path(__file__).resolve().parent
    for module in ("matcher.py", "normalize.py", "_hanja.py"):
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


def _explain(display: str, result: _Alignment, weak: bool) -> str:
    if result.joined:
        q, c, sim = result.pairs[0]
        text = f"'{display}': whole name {q}~{c} {sim:.2f}"
    else:
        parts = [f"{q}={c}" if sim == 1.0 else f"{q}~{c} {sim:.2f}" for q, c, sim in result.pairs]
        text = f"'{display}': " + (", ".join(parts) or "no token aligned")
        if result.dropped:
            text += "; list tokens not in query: " + " ".join(result.dropped)
        if result.extra:
            text += "; query tokens not in list name: " + " ".join(result.extra)
    if weak:
        text += f"; weak alias x{WEAK_ALIAS_FACTOR}"
    return text


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
