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
