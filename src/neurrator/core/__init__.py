"""Shared plumbing used by every pipeline layer: errors, atomic I/O, seeding, registries.

Nothing in ``neurrator.core`` imports from any other ``neurrator`` package.
"""

from neurrator.core.errors import InputError, NeurratorError, StageUnavailableError
from neurrator.core.io import atomic_dir, atomic_write_bytes, atomic_write_json, atomic_write_text
from neurrator.core.registry import Registry
from neurrator.core.seed import seed_everything

__all__ = [
    "InputError",
    "NeurratorError",
    "Registry",
    "StageUnavailableError",
    "atomic_dir",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "seed_everything",
]
