"""Does ``retrieval+lm`` ever hurt? Both offline narrators on the same predicted patches.

Issue 15 §6: on a fresh session ``retrieval+lm`` scored 0.550 against plain retrieval's 0.745
on the same predictions, because it blended captions of different shots. The narrator now fuses
only captions that agree (same shot, or SBERT cosine ≥ ``narrate.agree_cosine``) and otherwise
returns the best caption verbatim.

Reads a run that has been through ``train`` and ``narrate`` (``narrate/predictions.*``): the
test windows' predicted patches. Narrates the same windows (``--max-windows``, evenly spaced)
with

- ``retrieval``;
- ``retrieval+lm`` (the agreement rule, the default);
- ``retrieval+lm, always fuse`` (``agree_cosine=-1``: the old behaviour, for comparison);

and scores each with SBERT (the offline all-MiniLM-L6-v2) two ways:

- *all references*: mean cosine to every reference caption of the true frame, the bank holding
  every training frame's captions (the project's ``matched`` score);
- *held-out caption*: the bank holds captions 1…k−1 of each training frame and the score is the
  cosine to caption k of the true frame only, so no score rewards copying a reference.

Copy rate (narrations identical to a reference of the true frame) is printed beside.

Run: ``python benchmarks/bench_narrators.py --run runs/demo [--max-windows 600]``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run directory with train/ and narrate/ outputs")
    parser.add_argument("--max-windows", type=int, default=600)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from neurrator import runio
    from neurrator.config import RunConfig
    from neurrator.evaluate.sbert import make_sbert
    from neurrator.narrate import build_caption_bank, build_captioner, build_narrator
    from neurrator.rundir import RunDir

    run = RunDir(args.run)
    config = RunConfig.from_yaml(run.root / "config.yaml")
    split, stimulus, targets = runio.read_split(run), runio.read_stimulus(run), runio.read_targets(run)
    predictions = runio.read_predictions(run)
    rows = np.unique(np.linspace(0, len(predictions.pairs) - 1, min(args.max_windows, len(predictions.pairs))).astype(int))
    patches = torch.from_numpy(predictions.patches[rows].astype(np.float32))
    frames = predictions.pairs[rows, 1]
    captioner = build_captioner(config.narrate, stimulus)
    needed = np.union1d(frames, split.train_frames)
    captions = dict(zip(needed.tolist(), captioner.caption(stimulus.frames[needed], needed)))
    held_in = {f: c[:-1] for f, c in captions.items() if len(c) >= 2}
    sbert = make_sbert()
    load = os.getloadavg()
    print(f"run {run.root} ({'stand-in ' if targets.info.is_stand_in else ''}{targets.info.space_id}; "
          f"captions: {captioner.name}{' (stand-in)' if captioner.is_stand_in else ''}); {len(rows)} test windows; "
          f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")

    def score(sentences, refs_of) -> np.ndarray:
        vectors = sbert.encode(list(sentences))
        out = np.empty(len(sentences), dtype=np.float32)
        for i, f in enumerate(frames):
            refs = sbert.encode(refs_of(int(f)))
            out[i] = float((refs @ vectors[i]).mean())
        return out

    settings = [("retrieval", {"narrator": "retrieval"}),
                ("retrieval+lm", {"narrator": "retrieval+lm"}),
                ("retrieval+lm, always fuse", {"narrator": "retrieval+lm", "agree_cosine": -1.0})]
    print(f"{'narrator':28s} {'all refs':>9s} {'held-out':>9s} {'copy rate':>10s} {'verbatim':>9s} {'s':>6s}")
    for label, override in settings:
        cfg = config.narrate.model_copy(update=override)
        results = []
        for held_out, bank_captions, refs_of in ((False, captions, lambda f: captions[f]),
                                                 (True, held_in, lambda f: captions[f][-1:])):
            bank = build_caption_bank(cfg, targets, bank_captions, split.train_frames)
            narrator = build_narrator(cfg, bank=bank)
            t0 = time.perf_counter()
            sentences = narrator.narrate(patches)
            seconds = time.perf_counter() - t0
            valid = np.array([not held_out or len(captions[int(f)]) >= 2 for f in frames])
            s = score(sentences, refs_of)
            copied = np.mean([sent in captions.get(int(f), []) for sent, f in zip(sentences, frames, strict=True)])
            results.append((float(s[valid].mean()), copied, getattr(narrator, "n_verbatim", len(sentences)), seconds))
        (all_refs, copied, verbatim, seconds), (held_out, _, _, _) = results
        print(f"{label:28s} {all_refs:9.3f} {held_out:9.3f} {copied:10.1%} {verbatim:9d} {seconds:6.1f}", flush=True)
    load = os.getloadavg()
    print(f"load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
