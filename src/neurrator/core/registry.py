"""Name → factory registries, so every backend is chosen by a string in the config."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

from neurrator.core.errors import NeurratorError

T = TypeVar("T")


class Registry(Generic[T]):
    """A small named registry of backend factories.

    >>> spaces = Registry("vision space")
    >>> @spaces.register("toy")
    ... def make_toy(**kw): ...
    >>> spaces.names()
    ['toy']
    """

    def __init__(self, kind: str, *, builtin_modules: tuple[str, ...] = ()):
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}
        # Modules whose import registers the built-in backends; imported on first lookup so
        # that defining a registry never imports heavy backends (or creates import cycles).
        self._builtin_modules = builtin_modules
        self._loaded = not builtin_modules

    def _load_builtins(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._builtin_modules:
                importlib.import_module(module)

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._factories[name] = factory
            return factory

        return deco

    def create(self, name: str, **kwargs) -> T:
        self._load_builtins()
        try:
            factory = self._factories[name]
        except KeyError:
            raise NeurratorError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None
        return factory(**kwargs)

    def names(self) -> list[str]:
        self._load_builtins()
        return sorted(self._factories)

    def __contains__(self, name: str) -> bool:
        self._load_builtins()
        return name in self._factories
