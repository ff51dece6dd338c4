"""neurrator.evaluate: how good are the narrations and the predicted patches?

- :mod:`~neurrator.evaluate.sbert`: the SBERT sentence scorer (offline all-MiniLM-L6-v2 by
  default), registered as ``"sbert"`` in :data:`~neurrator.evaluate.base.SENTENCE_SCORERS`.
- :mod:`~neurrator.evaluate.scores`: per-window scores (matched, shuffled, word-salad and
  random-caption floors) and statistics at window, frame and shot level.
- :mod:`~neurrator.evaluate.embedding`: CKA, kNN purity, R@1/R@10/median rank, frame
  identification within ±1 s (CEBRA's protocol).
- :mod:`~neurrator.evaluate.controls`: time-shifted spikes, shuffled labels, mean patch,
  hippocampus-only units.
- :mod:`~neurrator.evaluate.baselines`: Ridge, MLP, PCA+kNN and CEBRA+kNN on the same targets.
- :mod:`~neurrator.evaluate.tables`: Markdown tables with the paper's numbers beside ours.

This package module stays import-light, because the run config imports its config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from neurrator.evaluate.base import SentenceScorer
    from neurrator.evaluate.config import EvaluateConfig


def build_scorer(config: EvaluateConfig) -> SentenceScorer:
    """The configured sentence scorer (SBERT all-MiniLM-L6-v2, offline, by default)."""
    from neurrator.evaluate import sbert  # noqa: F401  (registers the "sbert" scorer)
    from neurrator.evaluate.base import SENTENCE_SCORERS

    return SENTENCE_SCORERS.create(config.scorer, model=config.scorer_model, batch_size=config.scorer_batch_size)
