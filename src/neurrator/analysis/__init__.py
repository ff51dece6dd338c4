"""neurrator.analysis: what populations, cell types and single units say (paper §4.2, §5, A.7, A.8).

Every analysis module exposes ``run(inputs, config) -> AnalysisResult`` over one immutable
:class:`~neurrator.analysis.inputs.AnalysisInputs` (test windows, a unit-maskable encoder,
narrators, a sentence encoder, references, the image corpus and its SAE concept dictionary), so
each runs alone, in any order, on fakes in tests and unchanged on real models:

- :mod:`.scaling` — fidelity (SBERT, R@10) against population size per pool, CIs, crossing points;
- :mod:`.similarity` — narration similarity between pools with a shuffled floor;
- :mod:`.contrasts` — log-odds words (informative Dirichlet prior), a population classifier with a
  permutation p-value, concept axes over time;
- :mod:`.concepts` (the ``sae`` analysis) over :mod:`.sae` — a TopK sparse autoencoder (trained, or
  loaded from SAELens-style safetensors + JSON via ``SAE_BACKENDS``), feature labels,
  unique-by-magnitude features, bootstrap stability, Welch t-tests of concept loadings;
- :mod:`.neurons` — single-neuron neurration (solo query, leave-one-out shift, description);
- :mod:`.attribution` — DINA-style gradient × input neuron importance and per-patch accuracy maps.

:mod:`.suite` lists them (with the optional inputs each reads); :mod:`.result` is the typed
:class:`~neurrator.analysis.result.AnalysisResult` each returns. ``docs/analysis_outputs.md``
documents the files they write.
"""

from __future__ import annotations

from neurrator.core.lazy import lazy_exports

_EXPORTS = {
    "ANALYSES": "neurrator.analysis.config",
    "AnalysisConfig": "neurrator.analysis.config",
    "AnalysisInputs": "neurrator.analysis.inputs",
    "AnalysisResult": "neurrator.analysis.result",
    "SUITE": "neurrator.analysis.suite",
    "SAE_BACKENDS": "neurrator.analysis.sae",
    "SparseAutoencoder": "neurrator.analysis.sae",
    "train_topk_sae": "neurrator.analysis.sae",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["ANALYSES", "SAE_BACKENDS", "SUITE", "AnalysisConfig", "AnalysisInputs", "AnalysisResult", "SparseAutoencoder", "train_topk_sae"]
