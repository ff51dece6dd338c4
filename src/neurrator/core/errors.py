"""Exception types. The CLI turns any ``NeurratorError`` into a one-line message and exit 2."""

from __future__ import annotations

from pathlib import Path


class NeurratorError(Exception):
    """Base class for errors a user can act on (bad input, bad config, missing stage output)."""


class InputError(NeurratorError):
    """A file or value given by the user is unusable.

    Parameters
    ----------
    path : the offending file (or ``None`` for a value that is not a file).
    problem : what is wrong with it, in words a user can act on.
    """

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)


class StageUnavailableError(NeurratorError):
    """A pipeline stage whose implementation has not landed, or whose inputs are missing."""


class StaleInputError(NeurratorError):
    """A stage's inputs come from an earlier stage that failed, did not finish, or is itself
    stale; the message names the stage to re-run first (see :mod:`neurrator.rundir`)."""
