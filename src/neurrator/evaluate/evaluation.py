"""``neurrator evaluate`` as a layer function: the run's narrations and predictions → :class:`Scores`.

:func:`evaluate_narrations` takes explicit objects (no run directory) and returns the per-window
table and the summary:

- sentence scores of the run's narrations (``matched`` = mean cosine over the references, the
  floors and shuffles of :func:`~neurrator.evaluate.scores.score_windows`), the
  released-script compatible columns (``released_*``) and the copy flag of every window;
- block-bootstrap CIs and block-level, Holm-corrected tests (:func:`summarize_scores`);
- the embedding metrics of every predicted test window with the benchmark's readout and
  computed chance levels (:func:`~neurrator.evaluate.benchmark.embedding_metrics`), and the
  shot oracle;
- the controls, when :class:`~neurrator.evaluate.controls.ControlInputs` are given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from neurrator.core.errors import InputError
from neurrator.core.io import atomic_path, atomic_write_json
from neurrator.evaluate.benchmark import BenchmarkSettings, EmbeddingContext, embedding_metrics
from neurrator.evaluate.controls import ControlInputs, run_controls
from neurrator.evaluate.scores import (
    ReferenceBank,
    copy_flags,
    released_scores,
    score_windows,
    summarize_scores,
)

PER_WINDOW_FILE = "per_window.parquet"
SUMMARY_FILE = "summary.json"
#: Columns every per-window table has (besides the floors' draws).
REQUIRED_COLUMNS = ("repeat", "frame", "narration", "matched", "shuffled", "word_salad", "released_matched",
                    "released_floor", "copied", "window", "rank", "retrieved_frame")


@dataclass
class Scores:
    """The ``evaluate`` stage's result.

    Attributes
    ----------
    per_window : one row per narrated test window (:data:`REQUIRED_COLUMNS` and the floors' draws).
    summary : means, block-bootstrap CIs, tests, released-script scores, copy rate, embedding
        metrics (:class:`~neurrator.evaluate.results.Metric` dicts), controls, provenance.
    """

    per_window: pd.DataFrame
    summary: dict

    def validate(self) -> None:
        missing = [c for c in REQUIRED_COLUMNS if c not in self.per_window]
        if missing:
            raise ValueError(f"per-window scores lack column(s) {', '.join(missing)}")
        for key in ("scores", "tests", "embedding", "copy_rate", "released"):
            if key not in self.summary:
                raise ValueError(f"scores summary lacks {key!r}")

    def save(self, folder: str | Path) -> list[Path]:
        """Validate and write ``per_window.parquet`` and ``summary.json`` atomically."""
        self.validate()
        folder = Path(folder)
        with atomic_path(folder / PER_WINDOW_FILE) as tmp:
            self.per_window.to_parquet(tmp, index=False)
        return [folder / PER_WINDOW_FILE, atomic_write_json(folder / SUMMARY_FILE, self.summary)]

    @classmethod
    def load(cls, folder: str | Path) -> Scores:
        """Read a saved result; :class:`InputError` naming the file if missing or invalid."""
        folder = Path(folder)
        try:
            scores = cls(pd.read_parquet(folder / PER_WINDOW_FILE), json.loads((folder / SUMMARY_FILE).read_text()))
            scores.validate()
        except FileNotFoundError as exc:
            raise InputError(Path(exc.filename or folder), "evaluation result not found; run `neurrator evaluate`") from None
        except (ValueError, json.JSONDecodeError, OSError) as exc:
            raise InputError(folder, f"invalid evaluation result: {exc}") from None
        return scores


@dataclass
class EvaluationInputs:
    """What :func:`evaluate_narrations` reads.

    Attributes
    ----------
    sentences : (n,) narrations; ``pairs`` (n, 2) their ``(repeat, frame)``; ``windows`` (n,)
        their rows of ``predicted``.
    predicted : (m, n_patches, dim) every predicted test window (m ≥ n); ``predicted_frames`` (m,).
    targets : (n_frames, n_patches, dim) patch targets.
    train_frames : the split's training frames (the readout centres on their mean target).
    captions : frame → reference captions; ``shot_of_frame`` / ``frame_rate`` make the blocks.
    """

    sentences: list[str]
    pairs: np.ndarray
    windows: np.ndarray
    predicted: np.ndarray
    predicted_frames: np.ndarray
    targets: np.ndarray
    train_frames: np.ndarray
    captions: dict[int, list[str]]
    shot_of_frame: np.ndarray | None
    frame_rate: float | None
    scorer: object
    word_salad: list[str]
    released_pool: list[str]


def evaluate_narrations(inputs: EvaluationInputs, settings: BenchmarkSettings,
                        controls: ControlInputs | None = None) -> Scores:
    """Score the narrations and predictions of ``inputs``; run ``controls`` if given."""
    frames = np.asarray(inputs.pairs[:, 1], dtype=np.int64)
    uncaptioned = sorted(set(frames.tolist()) - set(inputs.captions))
    if uncaptioned:
        raise InputError(None, f"{len(uncaptioned)} narrated frames have no reference caption, e.g. {uncaptioned[:5]}")
    bank = ReferenceBank(inputs.captions, inputs.scorer)
    shots, seed = inputs.shot_of_frame, settings.seed
    per_window = score_windows(inputs.sentences, frames, bank, inputs.scorer, word_salad=inputs.word_salad,
                               shot_of_frame=shots, seed=seed)
    per_window.insert(0, "repeat", np.asarray(inputs.pairs[:, 0], dtype=np.int64))
    released = released_scores(inputs.sentences, frames, inputs.captions, inputs.scorer, inputs.released_pool,
                               seed=seed)
    for key, values in released.items():
        per_window[f"released_{key}"] = values.astype(np.float32)
    per_window["copied"] = copy_flags(inputs.sentences, frames, inputs.captions)
    summary = summarize_scores(per_window, shot_of_frame=shots, frame_rate=inputs.frame_rate,
                               n_bootstrap=settings.n_bootstrap, ci_level=settings.ci_level, seed=seed)
    summary["copy_rate"] = float(per_window["copied"].mean())
    summary["released"] = {k: float(np.mean(v)) for k, v in released.items()}

    # Every predicted test window, narrated or not, through the benchmark's readout.
    context = EmbeddingContext.build(inputs.targets, inputs.predicted_frames, inputs.train_frames, shot_of_frame=shots,
                                     frame_rate=inputs.frame_rate, settings=settings)
    metrics, ident = embedding_metrics(inputs.predicted, context, settings)
    per_window["window"] = inputs.windows
    per_window["rank"] = ident.rank[inputs.windows]
    per_window["retrieved_frame"] = ident.retrieved[inputs.windows]
    summary["embedding"] = {k: m.to_dict() for k, m in {**metrics, **context.shot_oracle()}.items()}
    summary["embedding_windows"] = len(inputs.predicted_frames)
    summary["controls"] = run_controls(controls) if controls is not None else {
        "skipped": ["controls off (evaluate.controls=false)"]}
    return Scores(per_window, summary)


def control_inputs(inputs: EvaluationInputs, settings: BenchmarkSettings, *, narrate, narrator_name: str,
                   run_narrator: str, predict=None, unit_mask: np.ndarray | None = None, unit_subset: str = "",
                   max_windows: int = 240, shift_s: float = 10.0, skipped: list[str] | None = None) -> ControlInputs:
    """The controls' :class:`ControlInputs` on evenly spaced narrated windows of ``inputs``.

    ``narrate``: the controls' narrator (``None`` skips narrator-based controls); ``predict``:
    ``(pairs, unit mask or None) → patches`` of the trained encoder (``None`` skips encoder-based
    controls). The time shift is ``shift_s`` seconds, at most half the stimulus, so the circular
    shift never lands back near the true frame.
    """
    from neurrator.core.linalg import mean_patch
    from neurrator.core.sampling import evenly_spaced
    from neurrator.evaluate.stats import block_ids

    rows = evenly_spaced(len(inputs.sentences), max_windows)
    pairs = np.asarray(inputs.pairs, dtype=np.int64)[rows]
    n_frames = len(inputs.targets)
    shift = n_frames // 2
    if inputs.frame_rate:
        shift = max(1, min(round(shift_s * inputs.frame_rate), shift))
    bank = ReferenceBank(inputs.captions, inputs.scorer)
    control_settings = BenchmarkSettings(**{**settings.__dict__, "n_permutations": 100})

    def embed(patches: np.ndarray, true_frames: np.ndarray) -> dict:
        ctx = EmbeddingContext.build(inputs.targets, true_frames, inputs.train_frames, shot_of_frame=inputs.shot_of_frame,
                                     frame_rate=inputs.frame_rate, settings=control_settings)
        m, _ = embedding_metrics(np.asarray(patches, dtype=np.float32), ctx, control_settings)
        return {"r1": m["r1"].value, "r10": m["r10"].value, "median_rank": m["median_rank"].value}

    def score(sentences, frames):
        return score_windows(list(sentences), frames, bank, inputs.scorer, word_salad=inputs.word_salad,
                             shot_of_frame=inputs.shot_of_frame, seed=settings.seed)

    return ControlInputs(
        pairs=pairs, real_sentences=[inputs.sentences[i] for i in rows],
        real_patches=np.asarray(inputs.predicted[np.asarray(inputs.windows)[rows]], dtype=np.float32),
        blocks=block_ids(pairs[:, 1], shot_of_frame=inputs.shot_of_frame, frame_rate=inputs.frame_rate),
        n_frames=n_frames, shift_frames=shift, mean_patch=mean_patch(inputs.targets, inputs.train_frames),
        narrate=narrate, narrator_name=narrator_name, renarrate_real=run_narrator != narrator_name, score=score,
        embed=embed, predict=predict, unit_mask=unit_mask, unit_subset=unit_subset, seed=settings.seed,
        n_bootstrap=settings.n_bootstrap, ci_level=settings.ci_level, skipped=skipped,
    )
