"""Config section for population analyses, SAE concepts, single-neuron narration and attribution.

Defaults are demo-scale: they keep ``neurrator analyze`` within about 3 minutes on 2 CPU cores
for the ~2,000-unit simulated pseudo-mouse. Raise the sizes for real data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: Analyses ``neurrator analyze`` can run, in the order it runs them.
ANALYSES = ("scaling", "similarity", "contrasts", "sae", "neurons", "attribution", "dina")
#: The analyses run unless ``analysis.analyses`` says otherwise. ``dina`` trains its own
#: dual-tower model (minutes on a CPU), so it runs on request: ``neurrator analyze --only dina``.
DEFAULT_ANALYSES = ("scaling", "similarity", "contrasts", "sae", "neurons", "attribution")

#: Population pools by anatomy (subset specs understood by ``neurrator.preprocess.subsets``).
DEFAULT_AREA_POOLS: dict[str, str] = {
    "V1": "group:V1",
    "higher visual": "group:higher_visual",
    "LGd": "group:LGd",
    "all visual": "group:visual",
    "hippocampus": "group:hippocampus",
    "all units": "all",
}

#: Optotagged cell-type pools (pseudo-mice pooled across sessions of one genotype).
DEFAULT_CELL_TYPE_POOLS: dict[str, str] = {
    "PV": "cell_type:PV",
    "SST": "cell_type:SST",
    "VIP": "cell_type:VIP",
}

#: Concept axes of paper Fig. 7 and A.7.
DEFAULT_CONCEPTS = [
    "darkness or shadows",
    "a car or vehicle",
    "bright lighting",
    "a person walking",
    "an indoor room",
    "an outdoor street scene",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScalingConfig(_Section):
    """Fidelity against population size, per pool (paper Fig. 4)."""

    pools: dict[str, str] = DEFAULT_AREA_POOLS
    #: Population sizes; ``"all"`` is the whole pool. Sizes above a pool's size are skipped.
    sizes: list[int | Literal["all"]] = [1, 3, 10, 30, 100, 300, 1000, "all"]
    n_draws: int = Field(5, ge=5)
    ci_level: float = Field(0.95, gt=0, lt=1)
    #: Test windows scored per point (evenly spaced over the test set); 0 = all.
    max_windows: int = Field(48, ge=0)
    #: Cross-shot permutations of the test windows averaged into the shuffled pairing
    #: (``sbert_gain`` = matched − shuffled).
    n_shuffles: int = Field(10, ge=1)
    #: Narrator for the scaling points; ``None`` uses the run's narrator. The fast offline
    #: ``retrieval`` narrator keeps 6 pools × 8 sizes × 5 draws within the demo budget.
    narrator: str | None = "retrieval"


class SimilarityConfig(_Section):
    """Pairwise narration similarity between pools (paper Fig. 5)."""

    area_pools: dict[str, str] = {k: v for k, v in DEFAULT_AREA_POOLS.items() if k != "all units"}
    cell_type_pools: dict[str, str] = DEFAULT_CELL_TYPE_POOLS
    #: Shuffles of the window pairing that make the floor.
    n_shuffles: int = Field(20, ge=1)


class ContrastsConfig(_Section):
    """Cell-type contrasts in language: log-odds words, a population classifier, concept axes."""

    #: Strength of the informative Dirichlet prior (Monroe et al. 2008): prior count of a word =
    #: prior_scale × its count over all populations.
    prior_scale: float = Field(1.0, gt=0)
    top_words: int = Field(10, ge=1)
    cv_folds: int = Field(5, ge=2)
    n_permutations: int = Field(100, ge=1)
    concepts: list[str] = DEFAULT_CONCEPTS
    #: Gaussian smoothing of the concept axes, in frames.
    smooth_frames: float = Field(5.0, ge=0)


class SAEConfig(_Section):
    """Sparse-autoencoder concept dictionary (paper Sec. 5, A.8)."""

    #: ``"topk"`` trains a TopK SAE on the corpus (offline default); ``"pretrained"`` loads one
    #: from ``path`` (a folder with ``cfg.json`` and SAELens-style ``*.safetensors`` weights).
    backend: Literal["topk", "pretrained"] = "topk"
    path: Path | None = None
    #: Image corpus: ``None`` = the run's stimulus (+ the demo scene bank if available); or a
    #: folder of images / an ``.npy`` array (n, H, W[, 3]) uint8, captions from ``corpus_captions``.
    corpus: Path | None = None
    corpus_captions: Path | None = None
    expansion: int = Field(8, ge=1)
    k: int = Field(16, ge=1)
    epochs: int = Field(8, ge=1)
    batch_size: int = Field(1024, ge=1)
    lr: float = Field(1e-3, gt=0)
    #: Patch vectors sampled from the corpus for training (all if fewer).
    max_train_vectors: int = Field(60_000, ge=1)
    #: Held-out corpus patch vectors (disjoint from training) for explained variance, L0, dead
    #: fraction; at most a fifth of the corpus.
    eval_vectors: int = Field(20_000, ge=1)
    #: Top-activating corpus images used to label a feature.
    label_images: int = Field(8, ge=1)
    #: Corpus images (evenly spaced) searched for top activations; 0 = all.
    label_max_images: int = Field(320, ge=0)
    top_k: int = Field(20, ge=1)
    n_bootstrap: int = Field(1000, ge=1)
    #: Concepts whose vision-space loading is compared between populations (Welch t-test).
    validation_concepts: list[str] = ["a car or vehicle", "darkness or shadows"]


class NeuronsConfig(_Section):
    """Single-neuron neurration: solo query and leave-one-out shift per unit."""

    #: ``"all"`` or a number of units drawn evenly across areas.
    units: int | Literal["all"] = 48
    #: Test windows per unit (evenly spaced).
    max_windows: int = Field(24, ge=1)
    #: Windows (evenly spaced among max_windows) whose solo and leave-one-out narrations are
    #: generated; the patch shift uses all max_windows. Narration dominates the cost per unit.
    narrated_windows: int = Field(8, ge=1)
    #: Units per encoder and narrator call: 2 × units_per_batch × max_windows predicted patch
    #: tensors are held at once (≈ 110 MB at the demo's 576 × 64; lower it for CLIP's 576 × 1024).
    units_per_batch: int = Field(16, ge=1)
    n_features: int = Field(3, ge=1)
    n_neighbours: int = Field(3, ge=1)


class AttributionConfig(_Section):
    """DINA-style attribution: gradient × input neuron importance and per-patch accuracy maps."""

    #: Targets: ``"sae"`` = the SAE features most active on the test set (falls back to
    #: ``"dims"`` without an SAE); ``"dims"`` = the highest-variance target dimensions.
    targets: Literal["sae", "dims"] = "sae"
    n_targets: int = Field(6, ge=1)
    max_windows: int = Field(64, ge=1)
    top_units: int = Field(10, ge=1)


class DinaConfig(_Section):
    """DINA's analyses (``neurrator.analysis.dina``): a contrastive dual-tower model is fitted on
    the run's training windows (architecture from the run's ``encoder`` section, the training
    length below), then probed, ablated and its saliency mapped on the test windows."""

    #: Optimizer steps at most, validation every ``val_every`` steps, stop after ``patience``
    #: validations without improvement (the encoder's step budget; no wall-time cap).
    max_steps: int = Field(512, ge=1)
    val_every: int = Field(32, ge=1)
    patience: int = Field(5, ge=1)
    #: Unit counts of the ablation curve (counts above the population are dropped; the whole
    #: population is always added).
    k_units: list[int] = [1, 2, 5, 10, 20, 50, 100, 200, 500]
    #: An identification is correct within this many seconds of the true frame (movies; image
    #: sets need the exact image).
    tolerance_s: float = Field(1.0, ge=0)
    #: Random unit draws per k for the random-order baseline.
    n_random: int = Field(3, ge=1)
    #: Test windows used for gradients (evenly spaced); identification uses every test window.
    max_windows: int = Field(256, ge=1)


class AnalysisConfig(_Section):
    """Options of ``neurrator analyze``."""

    #: Which analyses to run (any of: scaling, similarity, contrasts, sae, neurons, attribution,
    #: dina); ``dina`` is not in the default list (it trains a model, see :class:`DinaConfig`).
    analyses: list[
        Literal["scaling", "similarity", "contrasts", "sae", "neurons", "attribution", "dina"]
    ] = list(DEFAULT_ANALYSES)
    #: Narrator for the population narrations (similarity, contrasts, neurons); ``None`` uses the
    #: run's narrator. The default, the fast offline ``retrieval`` narrator, keeps the demo
    #: within budget (``retrieval+lm`` costs ~1 s per distinct sentence on CPU). Every result
    #: records the narrator it used.
    narrator: str | None = "retrieval"
    #: Test windows used by similarity, contrasts and the SAE (evenly spaced); 0 = all.
    max_windows: int = Field(240, ge=0)
    batch_size: int = Field(256, ge=1)
    #: Windows narrated per narrator call (several populations or subsets at once): narrators
    #: have a per-call cost. Bounds the predicted patches held at once (768 × 576 × 64 floats
    #: ≈ 110 MB in the demo space; lower it for CLIP's 576 × 1024).
    narrate_batch_windows: int = Field(768, ge=1)
    #: torch and BLAS threads while analysing; 0 keeps the libraries' defaults. One thread is
    #: the default because spinning thread pools on a shared 2-core machine made encoder
    #: batches up to 30× slower (see ``neurrator.analysis.common.thread_limit``).
    num_threads: int = Field(1, ge=0)
    scaling: ScalingConfig = ScalingConfig()
    similarity: SimilarityConfig = SimilarityConfig()
    contrasts: ContrastsConfig = ContrastsConfig()
    sae: SAEConfig = SAEConfig()
    neurons: NeuronsConfig = NeuronsConfig()
    attribution: AttributionConfig = AttributionConfig()
    dina: DinaConfig = DinaConfig()
