"""The analysis suite: every analysis of ``neurrator analyze`` as one function of typed inputs.

:class:`AnalysisInputs` bundles what the analyses need (test windows, a unit-maskable encoder,
narrators, a sentence encoder, references, the SAE corpus). The stage builds it from a run
directory; the benchmark and tests build it from synthetic objects. Each ``run_<analysis>``
writes ``summary.json`` (compact, table-shaped), ``results.json`` (everything) and PNG figures
into the folder it is given and returns the summary. ``docs/analysis_outputs.md`` documents
the files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from neurrator.analysis.attribution import (
    AttributionResult,
    gradient_x_input,
    patch_accuracy,
    plot_attribution,
    summarise_importance,
)
from neurrator.analysis.common import CachedEncoder, CachedNarrator, evenly_spaced, single_threaded
from neurrator.analysis.concepts import (
    ConceptDictionaryResult,
    bootstrap_stability,
    label_features,
    plot_bootstrap,
    plot_dictionary,
    rank_population_features,
    unique_feature_table,
    validate_concepts,
)
from neurrator.analysis.config import AnalysisConfig
from neurrator.analysis.contrasts import language_contrasts, plot_concept_axes, plot_words
from neurrator.analysis.neurons import CaptionBank, neurrate_units, plot_neurons
from neurrator.analysis.sae import SAE_BACKENDS, SparseAutoencoder, evaluate_sae, mean_codes
from neurrator.analysis.scaling import plot_scaling, scaling_curves
from neurrator.analysis.similarity import narration_similarity, plot_similarity
from neurrator.core.errors import InputError
from neurrator.core.io import atomic_write_json
from neurrator.evaluate.embedding import centred_cosine, identify

#: (windows (n, T, n_units), unit_mask (n_units,) or (n, n_units)) → patches (n, n_patches, dim).
EncoderFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: populations' subset spec → (n_units,) bool mask (``neurrator.preprocess.subsets.subset_mask``).
MaskFn = Callable[[str], np.ndarray]


@dataclass
class Corpus:
    """Captioned images the SAE is trained on and labelled with.

    Attributes
    ----------
    patches : (n_images, n_patches, dim) vision-space features (float16/32; may be a memmap).
    captions : (n_images,) reference captions per image (may be empty lists).
    images : per image an (H, W) or (H, W, 3) uint8 array for thumbnails (an array or a list,
        sizes may differ), or ``None``.
    description : where the images came from.
    """

    patches: np.ndarray
    captions: list[list[str]]
    images: np.ndarray | list[np.ndarray] | None = None
    description: str = ""

    def pooled(self) -> np.ndarray:
        """(n_images, dim) patch-mean feature, computed in chunks (the patches may be a memmap)."""
        return np.concatenate(
            [
                np.asarray(self.patches[i : i + 256], dtype=np.float32).mean(1)
                for i in range(0, len(self.patches), 256)
            ]
        )


@dataclass
class AnalysisInputs:
    """Everything the analyses read.

    Attributes
    ----------
    units : units table (rows = encoder input columns): area, cell_type, ...
    windows : (n_windows, T, n_units) float32 z-scored test windows.
    frames : (n_windows,) stimulus frame of each window.
    encoder : batched-callable encoder, see :data:`EncoderFn`; differentiable in ``windows``.
    narrate : the run's narrator (wrapped in a :class:`CachedNarrator`).
    narrate_fast : a fast narrator for the many scaling points (may be ``narrate``).
    encode : sentence encoder (SBERT) with a cache.
    references : frame → reference captions.
    reference_score : (sentences, frames) → (n,) SBERT score against those frames' references.
    random_caption_floor : mean SBERT of a random other caption against the references.
    frame_targets : (n_frames, n_patches, dim) true patches of every frame (may be a memmap).
    mask : subset spec → unit mask.
    corpus : images for the SAE (``None``: analyses that need it are skipped).
    grid : (rows, cols) of the patch grid.
    shot_of_frame : (n_frames,) shot of each frame, or ``None``.
    stand_ins : component → description of every offline stand-in the results depend on.
    """

    units: pd.DataFrame
    windows: torch.Tensor
    frames: np.ndarray
    encoder: EncoderFn
    narrate: CachedNarrator
    narrate_fast: CachedNarrator
    encode: CachedEncoder
    references: dict[int, list[str]]
    reference_score: Callable[[list[str], np.ndarray], np.ndarray]
    random_caption_floor: float
    frame_targets: np.ndarray
    mask: MaskFn
    corpus: Corpus | None
    grid: tuple[int, int]
    #: (n_frames,) shot of each stimulus frame, or ``None``; shuffled controls pair across shots.
    shot_of_frame: np.ndarray | None = None
    batch_size: int = 256
    #: Windows narrated per narrator call (bounds the predicted patches held at once).
    narrate_batch_windows: int = 768
    seed: int = 0
    stand_ins: dict[str, str] = field(default_factory=dict)
    #: Filled by ``run_sae`` for the analyses after it (neurons, attribution).
    sae: SparseAutoencoder | None = None
    feature_labels: dict[int, str] = field(default_factory=dict)

    @property
    def n_units(self) -> int:
        return int(self.windows.shape[2])

    def subset(self, window_index: np.ndarray) -> AnalysisInputs:
        """The same inputs restricted to some test windows."""
        return replace(self, windows=self.windows[window_index], frames=self.frames[window_index])

    @torch.no_grad()
    def predict(self, unit_mask: np.ndarray) -> torch.Tensor:
        """(n_units,) bool → (n_windows, n_patches, dim) float32, in batches."""
        mask = torch.from_numpy(np.asarray(unit_mask, dtype=bool))
        return torch.cat(
            [
                self.encoder(self.windows[i : i + self.batch_size], mask).float()
                for i in range(0, len(self.windows), self.batch_size)
            ]
        )

    @torch.no_grad()
    def predict_many(self, unit_masks: np.ndarray) -> torch.Tensor:
        """(m, n_units) bool → (m, n_windows, n_patches, dim): one batch holds several masks."""
        masks = torch.from_numpy(np.asarray(unit_masks, dtype=bool))
        m, n = len(masks), len(self.windows)
        x = self.windows.unsqueeze(0).expand(m, -1, -1, -1).reshape(m * n, *self.windows.shape[1:])
        per_window = masks.repeat_interleave(n, dim=0)
        out = torch.cat(
            [
                self.encoder(
                    x[i : i + self.batch_size], per_window[i : i + self.batch_size]
                ).float()
                for i in range(0, m * n, self.batch_size)
            ]
        )
        return out.reshape(m, n, *out.shape[1:])

    def pools(self, specs: dict[str, str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """Masks of the pools that exist in this run, and why the others were skipped."""
        masks, skipped = {}, {}
        for name, spec in specs.items():
            try:
                masks[name] = self.mask(spec)
            except InputError as exc:
                skipped[name] = exc.problem
        return masks, skipped


def _write(out: Path, summary: dict, results: dict) -> dict:
    atomic_write_json(out / "results.json", results)
    atomic_write_json(out / "summary.json", summary)
    return summary


def _population_narrations(
    inputs: AnalysisInputs, masks: dict[str, np.ndarray]
) -> dict[str, list[str]]:
    """Each population's narrations of the test windows, several populations per narrator call."""
    n = len(inputs.frames)
    per_call = max(1, inputs.narrate_batch_windows // max(n, 1))
    names = list(masks)
    out: dict[str, list[str]] = {}
    for start in range(0, len(names), per_call):
        chunk = names[start : start + per_call]
        said = inputs.narrate(torch.cat([inputs.predict(masks[name]) for name in chunk]))
        out.update({name: said[i * n : (i + 1) * n] for i, name in enumerate(chunk)})
    return out


# ---- 1. scaling -------------------------------------------------------------------------------
def run_scaling(inputs: AnalysisInputs, config: AnalysisConfig, out: Path) -> dict:
    """Fidelity (SBERT, R@10) against population size per pool; see :mod:`.scaling`."""
    cfg = config.scaling
    sub = inputs.subset(evenly_spaced(len(inputs.frames), cfg.max_windows))
    masks, skipped = sub.pools(cfg.pools)
    candidates = np.arange(len(inputs.frame_targets))
    pooled_targets = np.concatenate(
        [
            np.asarray(inputs.frame_targets[i : i + 256], dtype=np.float32).mean(1)
            for i in range(0, len(candidates), 256)
        ]
    )
    # Several cross-shot permutations, averaged, so the null's own pairing noise stays small.
    partners = [
        shuffled_partners(sub.frames, inputs.shot_of_frame, seed=inputs.seed + i)
        for i in range(cfg.n_shuffles)
    ]

    def fidelity(patches: torch.Tensor, sentences: list[str]) -> dict[str, np.ndarray]:
        sims = centred_cosine(patches.float().mean(1).numpy(), pooled_targets, pooled_targets.mean(0))
        ranks = identify(sims, sub.frames, candidates).rank
        matched = sub.reference_score(sentences, sub.frames)
        shuffled = np.mean(
            [sub.reference_score(sentences, sub.frames[p]) for p in partners], axis=0
        )
        return {
            "sbert": matched,
            "r_at_10": (ranks <= 10).astype(np.float64),
            "sbert_gain": matched - shuffled,
        }

    narrate = sub.narrate_fast
    result = scaling_curves(
        sub.predict,
        narrate,
        fidelity,
        masks,
        sizes=cfg.sizes,
        n_draws=cfg.n_draws,
        ci_level=cfg.ci_level,
        floors={
            "sbert": inputs.random_caption_floor,
            "r_at_10": min(10, len(candidates)) / len(candidates),
            "sbert_gain": 0.0,
        },
        seed=inputs.seed,
        narrator_name=narrate.name,
        predict_many=sub.predict_many,
        max_masks_per_call=max(1, inputs.narrate_batch_windows // max(len(sub.frames), 1)),
    )
    result.cache.update({"narrations": narrate.calls, "narration_cache_hits": narrate.hits})
    plot_scaling(result, out / "scaling.png")

    def cell(p, metric: str) -> tuple[float, str]:
        m = p.metrics[metric]
        return round(m.mean, 4), f"[{m.lo:.3f}, {m.hi:.3f}]"

    summary = {
        "narrator": narrate.name,
        "n_windows": result.n_windows,
        "n_draws": result.n_draws,
        "ci_level": result.ci_level,
        "sbert_floor": result.floors["sbert"],
        "r_at_10_chance": result.floors["r_at_10"],
        "crossing_points": {
            pool: {"pool_size": result.pool_sizes[pool], **c}
            for pool, c in result.crossings.items()
        },
        "points": [
            {
                "pool": p.pool,
                "N": p.label,
                **{
                    k: v
                    for metric in ("sbert", "r_at_10", "sbert_gain")
                    for k, v in zip((metric, f"{metric}_ci"), cell(p, metric), strict=True)
                },
            }
            for p in result.points
        ],
        "skipped_pools": skipped,
    }
    return _write(out, summary, {**result.to_dict(), "skipped_pools": skipped})


def shuffled_partners(
    frames: np.ndarray, shot_of_frame: np.ndarray | None, seed: int = 0
) -> np.ndarray:
    """A permutation pairing each window with a window of another shot (of another frame if
    shots are unknown): the shuffled control of the scaling curves.

    Being a permutation, the partners' frames are the windows' own frames reordered, so a
    constant narration scores exactly the same matched and shuffled: its gain is 0. Windows are
    sorted by shot (randomly within a shot) and shifted by the largest shot's size, which lands
    every window in another shot whenever no shot holds more than half of them.
    """
    rng = np.random.default_rng(seed)
    groups = np.asarray(shot_of_frame)[frames] if shot_of_frame is not None else np.asarray(frames)
    if len(np.unique(groups)) < 2:
        groups = np.asarray(frames)
    order = np.lexsort((rng.random(len(groups)), groups))
    shift = min(int(np.bincount(np.unique(groups, return_inverse=True)[1]).max()), len(groups) // 2)
    partner = np.empty(len(groups), dtype=np.int64)
    partner[order] = order[(np.arange(len(order)) + max(shift, 1)) % len(order)]
    return partner


# ---- 2. similarity ----------------------------------------------------------------------------
def run_similarity(inputs: AnalysisInputs, config: AnalysisConfig, out: Path) -> dict:
    """Narration-similarity heatmaps of area pools and cell-type pools on one colour scale."""
    cfg = config.similarity
    results, skipped = [], {}
    for name, specs in (("brain areas", cfg.area_pools), ("cell types", cfg.cell_type_pools)):
        masks, missing = inputs.pools(specs)
        skipped.update(missing)
        if len(masks) < 2:
            continue
        narrations = _population_narrations(inputs, masks)
        results.append(
            narration_similarity(
                narrations,
                inputs.encode,
                inputs.frames,
                name=name,
                n_shuffles=cfg.n_shuffles,
                seed=inputs.seed,
                population_sizes={k: int(v.sum()) for k, v in masks.items()},
            )
        )
    if results:
        plot_similarity(results, out / "similarity.png", narrator=inputs.narrate.name)
    summary = {
        "narrator": inputs.narrate.name,
        "n_windows": len(inputs.frames),
        "floors": {r.name: r.floor for r in results},
        "pairs": [
            {
                "set": r.name,
                "a": a,
                "b": b,
                "similarity": round(r.matrix[i][j], 4),
                "shuffled": round(r.shuffled[i][j], 4),
            }
            for r in results
            for i, a in enumerate(r.populations)
            for j, b in enumerate(r.populations)
            if i < j
        ],
        "skipped_pools": skipped,
    }
    return _write(
        out,
        summary,
        {
            "narrator": inputs.narrate.name,
            "sets": [r.to_dict() for r in results],
            "skipped_pools": skipped,
        },
    )


def _contrast_pools(
    inputs: AnalysisInputs, config: AnalysisConfig
) -> tuple[dict[str, np.ndarray], str, dict[str, str]]:
    """Cell-type pools if ≥ 2 exist in the run, else the visual area pools (labelled)."""
    masks, skipped = inputs.pools(config.similarity.cell_type_pools)
    if len(masks) >= 2:
        return masks, "cell types", skipped
    areas, more = inputs.pools({k: v for k, v in config.similarity.area_pools.items()})
    return areas, "brain areas (fewer than 2 cell-type pools in this run)", {**skipped, **more}


# ---- 3. contrasts -----------------------------------------------------------------------------
def run_contrasts(inputs: AnalysisInputs, config: AnalysisConfig, out: Path) -> dict:
    """Distinctive words, population classifier and concept axes of population narrations."""
    cfg = config.contrasts
    masks, kind, skipped = _contrast_pools(inputs, config)
    narrations = _population_narrations(inputs, masks)
    result = language_contrasts(
        narrations,
        inputs.frames,
        inputs.encode,
        concepts=cfg.concepts,
        prior_scale=cfg.prior_scale,
        top_words=cfg.top_words,
        folds=cfg.cv_folds,
        n_permutations=cfg.n_permutations,
        smooth_frames=cfg.smooth_frames,
        seed=inputs.seed,
        narrator_name=inputs.narrate.name,
        population_sizes={k: int(v.sum()) for k, v in masks.items()},
    )
    plot_words(result, out / "words.png")
    plot_concept_axes(result, out / "concept_axes.png")
    clf = result.classifier
    summary = {
        "populations": kind,
        "narrator": inputs.narrate.name,
        "sentence_encoder": "run's sentence scorer (paper: CLIP-text for concept axes)",
        "n_windows": result.n_windows,
        "classifier_accuracy": None if clf is None else clf.accuracy,
        "classifier_chance": None if clf is None else clf.chance,
        "classifier_p_value": None if clf is None else clf.p_value,
        "classifier_note": result.classifier_note,
        "distinctive_words": {p: ", ".join(w.word for w in ws) for p, ws in result.words.items()},
        "concept_means": {
            axis.concept: {p: round(v, 4) for p, v in axis.mean.items()} for axis in result.concepts
        },
        "skipped_pools": skipped,
    }
    return _write(out, summary, {"populations": kind, **result.to_dict(), "skipped_pools": skipped})


# ---- 4. SAE concept dictionary ------------------------------------------------------------------
def build_sae(
    inputs: AnalysisInputs, config: AnalysisConfig
) -> tuple[SparseAutoencoder, np.ndarray]:
    """Train or load the SAE (``SAE_BACKENDS``); return it with held-out corpus patch vectors
    (disjoint from its training vectors) to evaluate it on."""
    cfg = config.sae
    corpus = inputs.corpus
    rng = np.random.default_rng(inputs.seed)
    n_img, n_patch = corpus.patches.shape[:2]
    total = n_img * n_patch
    n_eval = min(cfg.eval_vectors, total // 5)
    picks = rng.choice(total, size=min(cfg.max_train_vectors + n_eval, total), replace=False)

    def gather(flat: np.ndarray) -> np.ndarray:
        flat = np.sort(flat)  # read a memmap image by image
        image = flat // n_patch
        return np.concatenate(
            [
                np.asarray(corpus.patches[i], dtype=np.float32)[flat[image == i] % n_patch]
                for i in np.unique(image)
            ]
        )

    held_out, train = gather(picks[:n_eval]), gather(picks[n_eval:])
    with single_threaded():
        sae = SAE_BACKENDS.create(cfg.backend, config=cfg, features=train, seed=inputs.seed)
    return sae, held_out


def run_sae(inputs: AnalysisInputs, config: AnalysisConfig, out: Path) -> dict:
    """SAE on the corpus; per-population features, labels, bootstrap stability, concept t-tests."""
    cfg = config.sae
    if inputs.corpus is None:
        raise InputError(
            None,
            "the SAE analysis needs an image corpus (analysis.sae.corpus or the run's stimulus)",
        )
    sae, vectors = build_sae(inputs, config)
    metrics = evaluate_sae(sae, vectors)
    if cfg.backend == "topk":
        sae.save_pretrained(out / "sae")
    masks, kind, skipped = _contrast_pools(inputs, config)
    # Label from an evenly spaced subset of the corpus: movie frames 1/30 s apart add little.
    label_index = evenly_spaced(len(inputs.corpus.patches), cfg.label_max_images)
    label_captions = [inputs.corpus.captions[i] for i in label_index]
    bin_acts, pooled_predictions = {}, {}
    with single_threaded():
        for p, m in masks.items():
            predicted = inputs.predict(m)
            bin_acts[p] = mean_codes(sae, predicted)
            pooled_predictions[p] = predicted.mean(1).numpy()
        image_acts = mean_codes(sae, np.asarray(inputs.corpus.patches[label_index]))
    mean_acts = {p: a.mean(0) for p, a in bin_acts.items()}
    ranking = rank_population_features(mean_acts, top_k=cfg.top_k)
    boot = bootstrap_stability(
        bin_acts, ranking, top_k=cfg.top_k, n_resamples=cfg.n_bootstrap, seed=inputs.seed
    )

    def labelled(features) -> dict:
        found = label_features(
            features, image_acts, label_captions, inputs.encode, n_images=cfg.label_images
        )
        for lab in found.values():
            lab.top_images = [int(label_index[i]) for i in lab.top_images]  # back to corpus indices
        return found

    labels = labelled(sorted({f for r in ranking.values() for f in (*r.top, *r.unique)}))
    validation = validate_concepts(
        cfg.validation_concepts,
        pooled_predictions,
        inputs.corpus.pooled(),
        inputs.corpus.captions,
        inputs.encode,
        n_images=cfg.label_images,
    )
    feats, z = unique_feature_table(ranking, mean_acts)
    sae_info = {
        "backend": cfg.backend,
        "source": sae.meta.get("source", ""),
        "d_in": sae.d_in,
        "d_sae": sae.d_sae,
        "k": sae.k,
        "explained_variance": metrics.explained_variance,
        "l0": metrics.l0,
        "dead_fraction": metrics.dead_fraction,
        "n_eval_vectors": metrics.n_vectors,
        "corpus": inputs.corpus.description,
        "n_corpus_images": len(inputs.corpus.patches),
    }
    result = ConceptDictionaryResult(
        sae=sae_info,
        populations=list(masks),
        population_sizes={k: int(v.sum()) for k, v in masks.items()},
        n_bins=len(inputs.frames),
        ranking=ranking,
        labels=labels,
        bootstrap=boot,
        validation=validation,
        unique_features=feats,
        unique_zscored=z.round(4).tolist(),
    )
    plot_dictionary(result, out / "dictionary.png", corpus_frames=inputs.corpus.images)
    plot_bootstrap(result, out / "bootstrap.png")
    inputs.sae = sae
    inputs.feature_labels = {f: lab.label for f, lab in labelled(range(sae.d_sae)).items()}
    summary = {
        "populations": kind,
        "sae": {k: v for k, v in sae_info.items() if k != "corpus"},
        "corpus": inputs.corpus.description,
        "unique_features": {
            p: [
                {
                    "feature": f,
                    "label": labels[f].label,
                    "specificity": round(s, 4),
                    "bootstrap_unique_fraction": boot.unique_survival[p][f],
                }
                for f, s in zip(r.unique, r.unique_specificity, strict=True)
            ]
            for p, r in ranking.items()
        },
        "bootstrap": {
            p: {
                "resamples": boot.n_resamples,
                f"mean_top{cfg.top_k}_overlap": round(boot.overlap_mean[p], 4),
                f"min_top{cfg.top_k}_overlap": round(boot.overlap_min[p], 4),
            }
            for p in ranking
        },
        "concept_validation": [
            {
                "concept": v.concept,
                **{k: (round(x, 4) if isinstance(x, float) else x) for k, x in t.items()},
            }
            for v in validation
            for t in v.welch
        ],
        "skipped_pools": skipped,
    }
    return _write(out, summary, {"populations": kind, **result.to_dict(), "skipped_pools": skipped})


# ---- 5. single neurons ------------------------------------------------------------------------
def choose_units(units: pd.DataFrame, how: int | str, seed: int = 0) -> np.ndarray:
    """Positions of the units to neurrate: all, or ``how`` drawn round-robin over areas and,
    within an area, over its cell types (untagged units are one more type), so that a small
    sample still covers every area and every optotagged type."""
    if how == "all" or int(how) >= len(units):
        return np.arange(len(units))
    rng = np.random.default_rng(seed)
    area = units["area"].astype(str).to_numpy() if "area" in units else np.full(len(units), "?")
    cell = units["cell_type"].to_numpy() if "cell_type" in units else np.full(len(units), None)
    cell = np.array([c if isinstance(c, str) and c else "" for c in cell])
    queues = {
        a: [
            rng.permutation(np.flatnonzero((area == a) & (cell == c))).tolist()
            for c in sorted(set(cell[area == a]), key=lambda c: (c == "", c))
        ]
        for a in np.unique(area)
    }
    turn = dict.fromkeys(queues, 0)
    order: list[int] = []
    while len(order) < int(how):
        for a, subgroups in queues.items():
            live = [q for q in subgroups if q]
            if live and len(order) < int(how):
                order.append(live[turn[a] % len(live)].pop())
                turn[a] += 1
    return np.sort(np.array(order, dtype=np.int64))


def run_neurons(inputs: AnalysisInputs, config: AnalysisConfig, out: Path) -> dict:
    """Solo query, leave-one-out shift and description of single units."""
    cfg = config.neurons
    sub = inputs.subset(evenly_spaced(len(inputs.frames), cfg.max_windows))
    positions = choose_units(inputs.units, cfg.units, inputs.seed)
    bank = None
    if inputs.corpus is not None:
        bank = CaptionBank(
            inputs.corpus.pooled(), [c[0] if c else "" for c in inputs.corpus.captions]
        )
    sae = inputs.sae
    result = neurrate_units(
        positions,
        sub.predict_many,
        sub.narrate,
        sub.n_units,
        units_table=inputs.units,
        frames=sub.frames,
        score=sub.reference_score,
        decoder_directions=None
        if sae is None
        else sae.W_dec.detach().numpy() / float(sae.input_scale),
        feature_labels=inputs.feature_labels.get if inputs.feature_labels else None,
        caption_bank=bank,
        units_per_batch=cfg.units_per_batch,
        narrated_windows=cfg.narrated_windows,
        n_features=cfg.n_features,
        n_neighbours=cfg.n_neighbours,
        narrator_name=sub.narrate.name,
    )
    plot_neurons(result, out / "neurons.png")
    table = sorted(result.units, key=lambda u: -u.loo_shift)
    summary = {
        "narrator": result.narrator,
        "n_units": len(result.units),
        "n_windows": result.n_windows,
        "n_narrated_windows": result.n_narrated_windows,
        "units_per_second": round(result.units_per_second, 3),
        "all_units_fidelity": result.full_fidelity,
        "top_units": [
            {
                "unit_id": u.unit_id,
                "area": u.area,
                "cell_type": u.cell_type,
                "loo_shift": round(u.loo_shift, 4),
                "narration_changed": round(u.loo_changed_fraction, 3),
                "solo": u.solo_narration,
                "solo_sbert": None if u.solo_fidelity is None else round(u.solo_fidelity, 4),
                "features": "; ".join(f["label"] for f in u.features),
                "neighbours": "; ".join(n["caption"] for n in u.neighbours),
            }
            for u in table[:15]
        ],
    }
    return _write(out, summary, result.to_dict())


# ---- 6. attribution -----------------------------------------------------------------------------
def run_attribution(inputs: AnalysisInputs, config: AnalysisConfig, out: Path) -> dict:
    """Gradient × input neuron importance per target, and per-patch accuracy maps."""
    cfg = config.attribution
    sub = inputs.subset(evenly_spaced(len(inputs.frames), cfg.max_windows))
    everyone = torch.ones(sub.n_units, dtype=torch.bool)
    predicted = sub.predict(everyone.numpy())
    true = np.asarray(inputs.frame_targets[np.sort(np.unique(sub.frames))], dtype=np.float32)
    true = true[np.searchsorted(np.unique(sub.frames), sub.frames)]
    cosine, r2 = patch_accuracy(predicted.numpy(), true)
    sae = inputs.sae
    if cfg.targets == "sae" and sae is not None:
        codes = mean_codes(sae, predicted)
        chosen = np.argsort(-codes.mean(0), kind="stable")[: cfg.n_targets]
        names = [f"SAE #{f}: {inputs.feature_labels.get(int(f), '')}" for f in chosen]
        w_enc, b_enc = sae.W_enc.detach()[:, chosen], sae.b_enc.detach()[chosen]
        scale, b_dec = sae.input_scale, sae.b_dec.detach()

        def targets(patches: torch.Tensor) -> torch.Tensor:
            return torch.relu((patches * scale - b_dec) @ w_enc + b_enc).mean(1)

        kind = "sae"
    else:
        pooled = predicted.mean(1)
        chosen = torch.argsort(-pooled.var(0))[: cfg.n_targets].numpy()
        names = [f"dim {int(d)}" for d in chosen]
        idx = torch.as_tensor(chosen)

        def targets(patches: torch.Tensor) -> torch.Tensor:
            return patches.mean(1)[:, idx]

        kind = "dims"

    def forward(x: torch.Tensor) -> torch.Tensor:
        return inputs.encoder(x, everyone)

    importance = gradient_x_input(
        forward, sub.windows, targets, batch_size=min(32, inputs.batch_size)
    )
    areas = inputs.units["area"].tolist() if "area" in inputs.units else [None] * sub.n_units
    per_target, half = summarise_importance(
        importance, names, inputs.units.index.to_numpy(), areas, top_units=cfg.top_units
    )
    result = AttributionResult(
        list(inputs.grid),
        cosine.reshape(inputs.grid).round(5).tolist(),
        r2.reshape(inputs.grid).round(5).tolist(),
        per_target,
        len(sub.frames),
        kind,
        half,
    )
    plot_attribution(result, out / "attribution.png")
    summary = {
        "target_kind": kind,
        "n_windows": len(sub.frames),
        "mean_patch_cosine": float(cosine.mean()),
        "best_patch_cosine": float(cosine.max()),
        "worst_patch_cosine": float(cosine.min()),
        "mean_patch_r2": float(r2.mean()),
        "targets": [
            {
                "target": t.target,
                "units_for_half_importance": h,
                "top10_share": round(t.top10_share, 4),
                "top_unit": t.top_units[0]["unit_id"],
                "top_unit_area": t.top_units[0]["area"],
                "largest_area_share": max(t.area_share.items(), key=lambda kv: kv[1])[0],
            }
            for t, h in zip(per_target, half, strict=True)
        ],
    }
    return _write(out, summary, result.to_dict())


#: Analysis name → runner, in the order ``neurrator analyze`` runs them (SAE before the two that use it).
RUNNERS: dict[str, Callable[[AnalysisInputs, AnalysisConfig, Path], dict]] = {
    "scaling": run_scaling,
    "similarity": run_similarity,
    "contrasts": run_contrasts,
    "sae": run_sae,
    "neurons": run_neurons,
    "attribution": run_attribution,
}
