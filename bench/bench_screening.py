"""Screening benchmark: accuracy on eval/ against LogicV2, a seeded UN perturbation set, throughput.

Run: .venv/bin/python bench/bench_screening.py [--seed N] [--per-kind N] [--json] [--first-sight]
Reads ../shared/data/sanctions (relative to the repo root); exits 0 with a note when it is absent.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "sanctions"
LOGICV2_THRESHOLD = 0.7
SCAN_QUERIES_MAX = 400  # the plain scan is slow; time it on a sample of the same queries
# Times are CPU seconds of this process (time.process_time): the benchmark reports names/s per core,
# and CPU time stays meaningful on a shared, busy machine where wall-clock time does not.

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from setara.compliance import Screener, load_list_path, run_screen, score_names  # noqa: E402
from setara.compliance import matcher as matcher  # noqa: E402
from setara.compliance.lists import ListData  # noqa: E402
from setara.compliance.normalize import name_variants  # noqa: E402


@dataclass(frozen=True, slots=True)
class Query:
    text: str
    expected: frozenset[str]  # entity ids that count as right; empty for a name not on the list
    kind: str


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


# ------------------------------------------------------------------------------------------ eval pairs


def eval_pairs(thresholds: Sequence[float]) -> dict[str, object]:
    path = DATA / "eval" / "logicv2-frozen.csv"
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    labels = [r["is_match"] == "true" for r in rows]
    logic = [float(r["score"]) for r in rows]
    ours = [score_names(r["name1"], r["name2"]) for r in rows]

    def at(scores: Sequence[float], threshold: float) -> dict[str, float]:
        tp = sum(1 for s, y in zip(scores, labels, strict=True) if s >= threshold and y)
        fp = sum(1 for s, y in zip(scores, labels, strict=True) if s >= threshold and not y)
        fn = sum(1 for s, y in zip(scores, labels, strict=True) if s < threshold and y)
        p, r, f = prf(tp, fp, fn)
        return {"threshold": threshold, "precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4)}

    return {
        "pairs": len(rows),
        "logicv2": at(logic, LOGICV2_THRESHOLD),
        "ours": [at(ours, t) for t in thresholds],
        "scores": ours,
        "labels": labels,
    }


# ------------------------------------------------------------------------------------------ perturbations


def _typo(token: str, rng: random.Random) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    i = rng.randrange(len(token))
    op = rng.choice(("sub", "del", "ins", "swap"))
    if op == "sub":
        return token[:i] + rng.choice(alphabet.replace(token[i].lower(), "")) + token[i + 1 :]
    if op == "del" and len(token) > 3:
        return token[:i] + token[i + 1 :]
    if op == "swap" and i < len(token) - 1:
        return token[:i] + token[i + 1] + token[i] + token[i + 2 :]
    return token[:i] + rng.choice(alphabet) + token[i:]


def perturb(name: str, kind: str, rng: random.Random) -> str | None:
    tokens = name.replace(",", " ").split()
    if kind == "exact":
        return name
    if kind == "reordered":
        if len(tokens) < 2:
            return None
        shuffled = tokens[:]
        while shuffled == tokens:
            rng.shuffle(shuffled)
        return " ".join(shuffled)
    if kind == "hyphenated":
        if len(tokens) < 3:
            return None
        i = rng.randrange(1, len(tokens) - 1)
        return " ".join([*tokens[:i], tokens[i] + "-" + tokens[i + 1], *tokens[i + 2 :]])
    if kind == "typo":
        long_tokens = [i for i, t in enumerate(tokens) if len(t) >= 4]
        if not long_tokens:
            return None
        i = rng.choice(long_tokens)
        return " ".join([*tokens[:i], _typo(tokens[i], rng), *tokens[i + 1 :]])
    if kind == "dropped_middle":
        if len(tokens) < 3:
            return None
        i = rng.randrange(1, len(tokens) - 1)
        return " ".join(tokens[:i] + tokens[i + 1 :])
    if kind == "lowercase_diacritics":
        return name.lower().replace("a", "á", 1).replace("e", "é", 1)
    raise ValueError(kind)


KINDS = ("exact", "reordered", "hyphenated", "typo", "dropped_middle", "lowercase_diacritics")


def un_original_script(un_xml: Path) -> list[tuple[str, str]]:
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    root = etree.parse(str(un_xml), parser).getroot()
    out: list[tuple[str, str]] = []
    for el in root.iter("INDIVIDUAL", "ENTITY"):
        dataid = (el.findtext("DATAID") or "").strip()
        for orig in el.iter("NAME_ORIGINAL_SCRIPT"):
            if orig.text and orig.text.strip():
                out.append((orig.text.strip(), dataid))
    return out


def perturbation_set(data: ListData, seed: int, per_kind: int) -> list[Query]:
    rng = random.Random(seed)
    by_name: dict[str, set[str]] = {}
    for e in data.entities:
        for n in e.names:
            by_name.setdefault(" ".join(n.upper().replace(",", " ").split()), set()).add(e.id)
    primaries = [(e.names[0], e.id) for e in data.entities if e.names[0].isascii()]
    people = [(e.names[0], e.id) for e in data.entities if e.names[0].isascii() and e.type == "person"]
    queries: list[Query] = []
    for kind in KINDS:
        # A dropped *middle name* is a person's thing; dropping a word from a company name changes it.
        pool = people[:] if kind == "dropped_middle" else primaries[:]
        rng.shuffle(pool)
        made = 0
        for name, _ in pool:
            if made >= per_kind:
                break
            text = perturb(name, kind, rng)
            if text is None:
                continue
            expected = frozenset(by_name.get(" ".join(name.upper().replace(",", " ").split()), set()))
            queries.append(Query(text, expected, kind))
            made += 1
    for text, dataid in un_original_script(DATA / "un" / "UN_consolidated.xml"):
        queries.append(Query(text, frozenset({dataid}), "original_script"))
    return queries


def negatives() -> list[Query]:
    out: list[Query] = []
    for file, kind in (
        ("negatives_global.csv", "neg_global"),
        ("negatives_us.csv", "neg_us"),
        ("positives_us_congress_untreated.csv", "neg_us_congress"),
    ):
        with (DATA / "eval" / file).open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if row["full_name"].strip():
                    out.append(Query(row["full_name"].strip(), frozenset(), kind))
    return out


def yente_positives() -> list[Query]:
    out: list[Query] = []
    for file, kind in (
        ("positives_un_untreated.csv", "yente_untreated"),
        ("positives_un_treated.csv", "yente_treated"),
    ):
        with (DATA / "eval" / file).open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                out.append(Query(row["full_name"].strip(), frozenset({"*"}), kind))
    return out


def evaluate(queries: Sequence[Query], hit_of: Callable[[str], tuple[bool, str | None]]) -> dict[str, object]:
    per_kind: dict[str, list[int]] = {}
    tp = fp = fn = tn = 0
    misses: list[str] = []
    false_hits: list[str] = []
    for q in queries:
        hit, entity_id = hit_of(q.text)
        right = hit and ("*" in q.expected or entity_id in q.expected)
        counts = per_kind.setdefault(q.kind, [0, 0])
        counts[1] += 1
        if q.expected:
            if right:
                tp += 1
                counts[0] += 1
            else:
                fn += 1
                misses.append(f"{q.kind}: {q.text!r} -> {entity_id}")
                if hit:
                    fp += 1  # a hit on the wrong entity is both a miss and a false alarm
        elif hit:
            fp += 1
            counts[0] += 1
            false_hits.append(f"{q.kind}: {q.text!r} -> {entity_id}")
        else:
            tn += 1
    p, r, f = prf(tp, fp, fn)
    n_neg = sum(1 for q in queries if not q.expected)
    negatives_hit = sum(1 for q in queries if not q.expected and hit_of(q.text)[0])
    return {
        "queries": len(queries),
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(f, 4),
        "fpr": round(negatives_hit / n_neg, 4) if n_neg else 0.0,
        "per_kind": {k: f"{v[0]}/{v[1]}" for k, v in per_kind.items()},
        "misses": misses,
        "false_hits": false_hits,
    }


# ------------------------------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=20260227)
    parser.add_argument("--per-kind", type=int, default=600)
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")
    parser.add_argument("--show", type=int, default=15, help="misses and false hits to list")
    parser.add_argument("--accuracy-only", action="store_true", help="skip the throughput runs")
    parser.add_argument("--first-sight", action="store_true",
                        help="only the first-sight cost per distinct new name (us), the index loaded from its "
                             "persisted form, against a plain scan measured in the same run")
    args = parser.parse_args(argv)
    if not (DATA / "un" / "UN_consolidated.xml").is_file():
        print(f"skipped: shared sanctions data not found at {DATA}", file=sys.stderr)
        return 0
    from rapidfuzz import process, utils

    results: dict[str, object] = {}
    t0 = time.process_time()
    un = load_list_path("un-xml", DATA / "un" / "UN_consolidated.xml")
    t_load = time.process_time() - t0
    t0 = time.process_time()
    screener = Screener([un], cache_size=0)
    t_index = time.process_time() - t0
    results["list"] = {"entities": un.entity_count, "load_s": round(t_load, 3), "index_s": round(t_index, 3)}

    pairs = eval_pairs([0.7, 0.75, 0.8, screener.review_threshold, 0.85, 0.9, screener.block_threshold])
    results["eval_pairs"] = {k: v for k, v in pairs.items() if k not in ("scores", "labels")}

    positives = perturbation_set(un, args.seed, args.per_kind)
    negs = negatives()
    queries = positives + negs
    results["perturbation_set"] = {"positives": len(positives), "negatives": len(negs), "seed": args.seed}

    seen: dict[str, tuple[float, str | None]] = {}

    def ours(text: str) -> tuple[bool, str | None]:
        m = screener.screen(text)
        seen[text] = (m.score, m.entity_id)
        return m.hit, m.entity_id

    results["ours"] = evaluate(queries, ours)
    # Block threshold: of the queries that would be blocked outright, how many are the right entity.
    blocked = [q for q in queries if seen[q.text][0] >= screener.block_threshold]
    right = sum(1 for q in blocked if seen[q.text][1] in q.expected)
    results["block"] = {
        "threshold": screener.block_threshold,
        "blocked": len(blocked),
        "precision": round(right / len(blocked), 4) if blocked else 0.0,
        "share_of_positives_blocked": round(right / len(positives), 4),
    }
    results["yente_un_positives"] = evaluate(yente_positives(), ours)

    if args.first_sight:
        return _first_sight(un, [q.text for q in queries], args)

    if args.accuracy_only:
        results["scan_sample"] = {"queries": 0, "precision": 0, "recall": 0, "f1": 0, "fpr": 0, "per_kind": {}}
        results["throughput"] = {}
        return _report(results, args)

    # Plain scan: rapidfuzz's default WRatio over every name of every entity, best one wins.
    choices: list[str] = []
    owner: list[str] = []
    for e in un.entities:
        for n in (*e.names, *e.weak_names):
            choices.append(n)
            owner.append(e.id)
    processed = [utils.default_process(c) for c in choices]
    scan_threshold = 90.0

    def scan(text: str) -> tuple[bool, str | None]:
        best = process.extractOne(utils.default_process(text), processed, processor=None)
        if best is None or best[1] < scan_threshold:
            return False, None
        return True, owner[best[2]]

    sample = queries[:: max(1, len(queries) // SCAN_QUERIES_MAX)][:SCAN_QUERIES_MAX]
    t0 = time.process_time()
    for q in sample:
        scan(q.text)
    scan_s = time.process_time() - t0
    scan_eval = evaluate(sample, scan)
    scan_eval.pop("misses")
    scan_eval.pop("false_hits")
    results["scan_sample"] = scan_eval

    # Throughput of our screener on the same names: every query scored (result cache off), index
    # warm, normalisation caches cleared first so no query is pre-digested. Median of three runs,
    # because the machine is shared.
    texts = [q.text for q in queries]
    unique_rates: list[float] = []
    for _ in range(3):
        _clear_caches()
        fresh = Screener([un], cache_size=0)
        fresh.screen("warm up")
        t0 = time.process_time()
        for text in texts:
            fresh.screen(text)
        unique_rates.append(len(texts) / (time.process_time() - t0))
    ours_rate = sorted(unique_rates)[1]
    # Repeated counterparties: the same names again through the bounded result cache.
    cached = Screener([un])
    for text in texts:
        cached.screen(text)
    t0 = time.process_time()
    for text in texts:
        cached.screen(text)
    cached_s = time.process_time() - t0
    # Whole process as `setara screen` does it: parse list, build index, screen every line.
    _clear_caches()
    t0 = time.process_time()
    whole = Screener([load_list_path("un-xml", DATA / "un" / "UN_consolidated.xml")])
    for _ in run_screen((t + "\n" for t in texts), whole):
        pass
    whole_s = time.process_time() - t0
    scan_rate = len(sample) / scan_s
    results["throughput"] = {
        "queries": len(texts),
        "ours_unique_names_per_s": round(ours_rate),
        "ours_unique_runs": [round(r) for r in unique_rates],
        "ours_cached_names_per_s": round(len(texts) / cached_s),
        "ours_whole_process_names_per_s": round(len(texts) / whole_s),
        "scan_names_per_s": round(scan_rate),
        "ratio_unique_vs_scan": round(ours_rate / scan_rate, 1),
        "ratio_whole_process_vs_scan": round(len(texts) / whole_s / scan_rate, 1),
        "scan_choices": len(choices),
    }

    return _report(results, args)


def _first_sight(un: ListData, texts: Sequence[str], args: argparse.Namespace) -> int:
    """Cost of a name never seen before: normalisation, candidates and scoring, every cache cleared,
    the index loaded from the bytes it is persisted as. CPU time; median of three runs."""
    from rapidfuzz import process, utils

    distinct = list(dict.fromkeys(texts))
    blob = Screener([un], cache_size=0).index_bytes()
    load_s: list[float] = []
    costs_us: list[float] = []
    for _ in range(3):
        _clear_caches()
        t0 = time.perf_counter()
        screener = Screener([un], cache_size=0, index=blob)
        load_s.append(time.perf_counter() - t0)
        t0 = time.process_time()
        for text in distinct:
            screener.screen(text)
        costs_us.append(1e6 * (time.process_time() - t0) / len(distinct))
    cost = sorted(costs_us)[1]
    # Baseline in the same run: rapidfuzz WRatio over every listed name, on a sample.
    choices = [utils.default_process(n) for e in un.entities for n in (*e.names, *e.weak_names)]
    sample = distinct[:: max(1, len(distinct) // SCAN_QUERIES_MAX)][:SCAN_QUERIES_MAX]
    t0 = time.process_time()
    for text in sample:
        process.extractOne(utils.default_process(text), choices, processor=None)
    scan_us = 1e6 * (time.process_time() - t0) / len(sample)
    result = {
        "names": len(distinct),
        "first_sight_us_per_name": round(cost, 1),
        "names_per_s": round(1e6 / cost),
        "runs_us": [round(c, 1) for c in costs_us],
        "index_load_s": round(sorted(load_s)[1], 3),
        "index_bytes": len(blob),
        "scan_us_per_name": round(scan_us, 1),
        "ratio_scan_over_ours": round(scan_us / cost, 1),
    }
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() if args.json else result)
    return 0


def _clear_caches() -> None:
    """Every memo of words, pairs and names, so each name is seen for the first time. (The fallback
    is for running this script against the matcher of an older commit, for before/after figures.)"""
    clear = getattr(matcher, "clear_caches", None)
    if clear is not None:
        clear()
        return
    from setara.compliance.normalize import abjad_key, phonetic_key

    name_variants.cache_clear()
    phonetic_key.cache_clear()
    abjad_key.cache_clear()
    matcher._SIM_CACHE.clear()
    matcher._ABJAD_CACHE.clear()


def _report(results: dict[str, object], args: argparse.Namespace) -> int:
    if args.json:
        print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
        return 0
    ev = results["eval_pairs"]
    assert isinstance(ev, dict)
    print(f"eval pairs ({ev['pairs']}): LogicV2 @0.7 {ev['logicv2']}")
    for row in ev["ours"]:
        print(f"  ours {row}")
    for name in ("ours", "yente_un_positives", "scan_sample"):
        block = results[name]
        assert isinstance(block, dict)
        print(
            f"{name}: queries={block['queries']} P={block['precision']} R={block['recall']} "
            f"F1={block['f1']} FPR={block['fpr']}"
        )
        print(f"  per kind: {block['per_kind']}")
        for line in list(block.get("misses", []))[: args.show]:
            print(f"  miss  {line}")
        for line in list(block.get("false_hits", []))[: args.show]:
            print(f"  false {line}")
    print(f"block: {results['block']}")
    print(f"list: {results['list']}")
    print(f"throughput: {results['throughput']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
