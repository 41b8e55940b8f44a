"""Sanctions screening: list loaders, normalisation, matching, country rules, fetching."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from setara.compliance import (
    BLOCK_THRESHOLD,
    COMPREHENSIVE_UN_COUNTRIES,
    OFFICIAL_URLS,
    REVIEW_THRESHOLD,
    SOURCES,
    Entity,
    ListData,
    Screener,
    country_code,
    country_rule_hit,
    fetch_list,
    load_list,
    load_list_path,
    normalize_name,
    run_screen,
    score_names,
    update_list,
)

DATA = Path(__file__).parents[1] / ".." / "shared" / "data" / "sanctions"
UN_XML = DATA / "un" / "UN_consolidated.xml"
needs_data = pytest.mark.skipif(not UN_XML.is_file(), reason=f"shared sanctions data not found at {DATA}")


def _list(*entities: Entity, source: str = "un-xml") -> ListData:
    return ListData(source, "2026-01-01", "0" * 64, tuple(entities))


KIM = Entity("K1", ("KIM JONG UN",), "person", ("KP",), (1984,), "DPRK")
QADDAFI = Entity("Q1", ("MUAMMAR QADDAFI",), "person", ("LY",), (1942,), "LIBYA")
ROMASHKA = Entity("R1", ("Romashka LLC",), "entity", ("RU",), (), "TEST")


@pytest.fixture(scope="session")
def un_list() -> ListData:
    if not UN_XML.is_file():
        pytest.skip(f"shared sanctions data not found at {DATA}")
    return load_list_path("un-xml", UN_XML)


@pytest.fixture(scope="session")
def un_screener(un_list: ListData) -> Screener:
    return Screener([un_list])


@pytest.fixture(scope="module")
def small_screener() -> Screener:
    return Screener([_list(KIM, QADDAFI, ROMASHKA)])


# ------------------------------------------------------------------------------------------ loaders


@needs_data
def test_un_loader_keeps_dataid_and_counts(un_list: ListData) -> None:
    assert un_list.source == "un-xml"
    assert un_list.list_date == "2026-02-27"
    assert un_list.entity_count == 1003
    assert len(un_list.sha256) == 64
    first = un_list.entities[0]
    assert first.id == "6907993"
    assert first.names[0] == "ERIC BADEGE"
    assert first.type == "person"
    assert first.birth_years == (1971,)
    assert "CD" in first.countries
    types = {e.type for e in un_list.entities}
    assert types == {"person", "entity"}
    assert sum(1 for e in un_list.entities if e.type == "person") == 730
    # Original-script names are indexed as names of their entity.
    assert any("صدام حسين التكريتي" in e.names for e in un_list.entities)


@needs_data
def test_list_blob_round_trip(un_list: ListData) -> None:
    blob = un_list.to_bytes()
    again = ListData.from_bytes(blob)
    assert again == un_list
    with pytest.raises(ValueError):
        ListData.from_bytes(b"not json")


@needs_data
def test_ofac_csv_directory_reads_siblings() -> None:
    sdn = load_list_path("ofac-sdn-csv", DATA / "ofac_sdn")
    assert sdn.entity_count == 8976
    kim = next(e for e in sdn.entities if e.id == "20157")
    assert kim.names[0] == "KIM, Jong Un"
    assert kim.type == "person"
    assert "KP" in kim.countries
    cuba = next(e for e in sdn.entities if e.id == "306")
    assert "NATIONAL BANK OF CUBA" in cuba.names  # from alt.csv
    assert "CH" in cuba.countries  # from add.csv
    # Same result when pointed at sdn.csv itself.
    assert load_list_path("ofac-sdn-csv", DATA / "ofac_sdn" / "sdn.csv").sha256 == sdn.sha256
    non_sdn = load_list_path("ofac-sdn-csv", DATA / "ofac_non_sdn")
    assert non_sdn.entity_count == 442


@needs_data
def test_eu_and_uk_loaders_keep_ids() -> None:
    eu = load_list_path("eu-xml", DATA / "eu_2016" / "data.xml")
    assert eu.list_date == "2016-02-11"
    assert eu.entity_count == 595
    mugabe = next(e for e in eu.entities if e.id == "1")
    assert mugabe.names[0] == "Robert Gabriel Mugabe"
    assert mugabe.birth_years == (1924,)
    uk = load_list_path("uk-csv", DATA / "uk_hmt_2016" / "data.csv")
    assert uk.list_date == "2016-02-12"
    assert uk.entity_count == 463
    abda = next(e for e in uk.entities if e.id == "7087")
    assert abda.names[0] == "Mohamed ABU ABDA"
    assert set(abda.countries) >= {"TN"}


def test_ofac_xml_and_eu_v11_loaders() -> None:
    ofac = b"""<?xml version="1.0"?>
<sdnList xmlns="https://sanctionslistservice.ofac.treas.gov/api/PublicationPreview/exports/SDN.XSD">
  <publshInformation><Publish_Date>11/25/2026</Publish_Date><Record_Count>1</Record_Count></publshInformation>
  <sdnEntry><uid>20157</uid><firstName>Jong Un</firstName><lastName>KIM</lastName><sdnType>Individual</sdnType>
    <programList><program>DPRK3</program></programList>
    <akaList><aka><uid>1</uid><type>a.k.a.</type><category>weak</category>
      <lastName>KIM Jong-un</lastName></aka></akaList>
    <dateOfBirthList><dateOfBirthItem><dateOfBirth>08 Jan 1982</dateOfBirth></dateOfBirthItem></dateOfBirthList>
    <nationalityList><nationality><country>Korea, North</country></nationality></nationalityList>
  </sdnEntry>
</sdnList>"""
    data = load_list("ofac-sdn-xml", ofac)
    (kim,) = data.entities
    assert (kim.id, kim.names, kim.weak_names) == ("20157", ("Jong Un KIM",), ("KIM Jong-un",))
    assert kim.countries == ("KP",) and kim.birth_years == (1982,) and data.list_date == "2026-11-25"
    eu = """<?xml version="1.0" encoding="UTF-8"?>
<export xmlns="http://eu.europa.ec/fpi/fsd/export" generationDate="2026-11-20T10:00:00.000+01:00">
  <sanctionEntity designationDate="2022-02-25" logicalId="139013">
    <regulation programme="UKR"/>
    <subjectType code="person" classificationCode="P"/>
    <nameAlias firstName="Sergey" middleName="Viktorovich" lastName="Lavrov" wholeName="Sergey Viktorovich LAVROV"/>
    <nameAlias wholeName="Сергей Викторович Лавров"/>
    <citizenship countryIso2Code="RU"/>
    <birthdate birthdate="1950-03-21" year="1950"/>
  </sanctionEntity>
</export>""".encode()
    eu_data = load_list("eu-xml", eu)
    (lavrov,) = eu_data.entities
    assert lavrov.id == "139013" and lavrov.countries == ("RU",) and lavrov.birth_years == (1950,)
    assert "Сергей Викторович Лавров" in lavrov.names and eu_data.list_date == "2026-11-20"
    assert Screener([eu_data]).screen("Sergei Lavrov").hit


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("junk", [b"\x00\xff\xfe garbage \x89PNG", b"<html><body>Not found</body></html>", b""])
def test_garbage_list_bytes_raise_value_error(source: str, junk: bytes) -> None:
    with pytest.raises(ValueError):
        load_list(source, junk)


def test_unknown_source_and_entity_expansion_refused() -> None:
    with pytest.raises(ValueError, match="unknown list source"):
        load_list("interpol-xml", b"<x/>")
    bomb = b"""<?xml version="1.0"?><!DOCTYPE CONSOLIDATED_LIST [<!ENTITY a "AAAAAAAAAA">
<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c SYSTEM "file:///etc/passwd">]>
<CONSOLIDATED_LIST><INDIVIDUALS><INDIVIDUAL><DATAID>1</DATAID><FIRST_NAME>&b;&c;</FIRST_NAME>
</INDIVIDUAL></INDIVIDUALS></CONSOLIDATED_LIST>"""
    try:
        data = load_list("un-xml", bomb)
    except ValueError:
        return  # refusing the document outright is fine too
    assert all("AAAA" not in n and "root:" not in n for e in data.entities for n in e.names)


# ------------------------------------------------------------------------------------------ normalisation


def test_company_forms_and_honorifics() -> None:
    assert normalize_name("ООО Ромашка") == normalize_name("OOO Romashka") == "~llc romashka"
    assert normalize_name("Romashka LLC") == "romashka ~llc"
    assert score_names("ООО Ромашка", "Romashka LLC") == 1.0
    assert score_names("Romashka Limited Liability Company", "OOO ROMASHKA") == 1.0
    assert normalize_name("PT Bank Mandiri Tbk") == "~pt bank mandiri ~pt"
    assert normalize_name("Volkswagen Bank G.m.b.H.") == normalize_name("Volkswagen Bank GmbH")
    assert normalize_name("Sapura Sdn. Bhd.") == normalize_name("SAPURA SENDIRIAN BERHAD")
    assert normalize_name("Sberbank PJSC") == normalize_name("Sberbank Public Joint Stock Company")
    assert normalize_name("Dr. José Müller-Lüdenscheidt") == "jose muller ludenscheidt"
    assert normalize_name("Company") == "company"  # a form alone stays a name
    assert normalize_name("Novin Energy COMPAqY") == "novin energy ~co"  # one typo in a long form word
    assert normalize_name("Morteza Behzad") == "morteza behzad"  # a name two edits from "Berhad"
    assert normalize_name("Li Ao Jing") == "li ao jing"  # a short form inside a name is a syllable
    assert normalize_name("   ") == ""


@pytest.mark.parametrize(
    "query",
    ["김정은", "金正恩", "Ким Чен Ын", "Kim Jong Un", "Kim Jong-un", "KIM Jong Un", "Jong-un Kim", "Kim Jongun"],
)
def test_kim_jong_un_in_every_script(small_screener: Screener, query: str) -> None:
    m = small_screener.screen(query)
    assert m.hit and m.entity_id == "K1" and m.decision == "block", m


@pytest.mark.parametrize("query", ["Muhammar Gaddafi", "Moammar Kadhafi", "Muammar al-Qaddafi", "QADHAFI Muammar"])
def test_qaddafi_spellings(small_screener: Screener, query: str) -> None:
    m = small_screener.screen(query)
    assert m.hit and m.entity_id == "Q1", m


def test_muhammad_mohamed_same_sound() -> None:
    assert score_names("Mohamed Salah Abdelkader", "Muhammad Salah Abd el Kader") >= REVIEW_THRESHOLD
    assert score_names("Osama bin Laden", "Usama bin Ladin") >= REVIEW_THRESHOLD
    assert score_names("Isa Musa", "Esa Mousa") >= REVIEW_THRESHOLD


def test_short_syllables_one_vowel_apart_are_other_names() -> None:
    # Sun and Son, Ming and Min: in Chinese and Korean names the vowel tells syllables apart.
    assert score_names("Sun Ming", "Son Min") < REVIEW_THRESHOLD
    assert score_names("Kim Chul Su", "Kim Chol Su") >= REVIEW_THRESHOLD  # one Korean name, two spellings


@pytest.mark.parametrize("query", ["John Smith", "Kim Jong Il", "Maria Garcia Lopez", "Ortega Daniel", "김종민"])
def test_unrelated_names_clear(small_screener: Screener, query: str) -> None:
    m = small_screener.screen(query)
    assert not m.hit and m.decision == "clear", m


# ------------------------------------------------------------------------------------------ screening


@needs_data
@pytest.mark.parametrize(
    ("query", "entity_id"),
    [
        ("ABDULHAI SALEK", "111209"),
        ("Salek, Abdulhai", "111209"),
        ("Abdul-Hai Salek", "111209"),
        ("ABDUL-HAQ WASIQ", "110945"),
        ("Kwang-Il Kim", "690745"),
        ("صدام حسين التكريتي", "6908048"),
        ("Saddam Hussein al-Tikriti", "6908048"),
        ("KOREA RYONBONG GENERAL CORP", "690751"),
    ],
)
def test_un_listed_names_hit_the_right_entity(un_screener: Screener, query: str, entity_id: str) -> None:
    m = un_screener.screen(query)
    assert m.hit and m.entity_id == entity_id and m.list == "un-xml", m
    assert m.matched_name and m.explanation


@needs_data
@pytest.mark.parametrize(
    "query", ["Patricia Lucas Wheeler", "Ingeborg Abrahamsen", "Nguyễn Văn An", "Jennifer McClellan"]
)
def test_un_unlisted_names_clear(un_screener: Screener, query: str) -> None:
    assert not un_screener.screen(query).hit


def test_country_and_birth_year_adjust_score(small_screener: Screener) -> None:
    base = small_screener.screen("Kim Jong Un")
    same = small_screener.screen("Kim Jong Un", country="KP", birth_year=1984)
    other = small_screener.screen("Kim Jong Un", country="United States", birth_year=1950)
    assert same.score >= base.score > other.score
    assert "birth year 1950" in other.explanation and "country US" in other.explanation


def test_thresholds_and_decisions(small_screener: Screener) -> None:
    assert 0.0 < REVIEW_THRESHOLD < BLOCK_THRESHOLD <= 1.0
    assert small_screener.decide(BLOCK_THRESHOLD) == "block"
    assert small_screener.decide(REVIEW_THRESHOLD) == "review"
    assert small_screener.decide(REVIEW_THRESHOLD - 0.01) == "clear"
    with pytest.raises(ValueError):
        Screener([], review_threshold=0.9, block_threshold=0.8)


def test_bad_queries(small_screener: Screener) -> None:
    for empty in ("", "   ", "\t"):
        with pytest.raises(ValueError, match="empty name"):
            small_screener.screen(empty)
    m = small_screener.screen("!!! ???")
    assert not m.hit and m.entity_id is None
    long = small_screener.screen("Kim Jong Un " + "x" * 10_000)
    assert long.query.startswith("Kim")


def test_no_list_loaded_is_clear() -> None:
    m = Screener([]).screen("Kim Jong Un")
    assert (m.hit, m.decision, m.entity_id) == (False, "clear", None)
    assert "no list" in m.explanation


def test_cache_is_bounded_and_consistent() -> None:
    screener = Screener([_list(KIM)], cache_size=2)
    first = screener.screen("Kim Jong Un")
    for q in ("a b", "c d", "e f"):
        screener.screen(q)
    assert screener.screen("Kim Jong Un") == first
    assert len(screener._cache) <= 2


def test_run_screen_line_format(small_screener: Screener) -> None:
    lines = ["Kim Jong Un\n", "\n", "John Smith\tGB\t1970\n", "Muammar Qaddafi\tLY\tnot-a-year\n"]
    out = list(run_screen(lines, small_screener))
    assert [r["query"] for r in out] == ["Kim Jong Un", "John Smith", "Muammar Qaddafi"]
    assert set(out[0]) == {"query", "hit", "score", "entity_id", "list", "matched_name"}
    assert out[0]["hit"] is True and out[0]["entity_id"] == "K1" and out[0]["list"] == "un-xml"
    assert out[1]["hit"] is False and out[1]["entity_id"] is None
    assert out[2]["entity_id"] == "Q1"


def test_screen_many_and_multiple_lists() -> None:
    other = _list(Entity("O1", ("Romashka LLC",), "entity"), source="uk-csv")
    screener = Screener([_list(KIM), other])
    a, b = screener.screen_many(["Kim Jong Un", ("OOO Romashka", "RU", None)])
    assert (a.entity_id, a.list) == ("K1", "un-xml")
    assert (b.entity_id, b.list) == ("O1", "uk-csv")


# ------------------------------------------------------------------------------------------ country rule


def test_country_rule() -> None:
    assert COMPREHENSIVE_UN_COUNTRIES == ("KP",)
    assert country_rule_hit(["KP"], None, []) is not None
    assert country_rule_hit(["Democratic People's Republic of Korea"], None, []) is not None
    assert country_rule_hit(["KR"], "Seoul, Republic of Korea", ["SHBKKRSE"]) is None
    assert country_rule_hit([], "Potonggang District, Pyongyang", []) is not None
    assert country_rule_hit([], "c/o DPRK embassy", []) is not None
    assert country_rule_hit([], "평양", []) is not None
    assert country_rule_hit([], None, ["KKBCKPPY"]) is not None
    assert country_rule_hit([], None, ["KKBCKPPYXXX"]) is not None
    assert country_rule_hit(["ID"], "Jl. Sudirman, Jakarta", ["BMRIIDJA"]) is None
    assert country_rule_hit(["IR"], None, [], restricted=("IR", "KP")) is not None
    assert country_code("Iran (Islamic Republic of)") == "IR"
    assert country_code("north korea") == "KP"
    assert country_code("Syrian Arab Republic") == "SY"
    assert country_code("Atlantis") is None


# ------------------------------------------------------------------------------------------ fetch


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def list_server() -> Iterator[str]:
    if not UN_XML.is_file():
        pytest.skip(f"shared sanctions data not found at {DATA}")
    handler = functools.partial(_QuietHandler, directory=str(DATA))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_from_local_server(list_server: str) -> None:
    raw = fetch_list("un-xml", f"{list_server}/un/UN_consolidated.xml", timeout_s=10)
    assert raw == UN_XML.read_bytes()
    assert load_list("un-xml", raw).entity_count == 1003
    ofac = update_list("ofac-sdn-csv", f"{list_server}/ofac_sdn/sdn.csv", timeout_s=10)
    assert ofac.entity_count == 8976
    assert "NATIONAL BANK OF CUBA" in next(e for e in ofac.entities if e.id == "306").names
    with pytest.raises(ValueError, match=r"over|more than"):
        fetch_list("un-xml", f"{list_server}/un/UN_consolidated.xml", timeout_s=10, size_max=1000)
    with pytest.raises(ValueError, match="http"):
        fetch_list("un-xml", "file:///etc/passwd")
    with pytest.raises(OSError):
        fetch_list("un-xml", f"{list_server}/missing.xml", timeout_s=10)


def test_official_urls_cover_every_source() -> None:
    assert set(OFFICIAL_URLS) == set(SOURCES)
    assert all(url.startswith("https://") for url in OFFICIAL_URLS.values())


@needs_data
def test_candidates_come_from_the_one_set_of_rules_in_align() -> None:
    from setara.compliance import _align, matcher
    from setara.compliance.normalize import name_variants

    un = load_list_path("un-xml", UN_XML)
    index = Screener([un], cache_size=0)._index
    queries = ["Muhammad bin Yusof", "Kim Jong-un", "Mohamed Qadhafi", "Abdul Hai Abdulhai", "محمد يوسف",
               "Sun Ming", "Romashka OOO", "Xyzzy Plugh"]
    queries += [n for e in un.entities[:150] for n in e.names[:1]]
    readings = [(tokens, matcher._has_abjad(q)) for q in queries for tokens in name_variants(q)]
    found = [index.candidates(tokens, abjad) for tokens, abjad in readings]
    assert found == [_align.candidates(index.view, tokens, abjad) for tokens, abjad in readings]
    assert sum(map(len, found)) > len(readings)  # the readings did find candidates


def test_among_candidates_with_equal_votes_the_shorter_names_are_kept() -> None:
    # A common word can give hundreds of names the same vote; the 40 scored in full must not be
    # picked at random from them (the two-word "Abu Obaida" was lost among "Abd ..." names).
    import numpy as np

    from setara.compliance import matcher

    n = matcher.CANDIDATES_MAX + 20
    lengths = np.array([5.0] * n + [2.0], dtype=np.float64)
    kept = matcher._top(list(range(n + 1)), [1.0] * (n + 1), lengths)
    assert len(kept) == matcher.CANDIDATES_MAX and n in kept
    assert 0 in matcher._top(list(range(n + 1)), [2.0] + [1.0] * n, lengths)  # more votes still win
