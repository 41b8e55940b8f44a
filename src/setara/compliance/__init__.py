"""Sanctions screening: list loading, name matching and country rules.

The public API is what this module exports; the submodules are implementation.
"""

from __future__ import annotations

from setara._lazy import lazy_getattr

# Submodules load on first use: the settlement path needs the country rule long before (and often
# without) the matcher, which brings ICU, rapidfuzz and numpy.
_LAZY = {
    "COMPREHENSIVE_UN_COUNTRIES": "countries",
    "country_code": "countries",
    "country_rule_hit": "countries",
    "OFFICIAL_URLS": "lists",
    "SOURCES": "lists",
    "Entity": "lists",
    "ListData": "lists",
    "fetch_list": "lists",
    "load_list": "lists",
    "load_list_path": "lists",
    "update_list": "lists",
    "BLOCK_THRESHOLD": "matcher",
    "REVIEW_THRESHOLD": "matcher",
    "Match": "matcher",
    "Screener": "matcher",
    "run_screen": "matcher",
    "score_names": "matcher",
    "normalize_name": "normalize",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


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
