"""Builds the compiled inner loops of the screening matcher (setara.compliance._align) with mypyc.

Metadata lives in pyproject.toml; this file only adds the extension. SETARA_PURE_PYTHON=1 skips the
build: the package then runs the same module as plain Python, with the same results, slower.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from setuptools import setup

SOURCES = ("src/setara/compliance/_align.py", "src/setara/compliance/normalize.py")
# What the extensions were built from: an editable install keeps running a compiled module after
# its source is edited, until `pip install -e .` runs again; tests/test_compliance_compiled.py
# compares this record with the sources and says so.
BUILT_FROM = Path("src/setara/compliance/_compiled_sources.json")

ext_modules = []
if os.environ.get("SETARA_PURE_PYTHON", "") in ("", "0"):
    from mypyc.build import mypycify

    BUILT_FROM.write_text(json.dumps({p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in SOURCES},
                                     indent=1) + "\n")
    ext_modules = mypycify(
        [
            "--config-file",
            "pyproject.toml",
            "--explicit-package-bases",
            *SOURCES,
        ],
        opt_level="3",
        group_name="setara_compiled",
    )

setup(ext_modules=ext_modules)
