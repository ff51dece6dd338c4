"""The SAE concept dictionary of populations (paper Sec. 5, Fig. 8, A.8).

1. Label each SAE feature from its top-activating corpus images: the SBERT-central caption of
   those images and the content words their captions share.
2. Per population, pass its predicted patches through the SAE, average over patches and test
   bins, rank features, and find the *unique-by-magnitude* ones (in this population's top-k
   and in no other's).
3. Bootstrap the test bins (vectorised: one multinomial weight matrix) and report how much of
   each population's top-k survives, and how often each unique feature stays unique.
4. Concept-axis validation, independent of narrations and of the SAE: a concept sentence picks
   the corpus images whose captions match it; their mean feature minus the corpus mean is a
   direction in the vision space; each test bin's loading on it is compared between
   populations with Welch's t-test. (The paper uses a CLIP-text embedding; without a text
   tower aligned to the patch space, the captioned corpus anchors the direction.)

The SAE and its feature labels are a :class:`ConceptDictionary`, built once per ``analyze``
run (:func:`build_concept_dictionary`) and handed to every analysis that reads it (this one,
``neurons`` and ``attribution``) as an input. :func:`run` is the ``sae`` analysis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

from neurrator.analysis.common import (
    EncodeFn,
    central_sentence,
    figure_png,
    shared_words,
    single_threaded,
)
from neurrator.analysis.result import AnalysisResult
from neurrator.analysis.sae import (
    SAE_BACKENDS,
    SAEMetrics,
    SparseAutoencoder,
    evaluate_sae,
    mean_codes,
)
from neurrator.core.errors import InputError
from neurrator.core.sampling import evenly_spaced

if TYPE_CHECKING:
    from neurrator.analysis.config import AnalysisConfig, SAEConfig
    from neurrator.analysis.corpus import Corpus
    from neurrator.analysis.inputs import AnalysisInputs


@dataclass
class FeatureLabel:
    feature: int
    label: str
    words: list[str]
    top_images: list[int]
    top_activations: list[float]


def label_features(
    features: Sequence[int],
    image_acts: np.ndarray,
    captions: Sequence[Sequence[str]],
    encode: EncodeFn,
    *,
    n_images: int = 8,
) -> dict[int, FeatureLabel]:
    """Name features after the captions of their top-activating corpus images.

    Parameters
    ----------
    features : feature indices to label.
    image_acts : (n_images, d_sae) mean activation of each corpus image over its patches.
    captions : per corpus image, its reference captions (may be empty).
    """
    labels = {}
    for f in features:
        col = image_acts[:, f]
        top = [int(i) for i in np.argsort(-col, kind="stable")[:n_images] if col[i] > 0]
        texts = [c for i in top for c in captions[i]]
        labels[int(f)] = FeatureLabel(
            feature=int(f),
            label=central_sentence(texts, encode)
            if texts
            else "(never active on the corpus)"
            if not top
            else "(uncaptioned images)",
            words=shared_words(texts) if texts else [],
            top_images=top,
            top_activations=[float(col[i]) for i in top],
        )
    return labels


@dataclass
class PopulationFeatures:
    """Top features of one population by mean activation, and its unique-by-magnitude ones."""

    top: list[int]
    top_mean: list[float]
    unique: list[int]
    unique_specificity: list[float]


def rank_population_features(
    mean_acts: Mapping[str, np.ndarray], top_k: int = 20
) -> dict[str, PopulationFeatures]:
    """Rank features per population; unique = in this top-k and no other population's.

    Parameters
    ----------
    mean_acts : population → (d_sae,) mean activation over test bins.

    Unique features are ordered by specificity: own mean minus the largest other mean.
    """
    pops = list(mean_acts)
    tops = {p: np.argsort(-mean_acts[p], kind="stable")[:top_k] for p in pops}
    out = {}
    for p in pops:
        others = (
            set().union(*(set(tops[q].tolist()) for q in pops if q != p))
            if len(pops) > 1
            else set()
        )
        uniq = [int(f) for f in tops[p] if int(f) not in others]
        other_max = (
            np.max([mean_acts[q] for q in pops if q != p], axis=0)
            if len(pops) > 1
            else np.zeros_like(mean_acts[p])
        )
        spec = mean_acts[p] - other_max
        uniq.sort(key=lambda f: -spec[f])
        out[p] = PopulationFeatures(
            top=[int(f) for f in tops[p]],
            top_mean=[float(mean_acts[p][f]) for f in tops[p]],
            unique=uniq,
            unique_specificity=[float(spec[f]) for f in uniq],
        )
    return out


@dataclass
class BootstrapStability:
    """Per population: overlap of each resample's top-k with the canonical top-k, and for each
    canonical unique feature the fraction of resamples in which it is still unique."""

    n_resamples: int
    top_k: int
    overlap_mean: dict[str, float]
    overlap_min: dict[str, float]
    overlap_quantiles: dict[str, list[float]]
    overlap_histogram: dict[str, list[int]]
    unique_survival: dict[str, dict[int, float]]


def bootstrap_stability(
    bin_acts: Mapping[str, np.ndarray],
    canonical: Mapping[str, PopulationFeatures],
    *,
    top_k: int = 20,
    n_resamples: int = 1000,
    seed: int = 0,
) -> BootstrapStability:
    """Resample test bins with replacement and re-rank features from scratch each time.

    Parameters
    ----------
    bin_acts : population → (n_bins, d_sae) activation per test bin (same bins for all).
    canonical : the ranking on the full set (:func:`rank_population_features`).

    The same resampled bins are used for every population (they are frame-aligned). All
    resamples are computed at once as ``weights (n_resamples, n_bins) @ acts``.
    """
    pops = list(bin_acts)
    n_bins, d_sae = next(iter(bin_acts.values())).shape
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n_bins, np.full(n_bins, 1.0 / n_bins), size=n_resamples) / n_bins
    top_masks = {}
    for p in pops:
        means = weights @ bin_acts[p]  # (n_resamples, d_sae)
        idx = (
            np.argpartition(-means, top_k - 1, axis=1)[:, :top_k]
            if top_k < d_sae
            else np.tile(np.arange(d_sae), (n_resamples, 1))
        )
        mask = np.zeros((n_resamples, d_sae), dtype=bool)
        np.put_along_axis(mask, idx, True, axis=1)
        top_masks[p] = mask
    overlap_mean, overlap_min, quantiles, hist, survival = {}, {}, {}, {}, {}
    for p in pops:
        canon = np.zeros(d_sae, dtype=bool)
        canon[canonical[p].top] = True
        overlap = (top_masks[p] & canon).sum(1) / top_k
        overlap_mean[p] = float(overlap.mean())
        overlap_min[p] = float(overlap.min())
        quantiles[p] = [float(q) for q in np.quantile(overlap, [0.05, 0.5, 0.95])]
        hist[p] = np.bincount((top_masks[p] & canon).sum(1), minlength=top_k + 1).tolist()
        others = np.zeros_like(top_masks[p])
        for q in pops:
            if q != p:
                others |= top_masks[q]
        unique_mask = top_masks[p] & ~others
        survival[p] = {int(f): float(unique_mask[:, f].mean()) for f in canonical[p].unique}
    return BootstrapStability(
        n_resamples, top_k, overlap_mean, overlap_min, quantiles, hist, survival
    )


@dataclass
class ConceptValidation:
    """Loading of test bins on a caption-anchored concept direction, compared pairwise."""

    concept: str
    anchor_images: list[int]
    mean_loading: dict[str, float]
    welch: list[dict]
    note: str = ""


def concept_direction(
    concept: str,
    corpus_pooled: np.ndarray,
    captions: Sequence[Sequence[str]],
    encode: EncodeFn,
    *,
    n_images: int = 8,
) -> tuple[np.ndarray, list[int]]:
    """A unit direction in the vision space for ``concept`` and the corpus images anchoring it.

    Parameters
    ----------
    corpus_pooled : (n_images, dim) patch-mean feature of each corpus image.
    captions : captions per corpus image; an image's match is its best caption's cosine.
    """
    c = encode([concept])[0]
    score = np.full(len(captions), -np.inf)
    for i, caps in enumerate(captions):
        if caps:
            score[i] = float((encode(list(caps)) @ c).max())
    anchors = [
        int(i) for i in np.argsort(-score, kind="stable")[:n_images] if np.isfinite(score[i])
    ]
    direction = corpus_pooled[anchors].mean(0) - corpus_pooled.mean(0)
    return direction / max(float(np.linalg.norm(direction)), 1e-12), anchors


def validate_concepts(
    concepts: Sequence[str],
    pooled_predictions: Mapping[str, np.ndarray],
    corpus_pooled: np.ndarray,
    captions: Sequence[Sequence[str]],
    encode: EncodeFn,
    *,
    n_images: int = 8,
) -> list[ConceptValidation]:
    """Welch t-tests (``scipy.stats.ttest_ind(equal_var=False)``) of concept loadings.

    Parameters
    ----------
    pooled_predictions : population → (n_bins, dim) patch-mean predicted feature per test bin.
    """
    centre = corpus_pooled.mean(0)
    out = []
    for concept in concepts:
        if not any(captions):
            out.append(ConceptValidation(concept, [], {}, [], note="the corpus has no captions"))
            continue
        direction, anchors = concept_direction(
            concept, corpus_pooled, captions, encode, n_images=n_images
        )
        loads = {p: (x - centre) @ direction for p, x in pooled_predictions.items()}
        tests = []
        for a, b in combinations(loads, 2):
            res = stats.ttest_ind(loads[a], loads[b], equal_var=False)
            tests.append(
                {
                    "a": a,
                    "b": b,
                    "t": float(res.statistic),
                    "p": float(res.pvalue),
                    "df": float(res.df),
                    "mean_difference": float(loads[a].mean() - loads[b].mean()),
                }
            )
        out.append(
            ConceptValidation(
                concept, anchors, {p: float(v.mean()) for p, v in loads.items()}, tests
            )
        )
    return out


@dataclass
class ConceptDictionaryResult:
    sae: dict
    populations: list[str]
    population_sizes: dict[str, int]
    n_bins: int
    ranking: dict[str, PopulationFeatures]
    labels: dict[int, FeatureLabel]
    bootstrap: BootstrapStability
    validation: list[ConceptValidation]
    #: Unique features shown in the figure and their mean activation z-scored across
    #: populations, (n_features, n_populations).
    unique_features: list[int]
    unique_zscored: list[list[float]]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["labels"] = {str(k): v for k, v in d["labels"].items()}
        d["bootstrap"]["unique_survival"] = {
            p: {str(f): s for f, s in v.items()}
            for p, v in d["bootstrap"]["unique_survival"].items()
        }
        return d


def unique_feature_table(
    ranking: Mapping[str, PopulationFeatures],
    mean_acts: Mapping[str, np.ndarray],
    per_population: int = 5,
) -> tuple[list[int], np.ndarray]:
    """The first ``per_population`` unique features of each population and their mean activation
    z-scored across populations: (features,), (n_features, n_pop)."""
    feats = list(dict.fromkeys(f for p in ranking for f in ranking[p].unique[:per_population]))
    if not feats:
        return [], np.zeros((0, len(mean_acts)))
    m = np.stack([mean_acts[p][feats] for p in mean_acts], axis=1)  # (n_features, n_pop)
    z = (m - m.mean(1, keepdims=True)) / np.maximum(m.std(1, keepdims=True), 1e-12)
    return feats, z


def plot_dictionary(result: ConceptDictionaryResult, *, corpus_frames=None) -> bytes:
    """Unique-by-magnitude features: z-scored activation per population, labels, top images.

    ``corpus_frames``: indexable by corpus image → (H, W) or (H, W, 3) uint8, or ``None``.
    """
    import matplotlib.pyplot as plt

    feats = result.unique_features
    z = np.asarray(result.unique_zscored, dtype=float)
    n_thumbs = 4 if corpus_frames is not None else 0
    fig = plt.figure(figsize=(5 + 1.2 * n_thumbs, 1.0 + 0.42 * max(len(feats), 3)))
    grid = fig.add_gridspec(
        max(len(feats), 1),
        1 + n_thumbs,
        width_ratios=[5] + [1.2] * n_thumbs,
        wspace=0.05,
        hspace=0.1,
    )
    ax = fig.add_subplot(grid[:, 0])
    if feats:
        image = ax.imshow(z, cmap="RdBu_r", vmin=-1.5, vmax=1.5, aspect="auto")
        ax.set_xticks(range(len(result.populations)), result.populations, fontsize=8)
        ax.set_yticks(
            range(len(feats)), [f"#{f} {result.labels[f].label[:38]}" for f in feats], fontsize=7
        )
        fig.colorbar(image, ax=ax, shrink=0.6, label="mean activation (z across populations)")
    ax.set_title("unique-by-magnitude SAE features", fontsize=9)
    for row, f in enumerate(feats):
        for col, img in enumerate(result.labels[f].top_images[:n_thumbs]):
            tax = fig.add_subplot(grid[row, 1 + col])
            tax.imshow(corpus_frames[img], cmap="gray")
            tax.axis("off")
    return figure_png(fig)


def plot_bootstrap(result: ConceptDictionaryResult) -> bytes:
    """Distribution of top-k overlap with the canonical set over bootstrap resamples."""
    import matplotlib.pyplot as plt

    bs = result.bootstrap
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    x = np.arange(bs.top_k + 1)
    width = 0.8 / max(len(result.populations), 1)
    for i, p in enumerate(result.populations):
        h = np.asarray(bs.overlap_histogram[p]) / bs.n_resamples
        ax.bar(
            x + i * width,
            h,
            width,
            label=f"{p} (mean {bs.overlap_mean[p] * bs.top_k:.1f}/{bs.top_k})",
        )
    ax.set_xlabel(f"canonical top-{bs.top_k} features recovered")
    ax.set_ylabel("fraction of resamples")
    ax.set_title(f"Bootstrap stability ({bs.n_resamples} resamples of test bins)", fontsize=9)
    ax.legend(fontsize=7)
    return figure_png(fig)


# ---- the concept dictionary (an input of sae, neurons and attribution) ---------------------------
@dataclass(frozen=True)
class ConceptDictionary:
    """A sparse autoencoder of the corpus's patch vectors with a label for every feature.

    Attributes
    ----------
    sae : the trained or loaded SAE.
    metrics : its quality on held-out corpus patch vectors (disjoint from its training vectors).
    labels : feature → :class:`FeatureLabel` (``top_images`` are corpus indices).
    label_index : (n_label_images,) corpus images searched for top activations.
    trained : True if the SAE was trained here (``"topk"``), False if loaded.
    """

    sae: SparseAutoencoder
    metrics: SAEMetrics
    labels: dict[int, FeatureLabel]
    label_index: np.ndarray
    trained: bool

    @property
    def decoder_directions(self) -> np.ndarray:
        """(d_sae, d_in) decoder rows in the units of the patches."""
        return self.sae.W_dec.detach().numpy() / float(self.sae.input_scale)

    def label(self, feature: int) -> str:
        return self.labels[int(feature)].label


def build_concept_dictionary(corpus: Corpus, config: SAEConfig, encode: EncodeFn, *, seed: int = 0) -> ConceptDictionary:
    """Train or load the SAE (``SAE_BACKENDS``), evaluate it on held-out corpus patch vectors,
    and label every feature from an evenly spaced subset of the corpus."""
    rng = np.random.default_rng(seed)
    n_img, n_patch = corpus.patches.shape[:2]
    total = n_img * n_patch
    n_eval = min(config.eval_vectors, total // 5)
    picks = rng.choice(total, size=min(config.max_train_vectors + n_eval, total), replace=False)

    def gather(flat: np.ndarray) -> np.ndarray:
        flat = np.sort(flat)  # read a memmap image by image
        image = flat // n_patch
        return np.concatenate([np.asarray(corpus.patches[i], dtype=np.float32)[flat[image == i] % n_patch]
                               for i in np.unique(image)])

    held_out, train = gather(picks[:n_eval]), gather(picks[n_eval:])
    with single_threaded():
        sae = SAE_BACKENDS.create(config.backend, config=config, features=train, seed=seed)
        # Label from an evenly spaced subset of the corpus: movie frames 1/30 s apart add little.
        label_index = evenly_spaced(len(corpus.patches), config.label_max_images)
        image_acts = mean_codes(sae, np.asarray(corpus.patches[label_index]))
    labels = label_features(range(sae.d_sae), image_acts, [corpus.captions[i] for i in label_index], encode,
                            n_images=config.label_images)
    for lab in labels.values():
        lab.top_images = [int(label_index[i]) for i in lab.top_images]  # back to corpus indices
    return ConceptDictionary(sae, evaluate_sae(sae, held_out), labels, label_index, config.backend == "topk")


# ---- the sae analysis ---------------------------------------------------------------------------
def run(inputs: AnalysisInputs, config: AnalysisConfig) -> AnalysisResult:
    """Per-population SAE features, their labels, bootstrap stability and concept t-tests."""
    from neurrator.analysis.contrasts import contrast_pools

    cfg = config.sae
    if inputs.corpus is None or inputs.concepts is None:
        raise InputError(None, "the SAE analysis needs an image corpus (analysis.sae.corpus or the run's stimulus)")
    corpus, dictionary = inputs.corpus, inputs.concepts
    sae, metrics = dictionary.sae, dictionary.metrics
    masks, kind, skipped = contrast_pools(inputs, config)
    bin_acts, pooled_predictions = {}, {}
    with single_threaded():
        for p, m in masks.items():
            predicted = inputs.predict(m)
            bin_acts[p] = mean_codes(sae, predicted)
            pooled_predictions[p] = predicted.mean(1).numpy()
    mean_acts = {p: a.mean(0) for p, a in bin_acts.items()}
    ranking = rank_population_features(mean_acts, top_k=cfg.top_k)
    boot = bootstrap_stability(bin_acts, ranking, top_k=cfg.top_k, n_resamples=cfg.n_bootstrap, seed=inputs.seed)
    labels = {f: dictionary.labels[f] for f in sorted({f for r in ranking.values() for f in (*r.top, *r.unique)})}
    validation = validate_concepts(cfg.validation_concepts, pooled_predictions, corpus.pooled(), corpus.captions,
                                   inputs.encode, n_images=cfg.label_images)
    feats, z = unique_feature_table(ranking, mean_acts)
    sae_info = {
        "backend": cfg.backend, "source": sae.meta.get("source", ""), "d_in": sae.d_in, "d_sae": sae.d_sae,
        "k": sae.k, "explained_variance": metrics.explained_variance, "l0": metrics.l0,
        "dead_fraction": metrics.dead_fraction, "n_eval_vectors": metrics.n_vectors,
        "corpus": corpus.description, "n_corpus_images": len(corpus.patches),
    }
    result = ConceptDictionaryResult(
        sae=sae_info, populations=list(masks), population_sizes={k: int(v.sum()) for k, v in masks.items()},
        n_bins=len(inputs.frames), ranking=ranking, labels=labels, bootstrap=boot, validation=validation,
        unique_features=feats, unique_zscored=z.round(4).tolist(),
    )
    summary = {
        "populations": kind,
        "sae": {k: v for k, v in sae_info.items() if k != "corpus"},
        "corpus": corpus.description,
        "unique_features": {
            p: [{"feature": f, "label": labels[f].label, "specificity": round(s, 4),
                 "bootstrap_unique_fraction": boot.unique_survival[p][f]}
                for f, s in zip(r.unique, r.unique_specificity, strict=True)]
            for p, r in ranking.items()
        },
        "bootstrap": {
            p: {"resamples": boot.n_resamples, f"mean_top{cfg.top_k}_overlap": round(boot.overlap_mean[p], 4),
                f"min_top{cfg.top_k}_overlap": round(boot.overlap_min[p], 4)}
            for p in ranking
        },
        "concept_validation": [
            {"concept": v.concept, **{k: (round(x, 4) if isinstance(x, float) else x) for k, x in t.items()}}
            for v in validation for t in v.welch
        ],
        "skipped_pools": skipped,
    }
    return AnalysisResult(
        "sae", summary, {"populations": kind, **result.to_dict(), "skipped_pools": skipped},
        inputs.used(cfg, corpus=corpus.description, n_corpus_images=len(corpus.patches)),
        figures={"dictionary.png": plot_dictionary(result, corpus_frames=corpus.images),
                 "bootstrap.png": plot_bootstrap(result)},
        files={f"sae/{name}": data for name, data in sae.files().items()} if dictionary.trained else {},
        line=f"SAE EV {metrics.explained_variance:.3f}, L0 {metrics.l0:.1f}, dead {metrics.dead_fraction:.1%}",
    )
