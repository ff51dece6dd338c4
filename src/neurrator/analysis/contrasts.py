"""Cell-type contrasts in language (paper Sec. 5, Fig. 7, A.7).

- Distinctive words: log-odds ratios with an informative Dirichlet prior (Monroe, Colaresi &
  Quinn 2008, "Fightin' words"), each population against all others pooled.
- A population classifier: logistic regression on SBERT embeddings of the narrations, stratified
  cross-validated accuracy against chance with a permutation p-value
  (``sklearn.model_selection.permutation_test_score``).
- Concept axes: cosine of each narration's embedding to a concept sentence, per population,
  smoothed over frames. The paper embeds with CLIP-text; here the run's sentence scorer does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.ndimage import gaussian_filter1d
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score, permutation_test_score

from neurrator.analysis.common import EncodeFn, content_words, figure_png, single_threaded
from neurrator.analysis.result import AnalysisResult

if TYPE_CHECKING:
    from neurrator.analysis.config import AnalysisConfig
    from neurrator.analysis.inputs import AnalysisInputs


# ---- distinctive words ----------------------------------------------------------------------
@dataclass
class WordScore:
    word: str
    z: float
    log_odds: float
    count: int


def log_odds_dirichlet(
    texts: Mapping[str, Sequence[str]], *, prior_scale: float = 1.0, top: int = 10
) -> dict[str, list[WordScore]]:
    """Most distinctive words of each population against all others.

    With counts ``y_i`` (population i) and ``y_j`` (the others), and prior counts
    ``α_w = prior_scale × y_w`` over all populations (``α0 = Σ α_w``)::

        δ_w = log((y_iw + α_w) / (n_i + α0 − y_iw − α_w)) − log((y_jw + α_w) / (n_j + α0 − y_jw − α_w))
        z_w = δ_w / sqrt(1 / (y_iw + α_w) + 1 / (y_jw + α_w))

    Parameters
    ----------
    texts : population → its sentences.
    prior_scale : strength of the prior relative to the observed counts.
    top : words kept per population (highest positive z among words the population used).

    Returns
    -------
    population → list of :class:`WordScore`, most distinctive first.
    """
    pops = list(texts)
    vectorizer = CountVectorizer(analyzer=content_words)
    docs = [" ".join(texts[p]) for p in pops]
    if not any(content_words(d) for d in docs):
        return {p: [] for p in pops}
    counts = vectorizer.fit_transform(docs).toarray().astype(np.float64)  # (n_pop, n_words)
    vocab = vectorizer.get_feature_names_out()
    alpha = prior_scale * counts.sum(axis=0)
    alpha0 = alpha.sum()
    out: dict[str, list[WordScore]] = {}
    for i, pop in enumerate(pops):
        y_i = counts[i]
        y_j = counts.sum(axis=0) - y_i
        n_i, n_j = y_i.sum(), y_j.sum()
        delta = np.log((y_i + alpha) / (n_i + alpha0 - y_i - alpha)) - np.log(
            (y_j + alpha) / (n_j + alpha0 - y_j - alpha)
        )
        z = delta / np.sqrt(1.0 / (y_i + alpha) + 1.0 / (y_j + alpha))
        # Over-represented words only: used by this population and z > 0.
        used = np.flatnonzero((y_i > 0) & (z > 0))
        order = used[np.argsort(-z[used], kind="stable")][:top]
        out[pop] = [
            WordScore(str(vocab[w]), float(z[w]), float(delta[w]), int(y_i[w])) for w in order
        ]
    return out


# ---- population classifier ------------------------------------------------------------------
@dataclass
class ClassifierResult:
    accuracy: float
    fold_accuracies: list[float]
    chance: float
    p_value: float
    n_permutations: int
    n_folds: int
    n_samples: int
    classes: list[str]


def population_classifier(
    embeddings: np.ndarray,
    labels: Sequence[str],
    *,
    folds: int = 5,
    n_permutations: int = 100,
    seed: int = 0,
) -> ClassifierResult:
    """Stratified-CV accuracy of logistic regression naming a narration's source population.

    Parameters
    ----------
    embeddings : (n, d) SBERT embeddings of narrations.
    labels : (n,) population of each narration.

    ``chance`` is the majority-class fraction; the p-value is from refitting on permuted labels.
    """
    y = np.asarray(labels)
    classes, counts = np.unique(y, return_counts=True)
    n_folds = int(min(folds, counts.min()))
    if len(classes) < 2 or n_folds < 2:
        raise ValueError("the classifier needs ≥ 2 populations with ≥ 2 narrations each")
    cv = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    clf = LogisticRegression(max_iter=500, C=1.0)
    with single_threaded():
        score, _perm_scores, p_value = permutation_test_score(
            clf,
            embeddings,
            y,
            cv=cv,
            n_permutations=n_permutations,
            random_state=seed,
            scoring="accuracy",
        )
        fold_scores = cross_val_score(clf, embeddings, y, cv=cv, scoring="accuracy")
    return ClassifierResult(
        accuracy=float(score),
        fold_accuracies=[float(s) for s in fold_scores],
        chance=float(counts.max() / counts.sum()),
        p_value=float(p_value),
        n_permutations=n_permutations,
        n_folds=n_folds,
        n_samples=len(y),
        classes=[str(c) for c in classes],
    )


# ---- concept axes over time -----------------------------------------------------------------
@dataclass
class ConceptAxis:
    """One concept, per population: per-frame cosine (mean over repeats) and its smoothed curve."""

    concept: str
    frames: list[int]
    raw: dict[str, list[float]]
    smoothed: dict[str, list[float]]
    mean: dict[str, float]


def concept_axes(
    narrations: Mapping[str, Sequence[str]],
    frames: np.ndarray,
    concepts: Sequence[str],
    encode: EncodeFn,
    *,
    smooth_frames: float = 5.0,
) -> list[ConceptAxis]:
    """Time-resolved similarity of each population's narrations to each concept.

    Parameters
    ----------
    narrations : population → (n_windows,) sentences on the same windows.
    frames : (n_windows,) frame of each window; repeats of a frame are averaged.
    concepts : concept sentences, e.g. ``"darkness or shadows"``.
    smooth_frames : Gaussian σ, in (sorted) test frames.
    """
    frames = np.asarray(frames)
    uniq, inverse = np.unique(frames, return_inverse=True)
    concept_emb = encode(list(concepts))  # (n_concepts, d)
    per_pop = {}
    for pop, sentences in narrations.items():
        cos = encode(list(sentences)) @ concept_emb.T  # (n_windows, n_concepts)
        sums = np.zeros((len(uniq), len(concepts)))
        np.add.at(sums, inverse, cos)
        per_pop[pop] = sums / np.bincount(inverse, minlength=len(uniq))[:, None]
    axes = []
    for c, concept in enumerate(concepts):
        raw = {p: v[:, c] for p, v in per_pop.items()}
        smooth = {
            p: gaussian_filter1d(v, smooth_frames, mode="nearest") if smooth_frames > 0 else v
            for p, v in raw.items()
        }
        axes.append(
            ConceptAxis(
                concept=concept,
                frames=[int(f) for f in uniq],
                raw={p: v.round(5).tolist() for p, v in raw.items()},
                smoothed={p: v.round(5).tolist() for p, v in smooth.items()},
                mean={p: float(v.mean()) for p, v in raw.items()},
            )
        )
    return axes


@dataclass
class ContrastsResult:
    populations: list[str]
    population_sizes: dict[str, int]
    n_windows: int
    narrator: str
    words: dict[str, list[WordScore]]
    classifier: ClassifierResult | None
    classifier_note: str
    concepts: list[ConceptAxis]

    def to_dict(self) -> dict:
        return asdict(self)


def language_contrasts(
    narrations: Mapping[str, Sequence[str]],
    frames: np.ndarray,
    encode: EncodeFn,
    *,
    concepts: Sequence[str],
    prior_scale: float = 1.0,
    top_words: int = 10,
    folds: int = 5,
    n_permutations: int = 100,
    smooth_frames: float = 5.0,
    seed: int = 0,
    narrator_name: str = "",
    population_sizes: Mapping[str, int] | None = None,
) -> ContrastsResult:
    """Words, classifier and concept axes for populations narrated on the same test windows."""
    pops = list(narrations)
    words = log_odds_dirichlet(narrations, prior_scale=prior_scale, top=top_words)
    sentences = [s for p in pops for s in narrations[p]]
    labels = [p for p in pops for _ in narrations[p]]
    classifier, note = None, ""
    try:
        classifier = population_classifier(
            encode(sentences), labels, folds=folds, n_permutations=n_permutations, seed=seed
        )
    except ValueError as exc:
        note = str(exc)
    return ContrastsResult(
        populations=pops,
        population_sizes=dict(population_sizes or {}),
        n_windows=len(frames),
        narrator=narrator_name,
        words=words,
        classifier=classifier,
        classifier_note=note,
        concepts=concept_axes(narrations, frames, concepts, encode, smooth_frames=smooth_frames),
    )


def plot_concept_axes(result: ContrastsResult) -> bytes:
    """One panel per concept: per-frame dots and smoothed lines per population."""
    import matplotlib.pyplot as plt

    n = len(result.concepts)
    cols = min(3, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.0 * rows), squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, axis in zip(axes.ravel(), result.concepts, strict=False):
        for i, pop in enumerate(result.populations):
            ax.scatter(axis.frames, axis.raw[pop], s=4, alpha=0.35, color=colours(i))
            ax.plot(axis.frames, axis.smoothed[pop], lw=1.6, color=colours(i), label=pop)
        ax.set_title(f"“{axis.concept}”", fontsize=9)
        ax.set_xlabel("stimulus frame")
        ax.set_ylabel("cosine to concept")
        ax.grid(alpha=0.3, lw=0.5)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"Concept axes of narrations over time (narrator {result.narrator})", fontsize=9)
    fig.tight_layout()
    return figure_png(fig)


def plot_words(result: ContrastsResult) -> bytes:
    """Horizontal bars of each population's most distinctive words (log-odds z)."""
    import matplotlib.pyplot as plt

    pops = result.populations
    fig, axes = plt.subplots(1, len(pops), figsize=(3.4 * len(pops), 3.6), squeeze=False)
    colours = plt.get_cmap("tab10")
    for i, (ax, pop) in enumerate(zip(axes[0], pops, strict=True)):
        ws = result.words.get(pop, [])[::-1]
        ax.barh([w.word for w in ws], [w.z for w in ws], color=colours(i))
        ax.set_title(pop, fontsize=9)
        ax.set_xlabel("log-odds z (vs others)")
        ax.tick_params(axis="y", labelsize=7)
    clf = result.classifier
    subtitle = (
        f"classifier accuracy {clf.accuracy:.2f} (chance {clf.chance:.2f}, permutation p = {clf.p_value:.3g})"
        if clf
        else result.classifier_note
    )
    fig.suptitle(f"Distinctive words per population — {subtitle}", fontsize=9)
    fig.tight_layout()
    return figure_png(fig)


# ---- the contrasts analysis ---------------------------------------------------------------------
def contrast_pools(inputs: AnalysisInputs, config: AnalysisConfig) -> tuple[dict[str, np.ndarray], str, dict[str, str]]:
    """Cell-type pools if ≥ 2 exist in the run, else the visual area pools (labelled)."""
    masks, skipped = inputs.pools(config.similarity.cell_type_pools)
    if len(masks) >= 2:
        return masks, "cell types", skipped
    areas, more = inputs.pools(dict(config.similarity.area_pools))
    return areas, "brain areas (fewer than 2 cell-type pools in this run)", {**skipped, **more}


def run(inputs: AnalysisInputs, config: AnalysisConfig) -> AnalysisResult:
    """Distinctive words, population classifier and concept axes of population narrations."""
    cfg = config.contrasts
    masks, kind, skipped = contrast_pools(inputs, config)
    result = language_contrasts(
        inputs.population_narrations(masks), inputs.frames, inputs.encode, concepts=cfg.concepts,
        prior_scale=cfg.prior_scale, top_words=cfg.top_words, folds=cfg.cv_folds, n_permutations=cfg.n_permutations,
        smooth_frames=cfg.smooth_frames, seed=inputs.seed, narrator_name=inputs.narrate.name,
        population_sizes={k: int(v.sum()) for k, v in masks.items()},
    )
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
        "concept_means": {axis.concept: {p: round(v, 4) for p, v in axis.mean.items()} for axis in result.concepts},
        "skipped_pools": skipped,
    }
    line = "classifier " + (f"{clf.accuracy:.2f} (chance {clf.chance:.2f}, p={clf.p_value:.3g})" if clf else "n/a")
    return AnalysisResult(
        "contrasts", summary, {"populations": kind, **result.to_dict(), "skipped_pools": skipped},
        inputs.used(cfg, narrator=inputs.narrate.name, populations=kind),
        figures={"words.png": plot_words(result), "concept_axes.png": plot_concept_axes(result)}, line=line,
    )
