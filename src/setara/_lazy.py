"""Lazy package attributes: a package names where each public name lives, and the submodule loads
on first use. The CLI starts on every command; it must not pay for numpy, ICU or the solvers unless
the command needs them."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` resolving `names[attr]` (a submodule of `package`) on demand."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__
