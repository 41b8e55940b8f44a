"""The matcher's inner loops: word-pair similarity, alignment of two name readings, vote counting.

Plain, concretely typed Python that mypyc compiles into a C extension when the package is installed
(setup.py). The compiled module shadows this file; without the build this file runs as it is, with
the same results, only slower. So: no decorators, no dynamic attributes, no Any, and every float
expression written in the order the results depend on (docs/screening.md, "Compiled inner loops").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import Final, SupportsInt

from rapidfuzz.distance import OSA, JaroWinkler, Levenshtein

from setara.compliance.normalize import FORM_PREFIX, PARTICLES, abjad_key, assimilated, phonetic_key

DISTANCE_STRETCH: Final = 1.5
SOUND_LIFT_LONG: Final = 0.2
SOUND_CAP_LONG: Final = 0.9
SOUND_LIFT_SHORT: Final = 0.1
SOUND_CAP_SHORT: Final = 0.85
SOUND_LIFT_VOWEL: Final = 0.05  # short words one vowel apart (Min / Man)
FUZZY_VOTE: Final = 0.8
JOINED_UNIT_MIN: Final = 0.85
MATCH_MIN: Final = 0.6  # token pairs below this similarity are not aligned at all
DROPPED_MIDDLE_SHARE: Final = 0.2  # a dropped middle name costs a fifth of its weight
DROPPED_EDGE_SHARE: Final = 0.5  # a dropped first or last name is stronger evidence of another person
EXTRA_MIDDLE_SHARE: Final = 0.3  # a patronymic the list leaves out ("Vladimir Vladimirovich Putin")
EXTRA_EDGE_SHARE: Final = 1.0
JOINED_FACTOR: Final = 0.97
ABJAD_CAP: Final = 0.94
ABJAD_STRETCH: Final = 1.0
ABJAD_SHORT_CAP: Final = 0.85  # one-consonant skeletons ("ri" / "ry"): the cap of short sound-alike words
SIM_CACHE_MAX: Final = 500_000
DELETION_TOKEN_LEN_MIN: Final = 4
PRUNE_BOUND: Final = 0.5  # share of the query's weight a name must share before it is scored
PRUNE_BOUND_ABJAD: Final = 0.3  # a query read from Arabic script shares fewer keys with a Latin spelling
# A Latin query against a listed name written in Arabic script: lower than PRUNE_BOUND, as they share
# fewer keys, but not as low as PRUNE_BOUND_ABJAD: 0.4 found 2% more of them and aligned 40% more names.
PRUNE_BOUND_SCRIPT: Final = 0.45
CANDIDATES_MAX: Final = 40  # names scored in full per query reading
WEAK_ALIAS_FACTOR: Final = 0.95
FORM_WEIGHT: Final = 0.15
PARTICLE_WEIGHT: Final = 0.25
PROBE_CACHE_MAX: Final = 100_000  # query words whose merged neighbourhood postings are kept

# Bound once: a compiled module reads a Final name directly, not through the module's dict.
_jaro_winkler: Final = JaroWinkler.normalized_similarity
_osa: Final = OSA.normalized_similarity
_levenshtein: Final = Levenshtein.normalized_similarity
_phonetic_key: Final = phonetic_key
_abjad_key: Final = abjad_key

# A unit is one token, or two neighbouring tokens joined ("jong un" ~ "jongun"):
# (text, phonetic key, weight, bitmask of the token positions it covers, is a single token).
Unit = tuple[str, str, float, int, bool]
# A unit's abjad skeleton and written final vowel (see ending).
Skeleton = tuple[str, bool | None]
# score, token-alignment score, aligned (query unit, list unit) index pairs with similarity,
# query and list token positions used.
Raw = tuple[float, float, list[tuple[float, int, int]], int, int]


class Side:
    """A name reading prepared for alignment; built once per list name and once per query."""

    def __init__(
        self,
        tokens: tuple[str, ...],
        weights: tuple[float, ...],
        units: tuple[Unit, ...],
        joined: str,
        edge_mask: int,
        abjad: bool,
        skeletons: tuple[Skeleton, ...],
        keys: tuple[str, ...],
        bits: tuple[int, ...],
        unit_weights: tuple[float, ...],
        pairs: tuple[tuple[int, str, int], ...],
        lengths: tuple[int, ...],
        length_range: tuple[int, int, int, int],
        joined_assimilated: str,
    ) -> None:
        self.tokens = tokens
        self.weights = weights
        self.units = units
        self.joined = joined  # name tokens concatenated, legal forms (canonical) last
        # First and last token: dropping those costs more than dropping a middle name.
        self.edge_mask = edge_mask
        self.abjad = abjad  # read from a script that writes no short vowels (Arabic, Persian, Urdu)
        # Per unit: its abjad skeleton and written final vowel, for pairs where one side is abjad.
        self.skeletons = skeletons
        # Columns of the units, so the alignment loop indexes tuples instead of unpacking units per pair.
        self.keys = keys  # phonetic key of each token
        self.bits = bits  # token positions each unit covers
        self.unit_weights = unit_weights
        # Joined units (index into units, text, length): compared with the other side's tokens by spelling.
        self.pairs = pairs
        self.lengths = lengths  # length of each token
        # Shortest and longest token, shortest and longest joined unit: a joined unit is compared by
        # spelling only with words whose length is within 15% of its own, so most pairs are ruled out
        # by these four.
        self.length_range = length_range
        # For a name read from Arabic script with an article before a sun letter: the name joined
        # with that article's l dropped (Nasiruddin for نصير الدين), else "".
        self.joined_assimilated = joined_assimilated
        # A query's skeletons, worked out the first time a name read from an abjad is aligned with it.
        self.skeleton_memo: list[tuple[Skeleton, ...]] = []


def build_side(tokens: Sequence[str], weights: Sequence[float], abjad: bool, with_skeletons: bool) -> Side:
    """with_skeletons=False for a query: its skeletons are then worked out only if an abjad name needs them."""
    tokens_t = tuple(tokens)
    weights_t = tuple(weights)
    n = len(tokens_t)
    keys = tuple([_phonetic_key(t) for t in tokens_t])
    forms = [t.startswith(FORM_PREFIX) for t in tokens_t]
    units: list[Unit] = [(tokens_t[i], keys[i], weights_t[i], 1 << i, True) for i in range(n)]
    bits = [1 << i for i in range(n)]
    unit_weights = list(weights_t)
    pairs: list[tuple[int, str, int]] = []
    for i in range(n - 1):
        if not (forms[i] or forms[i + 1]):
            text = tokens_t[i] + tokens_t[i + 1]
            w = weights_t[i] + weights_t[i + 1]
            pairs.append((len(units), text, len(text)))
            units.append((text, "", w, 3 << i, False))
            bits.append(3 << i)
            unit_weights.append(w)
    edge = 1 | (1 << (n - 1)) if tokens_t else 0
    lengths = tuple([len(t) for t in tokens_t])
    # Forms go last and canonical, so "X OOO" and "X LLC" join alike but "X AG" and "X GmbH" do not.
    if any(forms):
        joined = "".join([t for t in tokens_t if not t.startswith(FORM_PREFIX)]) + "".join(
            sorted([t for t in tokens_t if t.startswith(FORM_PREFIX)])
        )
    else:
        joined = "".join(tokens_t)
    # Shortest and longest word and joined unit (0 when there is none), in plain loops: min() and max()
    # with a default are generic calls even compiled.
    short = 0
    long = 0
    for i in range(n):
        size = lengths[i]
        if i == 0 or size < short:
            short = size
        if size > long:
            long = size
    pair_short = 0
    pair_long = 0
    for k in range(len(pairs)):
        size = pairs[k][2]
        if k == 0 or size < pair_short:
            pair_short = size
        if size > pair_long:
            pair_long = size
    return Side(
        tokens_t,
        weights_t,
        tuple(units),
        joined,
        edge,
        abjad,
        skeletons(units) if with_skeletons else (),
        keys,
        tuple(bits),
        tuple(unit_weights),
        tuple(pairs),
        lengths,
        (short, long, pair_short, pair_long),
        _joined_assimilated(tokens_t) if abjad else "",
    )


def _joined_assimilated(tokens: tuple[str, ...]) -> str:
    alt = assimilated(tokens)
    if alt is None:
        return ""
    return "".join([t for t in alt if not t.startswith(FORM_PREFIX)])


def skeletons(units: Sequence[Unit]) -> tuple[Skeleton, ...]:
    return tuple([(_abjad_key(u[0]), ending(u[0])) for u in units])


def ending(token: str) -> bool | None:
    """Does the word end in a letter an abjad writes for a final vowel (ا ی و ه: a, y, w, h)? None
    for a final e, i, o or u, which a Latin spelling may add or drop ("Kiyurige", "Mohammadi")."""
    last = token[-1]
    if last in "eiou":
        return None
    return last in "aywh"


# Memo of token similarities: query token -> listed token -> similarity. Rows keyed by the query token,
# so the alignment loop looks a pair up without building a tuple for it.
SIM_CACHE: Final[dict[str, dict[str, float]]] = {}
# The same for pairs where one side is read from an abjad: the similarity after the skeleton and
# written-ending rules, or -1.0 when a written final vowel rules the pair out.
ABJAD_CACHE: Final[dict[str, dict[str, float]]] = {}
ABJAD_PAIRS: Final[dict[tuple[str, str], float]] = {}
# A joined unit (or a word) and a word (or a joined unit) compared by spelling: the other side's text ->
# similarity, 0.0 below JOINED_UNIT_MIN.
JOINED_CACHE: Final[dict[str, dict[str, float]]] = {}
# Pairs held in the rows above; a cheap bound, not an exact count across threads.
_sim_entries: Final[list[int]] = [0]


def clear_caches() -> None:
    SIM_CACHE.clear()
    ABJAD_CACHE.clear()
    ABJAD_PAIRS.clear()
    JOINED_CACHE.clear()
    _sim_entries[0] = 0


def _row(rows: dict[str, dict[str, float]], token: str) -> dict[str, float]:
    row = rows.get(token)
    if row is None:
        if _sim_entries[0] >= SIM_CACHE_MAX:
            # Cheap bound; refills from the hot pairs within a few queries.
            SIM_CACHE.clear()
            ABJAD_CACHE.clear()
            JOINED_CACHE.clear()
            _sim_entries[0] = 0
        row = {}
        rows[token] = row
    return row


def token_similarity(a: str, b: str, key_a: str, key_b: str) -> float:
    """0..1 similarity of two normalised tokens with their phonetic keys, memoised."""
    if a == b:
        return 1.0
    row = _row(SIM_CACHE, a)
    sim = row.get(b)
    if sim is None:
        sim = raw_token_similarity(a, b, key_a, key_b)
        row[b] = sim
        _sim_entries[0] += 1
    return sim


def raw_token_similarity(a: str, b: str, key_a: str, key_b: str) -> float:
    """token_similarity without the memo: edit distance, Jaro-Winkler, then sound."""
    if a[0] == FORM_PREFIX or b[0] == FORM_PREFIX:
        return 0.0
    if len(a) == 1 or len(b) == 1:
        return 0.7 if a[0] == b[0] else 0.0  # an initial stands for any name with that letter
    # OSA counts a transposition as one edit ("Okti" / "Koti"); Jaro-Winkler rewards shared prefixes.
    jaro: float = _jaro_winkler(a, b)
    osa: float = _osa(a, b)
    raw = 0.5 * (jaro + osa)
    # Stretch the distance: "Ortiz"/"Ortega" (0.68 raw) is another surname, not 68% of the same one.
    sim = max(0.0, 1.0 - DISTANCE_STRETCH * (1.0 - raw))
    # Same sound skeleton lifts the score, but only by so much: it corroborates a spelling
    # variant (Muhammad/Mohamed), it must not make unrelated short names equal.
    if key_a and key_a == key_b and len(key_a) >= 2:
        if len(key_a) >= 3:
            sim = max(sim, min(SOUND_CAP_LONG, raw + SOUND_LIFT_LONG))
        elif _one_inner_vowel_apart(a, b):
            # In a short syllable the vowel is most of the name: Min and Man, Sun and Son are other
            # names (Chinese, Korean), where Musa/Mousa or Isa/Esa are spellings of one.
            sim = max(sim, min(SOUND_CAP_SHORT, raw + SOUND_LIFT_VOWEL))
        else:
            sim = max(sim, min(SOUND_CAP_SHORT, raw + SOUND_LIFT_SHORT))
    return sim


def _one_inner_vowel_apart(a: str, b: str) -> bool:
    """Same length, and the only difference is one vowel for another after the first letter."""
    if len(a) != len(b):
        return False
    differ = -1
    for i in range(len(a)):
        if a[i] != b[i]:
            if differ >= 0:
                return False
            differ = i
    return differ > 0 and a[differ] in "aeiou" and b[differ] in "aeiou"


def abjad_pair(a: str, b: str, key_a: str, key_b: str, skel_a: Skeleton, skel_b: Skeleton) -> float:
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
    return _abjad_similarity(a, b, key_a, key_b, ending(a), ending(b))


def _abjad_similarity(a: str, b: str, key_a: str, key_b: str, end_a: bool | None, end_b: bool | None) -> float:
    """abjad_similarity past its first test, with the written endings of a and b given."""
    # A vowel ending is written in the script too (ی, ا, و, ه): Salma is not Salim, Mohammadi not
    # Mohammad.
    if end_a is not None and end_b is not None and end_a != end_b:
        return 0.0
    if len(key_a) < 2 or len(key_b) < 2:
        # A one-consonant skeleton ("ri" / "ry", "mu" / "mw") says little: only words of at most three
        # letters with the same skeleton count, and no more than short sound-alike words do.
        return ABJAD_SHORT_CAP if key_a == key_b and 2 <= len(a) <= 3 and 2 <= len(b) <= 3 else 0.0
    cached = ABJAD_PAIRS.get((a, b))
    if cached is not None:
        return cached
    raw: float = _levenshtein(key_a, key_b)
    sim = max(0.0, ABJAD_CAP - ABJAD_STRETCH * (1.0 - raw))
    if len(ABJAD_PAIRS) >= SIM_CACHE_MAX:
        ABJAD_PAIRS.clear()
    ABJAD_PAIRS[(a, b)] = sim
    return sim


_BY_SIM: Final = itemgetter(0)
_JOIN_GAP: Final = 1.0 - JOINED_UNIT_MIN


def _joined_sim(a: str, b: str) -> float:
    """Spelling similarity of a joined unit and a word, 0.0 below JOINED_UNIT_MIN; memoised like pairs."""
    row = _row(JOINED_CACHE, a)
    cached = row.get(b)
    if cached is not None:
        return cached
    sim: float = _levenshtein(a, b, score_cutoff=JOINED_UNIT_MIN)
    row[b] = sim
    _sim_entries[0] += 1
    return sim


def align(q: Side, c: Side) -> Raw:
    """Order-independent greedy alignment of query and list tokens, weighted by list-token weight."""
    scored: list[tuple[float, int, int]] = []
    n_q = len(q.tokens)
    n_c = len(c.tokens)
    q_heads = q.tokens
    c_heads = c.tokens
    q_keys = q.keys
    c_keys = c.keys
    abjad = q.abjad or c.abjad
    q_skeletons = q.skeletons
    c_skeletons = c.skeletons
    if abjad and not q_skeletons:
        memo = q.skeleton_memo
        if not memo:
            memo.append(skeletons(q.units))
        q_skeletons = memo[0]
    if abjad:
        for qi in range(n_q):
            qt = q_heads[qi]
            row = _row(ABJAD_CACHE, qt)
            for ci in range(n_c):
                ct = c_heads[ci]
                if qt == ct:
                    scored.append((1.0, qi, ci))
                    continue
                cached = row.get(ct)
                if cached is None:
                    sim = abjad_pair(qt, ct, q_keys[qi], c_keys[ci], q_skeletons[qi], c_skeletons[ci])
                    row[ct] = sim
                    _sim_entries[0] += 1
                else:
                    sim = cached
                if sim >= MATCH_MIN:
                    scored.append((sim, qi, ci))
    else:
        for qi in range(n_q):
            qt = q_heads[qi]
            row = _row(SIM_CACHE, qt)
            for ci in range(n_c):
                ct = c_heads[ci]
                if qt == ct:
                    scored.append((1.0, qi, ci))
                    continue
                cached = row.get(ct)
                if cached is None:
                    sim = raw_token_similarity(qt, ct, q_keys[qi], c_keys[ci])
                    row[ct] = sim
                    _sim_entries[0] += 1
                else:
                    sim = cached
                if sim >= MATCH_MIN:
                    scored.append((sim, qi, ci))
    if n_q != n_c:
        # A spacing difference changes the word count: only then can two joined neighbours stand for
        # one word. Joined units match by spelling alone, never by sound; a length gap over 15%
        # cannot reach JOINED_UNIT_MIN, so the edit distance is skipped.
        q_lens = q.lengths
        c_lens = c.lengths
        if abjad:
            for qi, qt, q_len in q.pairs:
                for ci in range(n_c):
                    c_len = c_lens[ci]
                    sim = 0.0
                    if abs(q_len - c_len) <= _JOIN_GAP * (q_len if q_len > c_len else c_len):
                        sim = _joined_sim(qt, c_heads[ci])
                    if sim < JOINED_UNIT_MIN:
                        # "Abdul Rahman" / "عبدالرحمن" (abdalrhman): the skeletons of compounds agree.
                        key_a, end_a = q_skeletons[qi]
                        key_b, end_b = c_skeletons[ci]
                        if key_a and key_b and key_a[0] == key_b[0]:  # abjad_similarity's first test, inlined
                            sim = _abjad_similarity(qt, c_heads[ci], key_a, key_b, end_a, end_b)
                    if sim >= JOINED_UNIT_MIN:
                        scored.append((sim, qi, ci))
            for qi in range(n_q):
                qt = q_heads[qi]
                q_len = q_lens[qi]
                for ci, ct, c_len in c.pairs:
                    sim = 0.0
                    if abs(q_len - c_len) <= _JOIN_GAP * (q_len if q_len > c_len else c_len):
                        sim = _joined_sim(qt, ct)
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
                lo, hi = partner_lengths(q_len)
                if c_max < lo or c_min > hi:
                    continue
                for ci in range(n_c):
                    if lo <= c_lens[ci] <= hi:
                        sim = _joined_sim(qt, c_heads[ci])
                        if sim >= JOINED_UNIT_MIN:
                            scored.append((sim, qi, ci))
            if c.pairs:
                for qi in range(n_q):
                    lo, hi = partner_lengths(q_lens[qi])
                    if c_pair_max < lo or c_pair_min > hi:
                        continue
                    qt = q_heads[qi]
                    for ci, ct, c_len in c.pairs:
                        if lo <= c_len <= hi:
                            sim = _joined_sim(qt, ct)
                            if sim >= JOINED_UNIT_MIN:
                                scored.append((sim, qi, ci))
    # Stable: equal similarities keep query order, so the alignment does not depend on the sort.
    scored.sort(key=_BY_SIM, reverse=True)
    used_q = 0
    used_c = 0
    num = 0.0
    den = 0.0
    kept: list[tuple[float, int, int]] = []
    q_bits = q.bits
    c_bits = c.bits
    c_unit_weights = c.unit_weights
    for item in scored:
        sim, qi, ci = item
        q_bit = q_bits[qi]
        c_bit = c_bits[ci]
        if used_q & q_bit or used_c & c_bit:
            continue
        used_q |= q_bit
        used_c |= c_bit
        w = c_unit_weights[ci]
        num += sim * w
        den += w
        kept.append(item)
    # Words the query has beyond the list name (a patronymic, a repeated word) cost like dropped ones.
    full_q = (1 << n_q) - 1
    if used_q & full_q != full_q:
        matched_q = {q_heads[i] for i in range(n_q) if used_q >> i & 1}
        q_weights = q.weights
        q_edge = q.edge_mask
        for i in range(n_q):
            if not used_q >> i & 1 and q_heads[i] not in matched_q:
                den += q_weights[i] * (EXTRA_EDGE_SHARE if q_edge >> i & 1 else EXTRA_MIDDLE_SHARE)
    full_c = (1 << n_c) - 1
    if used_c & full_c != full_c:
        # Summed in position order, as before, so scores do not move in the last bit.
        c_weights = c.weights
        edge_mask = c.edge_mask
        middle = 0.0
        edge = 0.0
        for i in range(n_c):
            if not (used_c | edge_mask) >> i & 1:
                middle += c_weights[i]
            if not (used_c | ~edge_mask) >> i & 1:
                edge += c_weights[i]
        den += DROPPED_MIDDLE_SHARE * middle
        den += DROPPED_EDGE_SHARE * edge
    score = num / den if den > 0 else 0.0
    # Spacing differences ("Abdulhai" / "Abdul Hai", "Kim Jongun") compare better as one string.
    joined_score = 0.0
    if q.joined and c.joined:
        q_whole = len(q.joined)
        c_whole = len(c.joined)
        # Lengths apart by more than a quarter of the longer cannot reach the cutoff (OSA's distance is
        # at least the difference): the call would return 0.0.
        if 4 * abs(q_whole - c_whole) <= (q_whole if q_whole > c_whole else c_whole):
            whole: float = _osa(q.joined, c.joined, score_cutoff=0.75)
            joined_score = JOINED_FACTOR * whole
        q_alt = q.joined_assimilated
        c_alt = c.joined_assimilated
        if abjad and (n_q != n_c or q_alt or c_alt):
            # Compounds are split differently on either side of a script change ("Nazirullah" /
            # "Nazir Allah", "Sirajuddin" / "Siraj al-Din", "Abdur Rehman" / "عبد الرحمن"): compare
            # whole-name skeletons too, with and without an assimilated article.
            ka = _abjad_key(q.joined)
            kb = _abjad_key(c.joined)
            sim = abjad_similarity(q.joined, c.joined, ka, kb)
            if q_alt:
                sim = max(sim, abjad_similarity(q_alt, c.joined, _abjad_key(q_alt), kb))
            if c_alt:
                sim = max(sim, abjad_similarity(q.joined, c_alt, ka, _abjad_key(c_alt)))
            joined_score = max(joined_score, JOINED_FACTOR * sim)
    return max(score, joined_score), score, kept, used_q, used_c


def join_window(length: int) -> tuple[int, int]:
    """The lengths b with abs(length - b) <= _JOIN_GAP * max(length, b), the test align applies: tried
    on each b around length, so the window agrees with that float test exactly. The test fails more
    the further b is from length, so a window whose two outer neighbours fail is complete."""
    first = max(0, length * 4 // 5 - 2)
    stop = length * 5 // 4 + 3
    ok = [b for b in range(first, stop) if abs(length - b) <= _JOIN_GAP * max(length, b)]
    if ok != list(range(ok[0], ok[-1] + 1)) or (ok[0] == first and ok[0] > 0) or ok[-1] == stop - 1:
        raise AssertionError(f"join window of {length} is not an interval inside [{first}, {stop})")
    return ok[0], ok[-1]


_JOIN_WINDOWS: Final[dict[int, tuple[int, int]]] = {}


def partner_lengths(length: int) -> tuple[int, int]:
    window = _JOIN_WINDOWS.get(length)
    if window is None:
        window = join_window(length)
        _JOIN_WINDOWS[length] = window
    return window


def count_votes(
    exact_hits: Sequence[tuple[Iterable[SupportsInt], int]],
    fuzzy_hits: Sequence[tuple[Iterable[SupportsInt], int]],
    weights: list[float],
    bound: float,
    bound_script: float | None,
    name_script: list[bool],
) -> tuple[list[int], list[float]]:
    """The names whose votes reach the bound (bound_script for a name written in Arabic script), in
    name order, with their votes: each query position counts once per name, a fuzzy one FUZZY_VOTE."""
    exact: dict[int, int] = {}
    fuzzy: dict[int, int] = {}
    for posting, mask in exact_hits:
        for ni in posting:
            key = int(ni)
            exact[key] = exact.get(key, 0) | mask
    for posting, mask in fuzzy_hits:
        for ni in posting:
            key = int(ni)
            fuzzy[key] = fuzzy.get(key, 0) | mask
    touched: list[int] = []
    votes: list[float] = []
    n = len(weights)
    for ni in sorted(exact.keys() | fuzzy.keys()):
        e_mask = exact.get(ni, 0)
        f_mask = fuzzy.get(ni, 0) & ~e_mask
        e_vote = 0.0
        f_vote = 0.0
        for i in range(n):
            if e_mask >> i & 1:
                e_vote += weights[i]
            if f_mask >> i & 1:
                f_vote += weights[i]
        vote = e_vote + FUZZY_VOTE * f_vote
        if vote >= bound or (bound_script is not None and vote >= bound_script and name_script[ni]):
            touched.append(ni)
            votes.append(vote)
    return touched, votes


class IndexView:
    """What best_by_entity reads of an index (matcher._Index), every posting a list of name numbers."""

    def __init__(
        self,
        by_edit: dict[str, list[int]],
        by_key: dict[str, list[int]],
        by_abjad: dict[str, list[int]],
        by_abjad_script: dict[str, list[int]],
        token_weight: dict[str, float],
        name_scripts: list[bool],
        by_exact: dict[tuple[str, ...], list[int]],
        by_exact_weak: dict[tuple[str, ...], list[int]],
        sides: list[Side],
        name_weak: list[bool],
        name_entity: list[int],
        top: Callable[[list[int], list[float]], list[int]],
    ) -> None:
        self.by_exact = by_exact
        self.by_exact_weak = by_exact_weak
        self.sides = sides
        self.name_weak = name_weak
        self.name_entity = name_entity
        # The CANDIDATES_MAX best of more names (numpy's argpartition, whose choice among equal votes
        # the candidate order, and so the matched name, depends on).
        self.top = top
        self.by_edit = by_edit
        self.by_key = by_key
        self.by_abjad = by_abjad
        self.by_abjad_script = by_abjad_script
        self.token_weight = token_weight
        self.name_scripts = name_scripts
        self.n_names = len(name_scripts)
        # Names recur in traffic word by word even when whole names are new, so each word's
        # neighbourhood (one-edit deletions, sound key, skeleton) is merged once and reused.
        self.probe_cache: dict[tuple[str, bool], list[int]] = {}
        # Cleared vote-mask lists for find_candidates, one pair per call in flight.
        self.scratch: list[tuple[list[int], list[int]]] = []


def rarity(names: int, n_names: int) -> float:
    if n_names <= 200:
        return 1.0
    return min(1.0, max(0.2, math.log(max(n_names / max(names, 1), 1.0)) / math.log(200.0)))


def fuzzy_posting(p: IndexView, token: str, by_skeleton: dict[str, list[int]]) -> list[int]:
    """Every name holding a one-edit neighbour, the sound key or the skeleton of a query word, in order."""
    postings: list[list[int]] = []
    by_edit = p.by_edit
    if len(token) >= DELETION_TOKEN_LEN_MIN:
        for i in range(len(token)):
            posting = by_edit.get(token[:i] + token[i + 1 :])
            if posting is not None:
                postings.append(posting)
    posting = p.by_key.get(_phonetic_key(token))
    if posting is not None:
        postings.append(posting)
    if by_skeleton:
        posting = by_skeleton.get(_abjad_key(token))
        if posting is not None:
            postings.append(posting)
    if not postings:
        return []
    if len(postings) == 1:
        return postings[0]
    names: set[int] = set()
    for names_of in postings:
        names.update(names_of)
    return sorted(names)


def find_candidates(
    p: IndexView, tokens: tuple[str, ...], weights: list[float], abjad: bool, share: float, script_share: float
) -> tuple[list[int], list[float]]:
    """The names sharing enough of the query's weight (share of it; script_share for a name written in
    Arabic script when the query is not), in name order, with their votes. Each query position counts
    once per name, exact sharing fully and a fuzzy neighbour FUZZY_VOTE. weights: of the query's words,
    0.0 for a legal form; lowered here for a word read from Arabic script that no listed word spells."""
    probes: list[tuple[str, int]] = []
    n = len(tokens)
    for i in range(n):
        if not tokens[i].startswith(FORM_PREFIX):
            probes.append((tokens[i], 1 << i))
    for i in range(n - 1):
        if weights[i] and weights[i + 1]:
            probes.append((tokens[i] + tokens[i + 1], 3 << i))
    by_edit = p.by_edit
    by_skeleton = p.by_abjad if abjad else p.by_abjad_script
    probe_cache = p.probe_cache
    exact_hits: list[tuple[list[int], int]] = []
    fuzzy_hits: list[tuple[list[int], int]] = []
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
        neighbours = probe_cache.get((token, abjad))
        if neighbours is None:
            neighbours = fuzzy_posting(p, token, by_skeleton)
            if len(probe_cache) >= PROBE_CACHE_MAX:
                probe_cache.clear()
            probe_cache[(token, abjad)] = neighbours
        if neighbours:
            fuzzy_hits.append((neighbours, mask))
            if abjad and token not in p.token_weight:
                # A word read from Arabic script is spelt like no listed word, so its rarity is
                # that of the listed words it may stand for: "mwhmd" weighs like Mohammed.
                at = mask.bit_length() - 1
                weights[at] = min(weights[at], rarity(len(neighbours), p.n_names))
    if not exact_hits and not fuzzy_hits:
        return [], []
    total = 0.0
    for w in weights:
        total += w
    bound = share * total
    # A Latin spelling shares fewer keys with a name written in Arabic script: a lower bound for
    # those names.
    use_script = not abjad and bool(p.by_abjad_script)
    bound_script = script_share * total
    # mask_weight[m]: the summed weight of the query positions set in m, added in position order.
    mask_weight = [0.0]
    for w in weights:
        mask_weight = mask_weight + [v + w for v in mask_weight]
    # The longest postings are left out of the first pass as long as the query positions they cover
    # together weigh less than the lowest bound: a name found in none of the other postings cannot
    # reach it. They only complete the votes of the names the first pass found.
    low = bound_script if use_script and bound_script < bound else bound
    hits: list[tuple[int, int, list[int], int]] = []  # (length, exact 1 / fuzzy 0, posting, mask)
    for posting, mask in exact_hits:
        hits.append((len(posting), 1, posting, mask))
    for posting, mask in fuzzy_hits:
        hits.append((len(posting), 0, posting, mask))
    hits.sort(key=_BY_SIM, reverse=True)
    later: list[tuple[int, int, list[int], int]] = []
    first: list[tuple[int, int, list[int], int]] = []
    later_bits = 0
    for hit in hits:
        # The margin keeps the test safe from rounding: a left-out name's vote is a sum of these weights.
        if mask_weight[later_bits | hit[3]] < low - _PRUNE_MARGIN:
            later_bits |= hit[3]
            later.append(hit)
        else:
            first.append(hit)
    # Masks per name over the whole list, exact and fuzzy query positions: indexing a list beats hashing
    # the thousands of posting entries a common word brings. The lists are reused, cleared after use;
    # each call takes its own pair from the pool, so threads never share one.
    scratch = p.scratch
    if scratch:
        e_masks, f_masks = scratch.pop()
    else:
        e_masks = [0] * p.n_names
        f_masks = [0] * p.n_names
    touched_all: list[int] = []
    for _, exact, posting, mask in first:
        if exact:
            for ni in posting:
                m = e_masks[ni]
                if m == 0 and f_masks[ni] == 0:
                    touched_all.append(ni)
                e_masks[ni] = m | mask
        else:
            for ni in posting:
                m = f_masks[ni]
                if m == 0 and e_masks[ni] == 0:
                    touched_all.append(ni)
                f_masks[ni] = m | mask
    for size, exact, posting, mask in later:
        if len(touched_all) * _SEARCH_COST < size:
            for ni in touched_all:
                if _holds(posting, ni):
                    if exact:
                        e_masks[ni] |= mask
                    else:
                        f_masks[ni] |= mask
        elif exact:
            for ni in posting:
                m = e_masks[ni]
                if m or f_masks[ni]:
                    e_masks[ni] = m | mask
        else:
            for ni in posting:
                m = f_masks[ni]
                if m or e_masks[ni]:
                    f_masks[ni] = m | mask
    # Sorting the touched names costs less than reading all names off in order, even for thousands.
    touched_all.sort()
    touched: list[int] = []
    votes: list[float] = []
    name_scripts = p.name_scripts
    for ni in touched_all:
        e_mask = e_masks[ni]
        vote = mask_weight[e_mask] + FUZZY_VOTE * mask_weight[f_masks[ni] & ~e_mask]
        e_masks[ni] = 0
        f_masks[ni] = 0
        if vote >= bound or (use_script and vote >= bound_script and name_scripts[ni]):
            touched.append(ni)
            votes.append(vote)
    scratch.append((e_masks, f_masks))
    return touched, votes


_PRUNE_MARGIN: Final = 1e-9
_SEARCH_COST: Final = 16  # a binary search costs about as much as walking this many posting entries


def _holds(posting: list[int], ni: int) -> bool:
    """Is ni in the sorted posting? (Binary search.)"""
    lo = 0
    hi = len(posting)
    while lo < hi:
        mid = (lo + hi) // 2
        if posting[mid] < ni:
            lo = mid + 1
        else:
            hi = mid
    return lo < len(posting) and posting[lo] == ni


def default_weight(token: str) -> float:
    if token.startswith(FORM_PREFIX):
        return FORM_WEIGHT
    if token in PARTICLES or len(token) == 1:
        return PARTICLE_WEIGHT
    return 1.0


def candidates(p: IndexView, tokens: tuple[str, ...], abjad: bool) -> list[int]:
    """matcher._Index.candidates: names sharing a token, a sound or a one-edit neighbour with the query,
    at most CANDIDATES_MAX."""
    token_weight = p.token_weight
    weights: list[float] = []
    for t in tokens:
        if t.startswith(FORM_PREFIX):
            weights.append(0.0)
        else:
            w = token_weight.get(t)
            weights.append(default_weight(t) if w is None else w)
    touched, votes = find_candidates(
        p, tokens, weights, abjad, PRUNE_BOUND_ABJAD if abjad else PRUNE_BOUND, PRUNE_BOUND_SCRIPT
    )
    if len(touched) <= CANDIDATES_MAX:
        return touched
    return p.top(touched, votes)


# A listed name's best alignment for an entity: score, name number, the query reading, the alignment.
Best = tuple[float, int, Side, Raw]


def best_by_entity(p: IndexView, variants: tuple[tuple[str, ...], ...], abjad: bool) -> dict[int, Best]:
    """The best-scoring listed name of each entity that comes close to any reading of the query."""
    best: dict[int, Best] = {}
    # Names equal to the query up to token order: no other name can score higher.
    exact: list[int] = []
    keys = [tuple(sorted(tokens)) for tokens in variants]
    for key in keys:
        hit = p.by_exact.get(key)
        if hit is not None:
            exact.extend(hit)
    token_weight = p.token_weight
    sides = p.sides
    name_weak = p.name_weak
    name_entity = p.name_entity
    for v in range(len(variants)):
        tokens = variants[v]
        weights: list[float] = []
        for t in tokens:
            w = token_weight.get(t)
            weights.append(default_weight(t) if w is None else w)
        query = build_side(tokens, weights, abjad, abjad)
        if exact:
            names = exact
        else:
            # A weak alias spelt as the query is always scored too, but cannot stop the search.
            weak = p.by_exact_weak.get(keys[v])
            names = candidates(p, tokens, abjad)
            if weak is not None:
                names = weak + names
        for ni in names:
            aligned = align(query, sides[ni])
            score = aligned[0]
            if name_weak[ni]:
                score *= WEAK_ALIAS_FACTOR
            ei = name_entity[ni]
            held = best.get(ei)
            if held is None or score > held[0]:
                best[ei] = (score, ni, query, aligned)
    return best


def pick(p: IndexView, best: dict[int, Best]) -> int:
    """The entity whose best name scores highest (rounded to 6 places); on equal scores the one whose
    name is written in the query's own word order, then the first listed. best must not be empty."""
    chosen = -1
    chosen_score = 0.0
    chosen_same = False
    for ei, entry in best.items():
        score = round(entry[0], 6)
        same = p.sides[entry[1]].tokens == entry[2].tokens
        if (
            chosen < 0
            or score > chosen_score
            or (score == chosen_score and (same > chosen_same or (same == chosen_same and ei < chosen)))
        ):
            chosen = ei
            chosen_score = score
            chosen_same = same
    return chosen


def explain(display: str, q: Side, c: Side, raw: Raw, weak: bool) -> str:
    """The words of an alignment, for the officer: which words matched how well, which were left out."""
    score, token_score, kept, used_q, used_c = raw
    if score > token_score:
        text = f"'{display}': whole name {q.joined}~{c.joined} {score / JOINED_FACTOR:.2f}"
    else:
        parts: list[str] = []
        for sim, qi, ci in kept:
            if sim == 1.0:
                parts.append(f"{q.units[qi][0]}={c.units[ci][0]}")
            else:
                parts.append(f"{q.units[qi][0]}~{c.units[ci][0]} {sim:.2f}")
        text = f"'{display}': " + (", ".join(parts) or "no token aligned")
        dropped = [t for i, t in enumerate(c.tokens) if not used_c >> i & 1]
        if dropped:
            text += "; list tokens not in query: " + " ".join(dropped)
        extra = [t for i, t in enumerate(q.tokens) if not used_q >> i & 1]
        if extra:
            text += "; query tokens not in list name: " + " ".join(extra)
    if weak:
        text += f"; weak alias x{WEAK_ALIAS_FACTOR}"
    return text


def has_abjad(text: str) -> bool:
    """Is any letter of the text from the Arabic script blocks (Arabic, Persian, Urdu)?"""
    if text.isascii():
        return False
    return any("\u0600" <= ch <= "\u06ff" or "\u0750" <= ch <= "\u077f" for ch in text)
