"""The analysis suite: the analyses ``neurrator analyze`` can run, as a list.

Each entry names an analysis module's ``run(inputs, config) -> AnalysisResult`` and which
optional inputs it reads (``"corpus"``: captioned images; ``"concepts"``: the SAE concept
dictionary of that corpus; ``"session"``: the session, split and targets, for an analysis that
fits a model of its own), so the stage builds only what the selected analyses need. The
analyses share no state: any subset runs in any order, each one alone too
(``neurrator analyze --only sae``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from neurrator.analysis import attribution, concepts, contrasts, dina, neurons, scaling, similarity
from neurrator.analysis.config import AnalysisConfig
from neurrator.analysis.inputs import AnalysisInputs
from neurrator.analysis.result import AnalysisResult


@dataclass(frozen=True)
class Analysis:
    """One analysis: its name, its runner, and the optional inputs it reads under a config."""

    name: str
    run: Callable[[AnalysisInputs, AnalysisConfig], AnalysisResult]
    needs: Callable[[AnalysisConfig], frozenset[str]] = lambda config: frozenset()


_CONCEPTS = frozenset({"corpus", "concepts"})

SUITE: tuple[Analysis, ...] = (
    Analysis("scaling", scaling.run),
    Analysis("similarity", similarity.run),
    Analysis("contrasts", contrasts.run),
    Analysis("sae", concepts.run, lambda config: _CONCEPTS),
    Analysis("neurons", neurons.run, lambda config: _CONCEPTS),
    Analysis("attribution", attribution.run, lambda config: _CONCEPTS if config.attribution.targets == "sae" else frozenset()),
    Analysis("dina", dina.run, lambda config: frozenset({"session"})),
)


def select(names: Iterable[str]) -> list[Analysis]:
    """The suite's entries named in ``names``, in suite order."""
    wanted = set(names)
    return [a for a in SUITE if a.name in wanted]


def needed_inputs(analyses: Iterable[Analysis], config: AnalysisConfig) -> frozenset[str]:
    """The optional inputs (``"corpus"``, ``"concepts"``, ``"session"``) that ``analyses`` read."""
    return frozenset().union(*(a.needs(config) for a in analyses))
