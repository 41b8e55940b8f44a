"""Sanctions screening: list loading, name matching and country rules.

The public API is what this module exports; the submodules are implementation.
"""

from setara.compliance.countries import COMPREHENSIVE_UN_COUNTRIES, country_code, country_rule_hit
from setara.compliance.lists import (
    OFFICIAL_URLS,
    SOURCES,
    Entity,
    ListData,
    fetch_list,
    load_list,
    load_list_path,
    update_list,
)
from setara.compliance.matcher import (
    BLOCK_THRESHOLD,
    REVIEW_THRESHOLD,
    Match,
    Screener,
    run_screen,
    score_names,
)
from setara.compliance.normalize import normalize_name

__all__ = [
    "BLOCK_THRESHOLD",
    "COMPREHENSIVE_UN_COUNTRIES",
    "OFFICIAL_URLS",
    "REVIEW_THRESHOLD",
    "SOURCES",
    "Entity",
    "ListData",
    "Match",
    "Screener",
    "country_code",
    "country_rule_hit",
    "fetch_list",
    "load_list",
    "load_list_path",
    "normalize_name",
    "run_screen",
    "score_names",
    "update_list",
]
