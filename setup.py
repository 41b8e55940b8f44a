"""Builds the compiled inner loops of the screening matcher (setara.compliance._align) with mypyc.

Metadata lives in pyproject.toml; this file only adds the extension. SETARA_PURE_PYTHON=1 skips the
build: the package then runs the same module as plain Python, with the same results, slower.
"""

from __future__ import annotations

import os

from setuptools import setup

ext_modules = []
if os.environ.get("SETARA_PURE_PYTHON", "") in ("", "0"):
    from mypyc.build import mypycify

    ext_modules = mypycify(
        [
            "--config-file",
            "pyproject.toml",
            "--explicit-package-bases",
            "src/setara/compliance/_align.py",
            "src/setara/compliance/normalize.py",
        ],
        opt_level="3",
        group_name="setara_compiled",
    )

setup(ext_modules=ext_modules)
