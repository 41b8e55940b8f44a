"""Sanctions list loaders (UN XML, OFAC SDN CSV and XML, EU XML, UK OFSI CSV) and fetching.

Every entity keeps the list's own id exactly (UN DATAID, OFAC ent_num/uid, EU logicalId or legacy Id,
UK Group ID): a screening decision must point at the record a compliance officer can look up.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import orjson
from lxml import etree

from setara.compliance.countries import country_code

EntityType = Literal["person", "entity", "vessel", "aircraft"]
SOURCES: tuple[str, ...] = ("un-xml", "ofac-sdn-csv", "ofac-sdn-xml", "eu-xml", "uk-csv")

LIST_BYTES_MAX = 256 * 1024 * 1024
ENTITIES_MAX = 500_000
NAMES_PER_ENTITY_MAX = 200
NAME_CHARS_MAX = 300
YEAR_RANGE_MAX = 20
BLOB_FORMAT = 1

OFFICIAL_URLS: dict[str, str] = {
    "un-xml": "https://scsanctions.un.org/resources/xml/en/consolidated.xml",
    "ofac-sdn-csv": "https://sanctionslistservice.ofac.treas.gov/api/PublicationPreview/exports/SDN.CSV",
    "ofac-sdn-xml": "https://sanctionslistservice.ofac.treas.gov/api/PublicationPreview/exports/SDN.XML",
    "eu-xml": "https://webgate.ec.europa.eu/fsd/fsf/public/files/xmlFullSanctionsList_1_1/content?token=dG9rZW4tMjAxNw",
    "uk-csv": "https://ofsistorage.blob.core.windows.net/publishlive/2022format/ConList.csv",
}


@dataclass(frozen=True, slots=True)
class Entity:
    id: str
    names: tuple[str, ...]
    type: EntityType
    countries: tuple[str, ...] = ()
    birth_years: tuple[int, ...] = ()
    programme: str = ""
    # Aliases the list itself calls weak ("Low" quality): matched, but with less confidence.
    weak_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ListData:
    source: str
    list_date: str | None
    sha256: str
    entities: tuple[Entity, ...] = field(repr=False)

    @property
    def entity_count(self) -> int:
        return len(self.entities)

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "format": BLOB_FORMAT,
                "source": self.source,
                "list_date": self.list_date,
                "sha256": self.sha256,
                "entities": [
                    [
                        e.id,
                        list(e.names),
                        e.type,
                        list(e.countries),
                        list(e.birth_years),
                        e.programme,
                        list(e.weak_names),
                    ]
                    for e in self.entities
                ],
            }
        )

    @classmethod
    def from_bytes(cls, blob: bytes) -> ListData:
        try:
            doc = orjson.loads(blob)
            if doc["format"] != BLOB_FORMAT:
                raise ValueError(f"unsupported list blob format {doc['format']!r}")
            entities = tuple(
                Entity(str(r[0]), tuple(r[1]), r[2], tuple(r[3]), tuple(int(y) for y in r[4]), str(r[5]), tuple(r[6]))
                for r in doc["entities"]
            )
            return cls(str(doc["source"]), doc["list_date"], str(doc["sha256"]), entities)
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise ValueError(f"not a stored list blob: {exc}") from exc


# ---------------------------------------------------------------------------------------------- helpers


class _Builder:
    """Accumulates one entity's fields, with limits, de-duplicating while keeping the list's order."""

    def __init__(self, entity_id: str, type_: EntityType, programme: str = "") -> None:
        self.id = entity_id.strip()
        self.type: EntityType = type_
        self.programme = programme.strip()
        self.names: dict[str, None] = {}
        self.weak: dict[str, None] = {}
        self.countries: dict[str, None] = {}
        self.years: dict[int, None] = {}

    def name(self, value: str | None, weak: bool = False) -> None:
        if not value:
            return
        cleaned = " ".join(value.split())[:NAME_CHARS_MAX]
        if not cleaned or cleaned in self.names or cleaned in self.weak:
            return
        target = self.weak if weak else self.names
        if len(self.names) + len(self.weak) < NAMES_PER_ENTITY_MAX:
            target[cleaned] = None

    def country(self, value: str | None) -> None:
        code = country_code(value) if value else None
        if code:
            self.countries[code] = None

    def year(self, value: str | int | None) -> None:
        if value is None:
            return
        match = re.search(r"(1[89]\d\d|20\d\d)", str(value))
        if match:
            self.years[int(match.group(1))] = None

    def year_range(self, start: str | None, end: str | None) -> None:
        if not (start and end and start.strip().isdigit() and end.strip().isdigit()):
            self.year(start)
            self.year(end)
            return
        lo, hi = int(start), int(end)
        if 0 <= hi - lo <= YEAR_RANGE_MAX:
            for y in range(lo, hi + 1):
                self.years[y] = None

    def build(self) -> Entity | None:
        if not self.id:
            return None
        names = tuple(self.names) or tuple(self.weak)
        weak = tuple(n for n in self.weak if n not in names)
        if not names:
            return None
        return Entity(self.id, names, self.type, tuple(self.countries), tuple(self.years), self.programme, weak)


def _xml_root(data: bytes, what: str) -> etree._Element:
    if len(data) > LIST_BYTES_MAX:
        raise ValueError(f"{what}: {len(data)} bytes is over the {LIST_BYTES_MAX}-byte limit")
    # No entity expansion, no DTD or network fetches, no huge-tree mode: lists come from outside.
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False, remove_comments=True
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"{what}: not well-formed XML ({exc})") from exc
    if root is None:
        raise ValueError(f"{what}: empty XML document")
    return root


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _text(el: etree._Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""


def _children(el: etree._Element, name: str) -> Iterator[etree._Element]:
    for child in el:
        if _local(child.tag) == name:
            yield child


def _child_text(el: etree._Element, name: str) -> str:
    for child in _children(el, name):
        return _text(child)
    return ""


def _descendants(el: etree._Element, name: str) -> Iterator[etree._Element]:
    for child in el.iter():
        if _local(child.tag) == name:
            yield child


def _decode(data: bytes) -> str:
    # OFSI publishes Windows-1252; OFAC ends files with a SUB byte.
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    return text.replace("\x1a", "")


def _finish(source: str, list_date: str | None, digest: str, builders: Iterable[_Builder]) -> ListData:
    entities: list[Entity] = []
    seen: set[str] = set()
    for builder in builders:
        entity = builder.build()
        if entity is None or entity.id in seen:
            continue
        seen.add(entity.id)
        entities.append(entity)
        if len(entities) > ENTITIES_MAX:
            raise ValueError(f"{source}: more than {ENTITIES_MAX} entities")
    if not entities:
        raise ValueError(f"{source}: no entities found; is this the right file for the source?")
    return ListData(source, list_date, digest, tuple(entities))


def _iso_date(text: str | None) -> str | None:
    if not text:
        return None
    text = text.strip()
    if m := re.match(r"(\d{4})-(\d{2})-(\d{2})", text):
        return f"{m.group(1)}-{m.group(2)}-{m.group(3)}"
    if m := re.match(r"(\d{1,2})/(\d{1,2})/(\d{4})", text):
        return f"{m.group(3)}-{int(m.group(2)):02d}-{int(m.group(1)):02d}"
    return None


# ---------------------------------------------------------------------------------------------- UN


def _load_un(data: bytes, digest: str) -> ListData:
    root = _xml_root(data, "un-xml")
    if _local(root.tag) != "CONSOLIDATED_LIST":
        raise ValueError(f"un-xml: root element is <{_local(root.tag)}>, expected <CONSOLIDATED_LIST>")
    builders: list[_Builder] = []
    for kind, type_ in (("INDIVIDUAL", "person"), ("ENTITY", "entity")):
        for el in _descendants(root, kind):
            b = _Builder(_child_text(el, "DATAID"), type_, _child_text(el, "UN_LIST_TYPE"))  # type: ignore[arg-type]
            parts = [_child_text(el, tag) for tag in ("FIRST_NAME", "SECOND_NAME", "THIRD_NAME", "FOURTH_NAME")]
            b.name(" ".join(p for p in parts if p))
            for alias in _children(el, f"{kind}_ALIAS"):
                weak = _child_text(alias, "QUALITY").lower() in ("low", "very low")
                b.name(_child_text(alias, "ALIAS_NAME"), weak=weak)
            for orig in _children(el, "NAME_ORIGINAL_SCRIPT"):
                b.name(_text(orig))
            for nat in _children(el, "NATIONALITY"):
                for value in _children(nat, "VALUE"):
                    b.country(_text(value))
            for addr in _children(el, f"{kind}_ADDRESS"):
                b.country(_child_text(addr, "COUNTRY"))
            for dob in _children(el, "INDIVIDUAL_DATE_OF_BIRTH"):
                b.year(_child_text(dob, "YEAR") or _child_text(dob, "DATE"))
                b.year_range(_child_text(dob, "FROM_YEAR"), _child_text(dob, "TO_YEAR"))
            builders.append(b)
    return _finish("un-xml", _iso_date(root.get("dateGenerated")), digest, builders)


# ---------------------------------------------------------------------------------------------- OFAC CSV

_OFAC_NULL = "-0-"
_OFAC_TYPES: dict[str, EntityType] = {"individual": "person", "vessel": "vessel", "aircraft": "aircraft"}
_DOB = re.compile(r"DOB (?:circa )?(?:\d{1,2} )?(?:[A-Z][a-z]{2} )?(\d{4})(?: to (\d{4}))?")
_NATIONALITY = re.compile(r"(?:nationality|citizen) ([A-Za-z' ]+?)(?:;|\.|$)")


def _ofac_rows(data: bytes, what: str, columns_min: int) -> Iterator[list[str]]:
    if len(data) > LIST_BYTES_MAX:
        raise ValueError(f"{what}: over the {LIST_BYTES_MAX}-byte limit")
    text = _decode(data)
    for row in csv.reader(io.StringIO(text)):
        if not row or not any(cell.strip() for cell in row):
            continue
        cells = [cell.strip() for cell in row]
        if len(cells) < columns_min or not cells[0].isdigit():
            raise ValueError(f"{what}: not an OFAC legacy CSV row: {','.join(cells)[:80]!r}")
        yield ["" if cell == _OFAC_NULL else cell for cell in cells]


def load_ofac_csv(sdn: bytes, alt: bytes | None = None, add: bytes | None = None) -> ListData:
    """OFAC legacy CSV: sdn.csv (or cons_prim.csv) with optional alt.csv and add.csv siblings."""
    digest = hashlib.sha256()
    for part in (sdn, alt or b"", add or b""):
        digest.update(hashlib.sha256(part).digest())
    builders: dict[str, _Builder] = {}
    for cells in _ofac_rows(sdn, "ofac-sdn-csv", 4):
        ent_num, name, sdn_type, program = cells[0], cells[1], cells[2].lower(), cells[3]
        remarks = cells[11] if len(cells) > 11 else ""
        b = _Builder(ent_num, _OFAC_TYPES.get(sdn_type, "entity"), program.replace("] [", " "))
        b.name(name)
        for m in _DOB.finditer(remarks):
            b.year_range(m.group(1), m.group(2)) if m.group(2) else b.year(m.group(1))
        for m in _NATIONALITY.finditer(remarks):
            b.country(m.group(1))
        if len(cells) > 9 and cells[9]:
            b.country(cells[9])  # vessel flag
        builders[b.id] = b
    if alt:
        for cells in _ofac_rows(alt, "ofac-sdn-csv alt", 4):
            target = builders.get(cells[0])
            if target is not None:
                target.name(cells[3])
    if add:
        for cells in _ofac_rows(add, "ofac-sdn-csv add", 5):
            target = builders.get(cells[0])
            if target is not None:
                target.country(cells[4])
    return _finish("ofac-sdn-csv", None, digest.hexdigest(), builders.values())


# ---------------------------------------------------------------------------------------------- OFAC XML


def _load_ofac_xml(data: bytes, digest: str) -> ListData:
    root = _xml_root(data, "ofac-sdn-xml")
    if _local(root.tag) != "sdnList":
        raise ValueError(f"ofac-sdn-xml: root element is <{_local(root.tag)}>, expected <sdnList>")
    list_date = None
    for info in _children(root, "publshInformation"):
        raw = _child_text(info, "Publish_Date")
        if m := re.match(r"(\d{1,2})/(\d{1,2})/(\d{4})", raw):
            list_date = f"{m.group(3)}-{int(m.group(1)):02d}-{int(m.group(2)):02d}"  # US month/day order
    builders: list[_Builder] = []
    for entry in _children(root, "sdnEntry"):
        type_ = _OFAC_TYPES.get(_child_text(entry, "sdnType").lower(), "entity")
        programmes = [_text(p) for pl in _children(entry, "programList") for p in _children(pl, "program")]
        b = _Builder(_child_text(entry, "uid"), type_, " ".join(programmes))
        b.name(" ".join(p for p in (_child_text(entry, "firstName"), _child_text(entry, "lastName")) if p))
        for aka_list in _children(entry, "akaList"):
            for aka in _children(aka_list, "aka"):
                parts = (_child_text(aka, "firstName"), _child_text(aka, "lastName"))
                b.name(" ".join(p for p in parts if p), weak=_child_text(aka, "category").lower() == "weak")
        for el in _descendants(entry, "country"):
            b.country(_text(el))
        for el in _descendants(entry, "dateOfBirth"):
            b.year(_text(el))
        builders.append(b)
    return _finish("ofac-sdn-xml", list_date, digest, builders)


# ---------------------------------------------------------------------------------------------- EU XML

_EU_TYPES: dict[str, EntityType] = {"P": "person", "E": "entity", "person": "person", "enterprise": "entity"}


def _load_eu(data: bytes, digest: str) -> ListData:
    root = _xml_root(data, "eu-xml")
    tag = _local(root.tag)
    builders: list[_Builder] = []
    if tag == "WHOLE":  # legacy v1.0 schema
        for ent in _children(root, "ENTITY"):
            b = _Builder(ent.get("Id", ""), _EU_TYPES.get(ent.get("Type", ""), "entity"), ent.get("programme", ""))
            for name in _children(ent, "NAME"):
                whole = _child_text(name, "WHOLENAME") or " ".join(
                    p for p in (_child_text(name, t) for t in ("FIRSTNAME", "MIDDLENAME", "LASTNAME")) if p
                )
                b.name(whole)
            for sub in ("CITIZEN", "ADDRESS"):
                for el in _children(ent, sub):
                    b.country(_child_text(el, "COUNTRY"))
            for birth in _children(ent, "BIRTH"):
                b.year(_child_text(birth, "DATE"))
            builders.append(b)
        return _finish("eu-xml", _iso_date(root.get("Date")), digest, builders)
    if tag == "export":  # v1.1 schema
        for ent in _children(root, "sanctionEntity"):
            subject = next(_children(ent, "subjectType"), None)
            code = subject.get("code", "") if subject is not None else ""
            programme = " ".join(r.get("programme", "") for r in _children(ent, "regulation"))
            b = _Builder(ent.get("logicalId", ""), _EU_TYPES.get(code, "entity"), programme)
            for alias in _children(ent, "nameAlias"):
                b.name(
                    alias.get("wholeName")
                    or " ".join(
                        p for p in (alias.get("firstName"), alias.get("middleName"), alias.get("lastName")) if p
                    )
                )
            for sub in ("citizenship", "address"):
                for el in _children(ent, sub):
                    b.country(el.get("countryIso2Code") or el.get("countryDescription"))
            for birth in _children(ent, "birthdate"):
                b.year(birth.get("year") or birth.get("birthdate"))
            builders.append(b)
        return _finish("eu-xml", _iso_date(root.get("generationDate")), digest, builders)
    raise ValueError(f"eu-xml: root element is <{tag}>, expected <export> (v1.1) or <WHOLE> (v1.0)")


# ---------------------------------------------------------------------------------------------- UK CSV

_UK_TYPES: dict[str, EntityType] = {"individual": "person", "entity": "entity", "ship": "vessel"}


def _load_uk(data: bytes, digest: str) -> ListData:
    if len(data) > LIST_BYTES_MAX:
        raise ValueError(f"uk-csv: over the {LIST_BYTES_MAX}-byte limit")
    lines = _decode(data).splitlines()
    list_date = None
    if lines and lines[0].lower().startswith("last updated"):
        list_date = _iso_date(lines[0].split(",", 1)[-1])
        lines = lines[1:]
    reader = csv.DictReader(lines)
    needed = {"Name 6", "Name 1", "Group ID", "Group Type"}
    if reader.fieldnames is None or not needed <= set(reader.fieldnames):
        raise ValueError(f"uk-csv: header lacks {sorted(needed)}; is this OFSI ConList.csv?")
    builders: dict[str, _Builder] = {}
    for row in reader:
        group = (row.get("Group ID") or "").strip()
        if not group:
            continue
        b = builders.get(group)
        if b is None:
            type_ = _UK_TYPES.get((row.get("Group Type") or "").strip().lower(), "entity")
            b = builders[group] = _Builder(group, type_, row.get("Regime") or "")
        parts = [(row.get(f"Name {i}") or "").strip() for i in (1, 2, 3, 4, 5, 6)]
        b.name(" ".join(p for p in parts if p), weak=(row.get("Alias Type") or "").strip().lower() == "weak aka")
        for col in ("Nationality", "Country", "Country of Birth"):
            value = (row.get(col) or "").strip()
            # Multi-valued cells look like "(1) Libya (2) Tunisia".
            for part in re.split(r"\(\d+\)", value):
                b.country(part.strip(" ,."))
        b.year(row.get("DOB"))
    return _finish("uk-csv", list_date, digest, builders.values())


# ---------------------------------------------------------------------------------------------- public


def load_list(source: str, data: bytes, *, alt: bytes | None = None, add: bytes | None = None) -> ListData:
    """Parse one list file; raises ValueError naming the problem when the bytes are not that list.

    For ofac-sdn-csv, `data` is sdn.csv and `alt`/`add` its alt.csv and add.csv (optional, but without
    them aliases and address countries are missing).
    """
    if source not in SOURCES:
        raise ValueError(f"unknown list source {source!r}; expected one of {', '.join(SOURCES)}")
    if not data:
        raise ValueError(f"{source}: empty input")
    if source == "ofac-sdn-csv":
        return load_ofac_csv(data, alt, add)
    digest = hashlib.sha256(data).hexdigest()
    if source == "un-xml":
        return _load_un(data, digest)
    if source == "ofac-sdn-xml":
        return _load_ofac_xml(data, digest)
    if source == "eu-xml":
        return _load_eu(data, digest)
    return _load_uk(data, digest)


def _read_limited(path: Path) -> bytes:
    size = path.stat().st_size
    if size > LIST_BYTES_MAX:
        raise ValueError(f"{path}: {size} bytes is over the {LIST_BYTES_MAX}-byte limit")
    return path.read_bytes()


def _sibling(path: Path, *names: str) -> Path | None:
    for name in names:
        for candidate in (path / name, path / name.upper()):
            if candidate.is_file():
                return candidate
    return None


def load_list_path(source: str, path: str | Path) -> ListData:
    """Load a list from a file; for ofac-sdn-csv a directory or the sdn.csv path (siblings are read)."""
    p = Path(path)
    if source == "ofac-sdn-csv":
        folder = p if p.is_dir() else p.parent
        main = _sibling(p, "sdn.csv", "cons_prim.csv") if p.is_dir() else p
        if main is None or not main.is_file():
            raise ValueError(f"{path}: no sdn.csv (or cons_prim.csv) found")
        prefix = "cons_" if main.name.lower().startswith("cons_") else ""
        alt = _sibling(folder, f"{prefix}alt.csv")
        add = _sibling(folder, f"{prefix}add.csv")
        return load_ofac_csv(
            _read_limited(main), _read_limited(alt) if alt else None, _read_limited(add) if add else None
        )
    if not p.is_file():
        raise ValueError(f"{path}: not a file")
    return load_list(source, _read_limited(p))


def fetch_list(source: str, url: str | None = None, timeout_s: float = 60.0, size_max: int = LIST_BYTES_MAX) -> bytes:
    """Download one list file (the official URL when none is given), refusing more than size_max bytes."""
    if source not in SOURCES:
        raise ValueError(f"unknown list source {source!r}")
    target = url or OFFICIAL_URLS[source]
    if urllib.parse.urlsplit(target).scheme not in ("http", "https"):
        raise ValueError(f"{target}: only http and https URLs are fetched")
    request = urllib.request.Request(target, headers={"User-Agent": "setara-lists/1"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > size_max:
            raise ValueError(f"{target}: {declared} bytes is over the {size_max}-byte limit")
        chunks: list[bytes] = []
        total = 0
        while chunk := response.read(1 << 20):
            total += len(chunk)
            if total > size_max:
                raise ValueError(f"{target}: more than {size_max} bytes")
            chunks.append(chunk)
    return b"".join(chunks)


def _sibling_url(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    head, _, last = parts.path.rpartition("/")
    new_name = name.upper() if last.isupper() else name
    if last.lower().startswith("cons_"):
        new_name = ("CONS_" if last.isupper() else "cons_") + new_name
    return urllib.parse.urlunsplit(parts._replace(path=f"{head}/{new_name}"))


def update_list(source: str, url: str | None = None, timeout_s: float = 60.0) -> ListData:
    """Fetch and parse a list; for ofac-sdn-csv also the alt.csv and add.csv next to the sdn.csv URL."""
    target = url or OFFICIAL_URLS.get(source, "")
    data = fetch_list(source, target, timeout_s)
    if source != "ofac-sdn-csv":
        return load_list(source, data)
    alt = fetch_list(source, _sibling_url(target, "alt.csv"), timeout_s)
    add = fetch_list(source, _sibling_url(target, "add.csv"), timeout_s)
    return load_ofac_csv(data, alt, add)
