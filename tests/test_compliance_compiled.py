"""The screening inner loops compiled by mypyc (setup.py) against the same source run as plain Python.

setara.compliance._align and setara.compliance.normalize are compiled at install time when the build
is on (the default); the .py files stay, and are loaded here under other names to compare.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from setara.compliance import Entity, ListData, Screener, load_list_path, matcher
from setara.compliance import _align as loaded_align
from setara.compliance import normalize as loaded_normalize

PACKAGE = Path(matcher.__file__).resolve().parent
DATA = Path(__file__).parents[1] / ".." / "shared" / "data" / "sanctions"
UN_XML = DATA / "un" / "UN_consolidated.xml"

COMPILED_MODULES = ("_align", "normalize")

# Names in the scripts and shapes the matcher treats differently, and the entities they are matched with.
QUERIES = [
    "Kim Jong Un", "KIM Jong-un", "Kim Jongun", "김정은", "金正恩", "Ким Чен Ын",
    "Muammar Qaddafi", "Moammar Gadhafi", "معمر القذافي", "Mu'ammar al-Qadhdhafi",
    "Abdul Rahman Yasin", "عبدالرحمن ياسين", "Abdulrahman Yaseen", "Vladimir Vladimirovich Putin",
    "Romashka OOO", "OOO Romashka", "Romashka Limited Liability Company", "ROMASHKA LLC.",
    "José Müller-Lüdenscheidt", "Nazirullah Hanafi", "Nazir Allah Hanafi", "Sirajuddin Haqqani",
    "Hafiz Mohammad Sahib", "Mohammed", "M. Yusof", "Xyzzy Plugh", "Sun Ming", "Sa Ding",
    "イクバル", "Ἰωάννης", "Sabalan Company", "G.m.b.H. Alpha", "o'brien", "Mohammadi", "Salma",
]
ENTITIES = (
    Entity("K1", ("KIM JONG UN", "김정은"), "person", ("KP",), (1984,), "DPRK"),
    Entity("Q1", ("MUAMMAR QADDAFI", "معمر القذافي"), "person", ("LY",), (1942,), "LIBYA"),
    Entity("A1", ("Abdul Rahman YASIN", "عبد الرحمن ياسين"), "person", ("IQ",), (1960,), "TEST"),
    Entity("P1", ("Vladimir PUTIN",), "person", ("RU",), (1952,), "TEST"),
    Entity("R1", ("Romashka LLC",), "entity", ("RU",), (), "TEST"),
    Entity("N1", ("Nazir Allah Hanafi", "Sirajuddin Haqqani"), "person", ("AF",), (), "TEST"),
    Entity("H1", ("Hafiz Mohammad Sahib",), "person", ("AF",), (), "TEST"),
    Entity("M1", ("Mohammad", "Salma Mohammadi"), "person", (), (), "TEST"),
    Entity("S1", ("Sabalan Company",), "entity", ("IR",), (), "TEST"),
)


def _extension(module: str) -> Path | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = PACKAGE / f"{module}{suffix}"
        if path.is_file():
            return path
    return None


def _from_source(module: str) -> ModuleType:
    """The .py file of a compiled module, run as plain Python under another name."""
    name = f"setara.compliance._pure_{module.lstrip('_')}"
    spec = importlib.util.spec_from_file_location(name, PACKAGE / f"{module}.py")
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded  # dataclasses and the like look their module up
    spec.loader.exec_module(loaded)
    return loaded


@pytest.mark.parametrize("module", COMPILED_MODULES)
def test_the_compiled_module_is_the_one_loaded_when_built(module: str) -> None:
    built = _extension(module)
    if built is None:
        pytest.skip(f"{module} is not compiled here (SETARA_PURE_PYTHON=1, or not installed with pip)")
    loaded = {"_align": loaded_align, "normalize": loaded_normalize}[module]
    assert Path(str(loaded.__file__)).resolve() == built.resolve()
    assert matcher.COMPILED


def test_the_compiled_modules_are_built_from_the_sources_here() -> None:
    """An editable install keeps running a compiled module after its .py is edited: say so, rather
    than test (and screen with) code that is not the source."""
    if not any(_extension(m) for m in COMPILED_MODULES):
        pytest.skip("the matcher is not compiled here")
    record = PACKAGE / "_compiled_sources.json"
    assert record.is_file(), f"{record} is missing: run `pip install -e .` again"
    built = json.loads(record.read_text())
    root = PACKAGE.parents[2]
    stale = [p for p, digest in built.items() if hashlib.sha256((root / p).read_bytes()).hexdigest() != digest]
    assert stale == [], f"{stale} changed since the compiled build: run `pip install -e .` again"


def test_the_matcher_knows_whether_it_runs_compiled() -> None:
    built = _extension("_align") is not None
    assert built == matcher.COMPILED
    assert str(_from_source("_align").__file__).endswith("_align.py")


def test_normalisation_agrees_compiled_and_interpreted() -> None:
    pure = _from_source("normalize")
    words = {w for q in QUERIES for v in loaded_normalize.name_variants(q) for w in v}
    words |= {"", "~llc", "mohammed", "tchaikovsky", "schmidt", "cecilia", "ccy", "allah", "ull", "a\n\nb", "hh"}
    for word in sorted(words):
        assert pure.phonetic_key(word) == loaded_normalize.phonetic_key(word), word
        assert pure.abjad_key(word) == loaded_normalize.abjad_key(word), word
    for query in QUERIES:
        assert pure.name_variants(query) == loaded_normalize.name_variants(query), query


def _views(index: matcher._Index, module: ModuleType) -> object:
    """An _align.IndexView of `module` over the data of a built index."""
    sides = [
        module.build_side(t, w, module.has_abjad(d), True)
        for t, w, d in zip(index.name_tokens, index.name_weights, index.name_display, strict=True)
    ]
    return module.IndexView(
        index.by_edit, index.by_key, index.by_abjad, index.by_abjad_script,
        index.token_weight, index.name_scripts, index.by_exact, index.by_exact_weak, sides,
        index.name_weak, index.name_entity, index.view.top,
    )


def _compare_alignments(screener: Screener, queries: list[str]) -> int:
    """Every reading of every query through both modules: the same names, scores, alignments and
    explanations. Returns how many listed names were aligned."""
    pure = _from_source("_align")
    index = screener._index
    views = {"pure": _views(index, pure), "loaded": _views(index, loaded_align)}
    modules = {"pure": pure, "loaded": loaded_align}
    aligned = 0
    for query in queries:
        variants = loaded_normalize.name_variants(query)
        abjad = loaded_align.has_abjad(query)
        assert pure.has_abjad(query) == abjad
        results = {}
        for which, module in modules.items():
            module.clear_caches()
            best = module.best_by_entity(views[which], variants, abjad)
            results[which] = {
                ei: (
                    score, ni, query_side.tokens, raw,
                    module.explain(index.name_display[ni], query_side, views[which].sides[ni], raw, False),
                )
                for ei, (score, ni, query_side, raw) in best.items()
            }
            if best:
                results[which]["pick"] = module.pick(views[which], best)
            for tokens in variants:
                results[which][("candidates", tokens)] = module.candidates(views[which], tokens, abjad)
        assert results["pure"] == results["loaded"], query
        aligned += len(results["pure"])
    return aligned


def test_alignment_agrees_compiled_and_interpreted() -> None:
    screener = Screener([ListData("un-xml", "2026-01-01", "0" * 64, ENTITIES)], cache_size=0)
    assert _compare_alignments(screener, QUERIES) > len(QUERIES)


@pytest.mark.skipif(not UN_XML.is_file(), reason=f"shared sanctions data not found at {DATA}")
def test_alignment_agrees_compiled_and_interpreted_on_the_un_list() -> None:
    un = load_list_path("un-xml", UN_XML)
    screener = Screener([un], cache_size=0)
    queries = [*QUERIES]
    for entity in un.entities[::7]:
        name = entity.names[0]
        words = name.split()
        queries += [name, " ".join(reversed(words)), name[:-1] + "x", " ".join(words[:1] + words[2:])]
    assert _compare_alignments(screener, queries) > len(queries)


