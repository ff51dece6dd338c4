"""Lazy package exports (PEP 562).

The run config imports every layer's ``config`` module, and importing ``pkg.config`` runs
``pkg/__init__.py``; lazy exports keep that from pulling in torch or transformers, so the
CLI starts (and ``--help`` answers) without loading the models' libraries.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` that import ``exports[name]`` on first use.

    >>> __getattr__, __dir__ = lazy_exports(__name__, {"Neurrator": "neurrator.encoder.estimator"})  # doctest: +SKIP
    """

    def __getattr__(name: str) -> Any:
        try:
            module = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(exports) | set(vars(sys.modules[package])))

    return __getattr__, __dir__
