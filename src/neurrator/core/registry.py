"""Name → factory registries, so every backend is chosen by a string in the config."""

from __future__ import annotations

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

    def __init__(self, kind: str):
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._factories[name] = factory
            return factory

        return deco

    def create(self, name: str, **kwargs) -> T:
        try:
            factory = self._factories[name]
        except KeyError:
            raise NeurratorError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None
        return factory(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: str) -> bool:
        return name in self._factories
