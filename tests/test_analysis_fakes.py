"""Synthetic stand-ins for the encoder, narrator and sentence scorer used by the analysis tests.

A toy problem with a known answer: frames belong to one of a few scenes; each unit is tuned
to one scene (V1 strongly, hippocampus not at all); the "encoder" is linear in the units'
window-mean activity; the narrator names the nearest scene prototype; the scorer is a
bag-of-words embedding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

SCENES = [
    "a dark room with a shadow on the wall",
    "a car parked in a parking lot",
    "a cat sitting on a table",
    "a person walking down a street",
]


def bow_encode(sentences: list[str], dim: int = 64) -> np.ndarray:
    """Hashing bag-of-words embedding, unit norm: a fast deterministic SBERT stand-in."""
    out = np.zeros((len(sentences), dim), dtype=np.float32)
    for i, s in enumerate(sentences):
        for w in re.findall(r"[a-z]+", s.lower()):
            out[i, sum(map(ord, w)) % dim] += 1.0
        out[i, 0] += 0.1
    return out / np.linalg.norm(out, axis=1, keepdims=True)


@dataclass
class ToyProblem:
    units: pd.DataFrame  # (n_units,) area, cell_type
    responses: np.ndarray  # (n_windows, T, n_units)
    frames: np.ndarray  # (n_windows,)
    scene_of_frame: np.ndarray  # (n_frames,)
    targets: np.ndarray  # (n_frames, n_patches, dim)
    weights: torch.Tensor  # (n_units, n_patches * dim)
    grid: tuple[int, int]

    @property
    def n_units(self) -> int:
        return len(self.units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """windows (n, T, U) → patches (n, P, D), differentiable."""
        p, d = self.targets.shape[1:]
        return torch.tanh(x.mean(1) @ self.weights).reshape(len(x), p, d)

    def predict(self, mask: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(self.responses) * torch.from_numpy(mask.astype(np.float32))
        return self.forward(x)

    def predict_many(self, masks: np.ndarray) -> torch.Tensor:
        return torch.stack([self.predict(m) for m in masks])

    def narrate(self, patches: torch.Tensor) -> list[str]:
        pooled = patches.float().mean(1).numpy()
        protos = np.stack(
            [self.targets[self.scene_of_frame == s].mean((0, 1)) for s in range(len(SCENES))]
        )
        protos = protos - protos.mean(0)
        sims = (pooled - pooled.mean(0) * 0) @ protos.T
        return [SCENES[i] for i in sims.argmax(1)]

    def captions(self) -> dict[int, list[str]]:
        return {f: [SCENES[s]] for f, s in enumerate(self.scene_of_frame)}


def toy_problem(
    seed: int = 0,
    n_frames: int = 24,
    repeats: int = 2,
    grid: tuple[int, int] = (2, 3),
    dim: int = 8,
) -> ToyProblem:
    rng = np.random.default_rng(seed)
    areas = ["VISp"] * 20 + ["VISl"] * 10 + ["LGd"] * 6 + ["CA1"] * 8
    cell_types = (["PV", "SST", "VIP", None] * 11)[: len(areas)]
    units = pd.DataFrame(
        {
            "area": areas,
            "cell_type": cell_types,
            "probe": "A",
            "depth": np.arange(len(areas)) * 10.0,
            "session_id": "s0",
        },
        index=pd.Index(np.arange(100, 100 + len(areas)), name="unit_id"),
    )
    n_units = len(units)
    n_patches = grid[0] * grid[1]
    scene_of_frame = (np.arange(n_frames) // (n_frames // len(SCENES))) % len(SCENES)
    scene_proto = rng.normal(size=(len(SCENES), n_patches, dim)).astype(np.float32)
    targets = np.tanh(
        scene_proto[scene_of_frame] + 0.1 * rng.normal(size=(n_frames, n_patches, dim))
    ).astype(np.float32)
    tuning = rng.integers(0, len(SCENES), size=n_units)
    gain = np.where(units["area"].to_numpy() == "CA1", 0.0, 1.0)
    frames = np.tile(np.arange(n_frames), repeats)
    resp = rng.normal(scale=0.5, size=(len(frames), 5, n_units)).astype(np.float32)
    resp += (gain * (tuning[None, :] == scene_of_frame[frames][:, None]))[:, None, :].astype(
        np.float32
    ) * 2.0
    # Least-squares readout from tuned units to their scene's prototype.
    x = resp.mean(1)
    y = np.arctanh(np.clip(targets[frames].reshape(len(frames), -1), -0.95, 0.95))
    w, *_ = np.linalg.lstsq(x, y, rcond=None)
    return ToyProblem(
        units, resp, frames, scene_of_frame, targets, torch.from_numpy(w.astype(np.float32)), grid
    )


def toy_inputs(seed: int = 0, **kw):
    """``AnalysisInputs`` over the toy problem (bag-of-words scorer, prototype narrator)."""
    from neurrator.analysis.common import CachedEncoder, CachedNarrator
    from neurrator.analysis.corpus import Corpus
    from neurrator.analysis.inputs import AnalysisInputs
    from neurrator.preprocess.subsets import subset_mask

    tp = toy_problem(seed, **kw)
    encode = CachedEncoder(bow_encode)
    captions = tp.captions()
    ref = {f: encode(c).mean(0) for f, c in captions.items()}

    def reference_score(sentences, frames):
        return np.einsum(
            "nd,nd->n", encode(list(sentences)), np.stack([ref[int(f)] for f in frames])
        )

    rng = np.random.default_rng(seed)
    other = [(f + len(tp.scene_of_frame) // 2) % len(tp.scene_of_frame) for f in tp.frames]
    floor = float(np.mean(reference_score([captions[o][0] for o in other], tp.frames)))

    def encoder(x, mask):
        m = mask.to(x.dtype)
        return tp.forward(x * (m.unsqueeze(-2) if m.dim() == 2 else m))

    narrate = CachedNarrator(tp.narrate, "toy-prototype")
    corpus = Corpus(
        np.repeat(tp.targets, 4, 0)
        + rng.normal(scale=0.05, size=(4 * len(tp.targets),) + tp.targets.shape[1:]).astype(
            np.float32
        ),
        [captions[f % len(tp.targets)] for f in range(4 * len(tp.targets))],
        images=rng.integers(0, 255, size=(4 * len(tp.targets), 12, 16)).astype(np.uint8),
        description="toy corpus",
    )
    return tp, AnalysisInputs(
        units=tp.units,
        windows=torch.from_numpy(tp.responses),
        frames=tp.frames,
        encoder=encoder,
        narrate=narrate,
        narrate_fast=narrate,
        encode=encode,
        references=captions,
        reference_score=reference_score,
        random_caption_floor=floor,
        frame_targets=tp.targets,
        mask=lambda spec: subset_mask(tp.units, spec),
        corpus=corpus,
        grid=tp.grid,
        batch_size=64,
        seed=seed,
        stand_ins={"everything": "toy problem"},
    )
