"""Country names to ISO 3166 alpha-2 codes, and the rule for countries under comprehensive UN measures.

Name screening alone does not implement UN measures on a country: resolutions 2270, 2321 and 2397 on
the DPRK ban financial services to anyone there, listed or not. So a party whose country, address or
bank (BIC country) is such a country is refused whatever its name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

import icu

COMPREHENSIVE_UN_COUNTRIES: tuple[str, ...] = ("KP",)
ADDRESS_CHARS_MAX = 2000

# Spellings found in the lists (UN nationality values, OFAC remarks, OFSI) that ICU's English names miss.
_ALIASES: dict[str, str] = {
    "democratic peoples republic of korea": "KP",
    "dprk": "KP",
    "d p r k": "KP",
    "north korea": "KP",
    "korea north": "KP",
    "korea dpr": "KP",
    "korea democratic peoples republic of": "KP",
    "korea democratic peoples republic": "KP",
    "republic of korea": "KR",
    "korea republic of": "KR",
    "south korea": "KR",
    "korea south": "KR",
    "iran islamic republic of": "IR",
    "islamic republic of iran": "IR",
    "syrian arab republic": "SY",
    "libyan arab jamahiriya": "LY",
    "libya": "LY",
    "russian federation": "RU",
    "russia": "RU",
    "united states of america": "US",
    "usa": "US",
    "united states": "US",
    "uk": "GB",
    "united kingdom of great britain and northern ireland": "GB",
    "great britain": "GB",
    "viet nam": "VN",
    "lao peoples democratic republic": "LA",
    "united republic of tanzania": "TZ",
    "democratic republic of the congo": "CD",
    "congo democratic republic": "CD",
    "drc": "CD",
    "republic of the congo": "CG",
    "congo": "CG",
    "cote d ivoire": "CI",
    "ivory coast": "CI",
    "bolivia plurinational state of": "BO",
    "venezuela bolivarian republic of": "VE",
    "state of palestine": "PS",
    "palestinian": "PS",
    "palestine": "PS",
    "turkiye": "TR",
    "turkey": "TR",
    "czechia": "CZ",
    "republic of moldova": "MD",
    "moldova republic of": "MD",
    "burma": "MM",
    "the former yugoslav republic of macedonia": "MK",
    "macedonia": "MK",
    "kyrgyz republic": "KG",
    "swaziland": "SZ",
    "cape verde": "CV",
    "east timor": "TL",
    "holy see": "VA",
    "kosovo": "XK",
    "iraqi": "IQ",
    "afghan": "AF",
    "pakistani": "PK",
    "saudi": "SA",
    "yemeni": "YE",
    "syrian": "SY",
    "egyptian": "EG",
    "libyan": "LY",
    "tunisian": "TN",
    "jordanian": "JO",
    "kuwaiti": "KW",
    "iranian": "IR",
    "somali": "SO",
    "sudanese": "SD",
    "algerian": "DZ",
    "moroccan": "MA",
    "lebanese": "LB",
    "north korean": "KP",
    "russian": "RU",
    "chinese": "CN",
    "indonesian": "ID",
    "malaysian": "MY",
    "filipino": "PH",
    "british": "GB",
    "french": "FR",
    "german": "DE",
    "american": "US",
    "turkish": "TR",
}

# Place names that put an address in the DPRK even when the country field is blank or misspelt.
_KP_ADDRESS_WORDS = (
    "pyongyang",
    "pyong yang",
    "dprk",
    "d p r k",
    "north korea",
    "democratic peoples republic of korea",
    "korea dpr",
    "nampo",
    "namp o",
    "sinuiju",
    "rason",
    "chongjin",
    "hamhung",
    "kaesong",
    "wonsan",
)
_KP_ADDRESS_NATIVE = ("평양", "조선민주주의인민공화국", "북한", "Пхеньян", "КНДР", "朝鲜", "平壤")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def _norm(text: str) -> str:
    return _NON_ALNUM.sub(" ", text.lower().replace("'", "").replace("\u2019", "")).strip()


@lru_cache(maxsize=1)
def _country_table() -> dict[str, str]:
    table: dict[str, str] = {}
    english = icu.Locale("en")
    for code in icu.Locale.getISOCountries():
        name = icu.Locale("en", code).getDisplayCountry(english)
        table[_norm(name)] = code
        # ICU writes "Congo - Kinshasa", "Myanmar (Burma)": index each part too.
        for part in re.split(r" - |\(|\)", name):
            if part.strip():
                table.setdefault(_norm(part), code)
    table.update(_ALIASES)
    return table


@lru_cache(maxsize=4096)
def country_code(text: str | None) -> str | None:
    """ISO alpha-2 code for a country name, nationality word or code; None when unknown."""
    if not text:
        return None
    stripped = text.strip()[:100]
    if len(stripped) == 2 and stripped.isalpha():
        code = stripped.upper()
        return code if code in _iso_codes() else None
    return _country_table().get(_norm(stripped))


@lru_cache(maxsize=1)
def _iso_codes() -> frozenset[str]:
    return frozenset(icu.Locale.getISOCountries()) | {"XK"}


def _address_mentions(address_text: str, code: str) -> bool:
    if code != "KP":
        table = _country_table()
        norm = f" {_norm(address_text)} "
        return any(f" {name} " in norm for name, c in table.items() if c == code and len(name) > 3)
    if any(word in address_text for word in _KP_ADDRESS_NATIVE):
        return True
    norm = f" {_norm(address_text)} "
    return any(f" {word} " in norm for word in _KP_ADDRESS_WORDS)


def country_rule_hit(
    countries: Iterable[str],
    address_text: str | None,
    bics: Iterable[str],
    restricted: Iterable[str] = COMPREHENSIVE_UN_COUNTRIES,
) -> str | None:
    """Why a party falls under comprehensive country measures, or None.

    countries: country codes or names of the party; address_text: free-text address lines;
    bics: BICs of the banks involved (country code is characters 5-6).
    """
    blocked = tuple(dict.fromkeys(code.upper() for code in restricted))
    for country in countries:
        code = country_code(country)
        if code in blocked:
            return f"party country {code} is under comprehensive UN measures"
    for bic in bics:
        bic_clean = bic.strip().upper()
        if len(bic_clean) in (8, 11) and bic_clean[4:6] in blocked:
            return f"BIC {bic_clean} is in {bic_clean[4:6]}, under comprehensive UN measures"
    if address_text:
        text = address_text[:ADDRESS_CHARS_MAX]
        for code in blocked:
            if _address_mentions(text, code):
                return f"address mentions {code}, under comprehensive UN measures"
    return None
