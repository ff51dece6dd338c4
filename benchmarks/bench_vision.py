"""Vision benchmarks: embedding speed and the memory footprint of building the patch-target cache.

Run: ``python benchmarks/bench_vision.py`` (``--quick`` embeds fewer frames).

1. Frames per second, side by side on the embedded demo movie (304 × 608 grayscale frames):
   the offline default space (oriented-energy) and a randomly initialised CLIP ViT-B/32-sized tower
   (224 px, 12 layers × 768) run through the real CLIP code path (save_pretrained → from_pretrained,
   LLaVA preprocessing). ViT-L/14-336, the paper's tower, costs roughly 8× ViT-B/32 per frame more.
2. Peak RSS of a fresh process building a 900 × 576 × 1024 float16 cache entry (the ViT-L/14-336
   shape on natural_movie_one) with a cheap synthetic space, against the entry's size on disk.

Timings share 2 CPU cores with other jobs: treat them as noisy lower bounds on speed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

RSS_CHILD = r"""
import json, sys, time
import numpy as np, torch
from neurrator.data.types import Stimulus
from neurrator.vision.base import SpaceInfo
from neurrator.vision.cache import get_or_build_targets

class SyntheticViTL:
    # ViT-L/14-336-shaped targets (576 x 1024) at negligible compute cost.
    info = SpaceInfo("bench/synthetic-576x1024", grid=(24, 24), dim=1024, layer="synthetic", is_stand_in=True)
    def embed(self, frames, *, batch_size=32, progress=False):
        g = torch.Generator().manual_seed(int(frames[:, 0, 0].sum()))
        return torch.randn(len(frames), 576, 1024, generator=g)

n_frames, cache_dir = int(sys.argv[1]), sys.argv[2]
frames = np.arange(n_frames * 64, dtype=np.int64).reshape(n_frames, 8, 8).astype(np.uint8)
stimulus = Stimulus("natural_movie_one", frames, 30.0)
def peak_rss_kb():
    # VmHWM is this process's own high-water mark (ru_maxrss can carry the parent's across exec).
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))

before = peak_rss_kb()
t0 = time.perf_counter()
targets = get_or_build_targets(SyntheticViTL(), stimulus, cache_dir, batch_size=32, verify="size")
seconds = time.perf_counter() - t0
after = peak_rss_kb()
print(json.dumps({"rss_before_kb": before, "rss_peak_kb": after, "seconds": seconds,
                  "shape": list(targets.patches.shape)}))
"""


def frames_per_second(space, frames: np.ndarray, batch_size: int) -> float:
    space.embed(frames[:2], batch_size=2)  # warm-up (allocator, lazy init)
    t0 = time.perf_counter()
    space.embed(frames, batch_size=batch_size)
    return len(frames) / (time.perf_counter() - t0)


def bench_speed(quick: bool) -> None:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from neurrator.data.stimulus import load_stimulus
    from neurrator.vision.clip import CLIPSpace
    from neurrator.vision.oriented_energy import OrientedEnergySpace

    movie = load_stimulus("natural_movie_one")
    n_default = 300 if quick else 900
    n_clip = 16 if quick else 48
    pick = lambda n: movie.frames[np.linspace(0, movie.n_frames - 1, n).astype(int)]

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        b32 = CLIPVisionConfig(image_size=224, patch_size=32, hidden_size=768, intermediate_size=3072,
                               num_hidden_layers=12, num_attention_heads=12)
        CLIPVisionModel(b32).save_pretrained(tmp)
        spaces = [
            ("oriented-energy (default, 576x64)", OrientedEnergySpace(), n_default, 32),
            ("CLIP ViT-B/32 random init (49x768, 224 px)", CLIPSpace(tmp, local_files_only=True), n_clip, 16),
        ]
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for name, space, n, batch in spaces:
                rows.append((name, threads, n, frames_per_second(space, pick(n), batch_size=batch)))
    print("embedding speed on the demo movie (304x608 uint8 frames), frames/s:")
    for name, threads, n, fps in rows:
        print(f"  {name:44s} {threads} thread(s) {fps:8.1f}  ({n} frames; 900 frames take {900 / fps:6.1f} s)")
    oe_fps, clip_fps = (max(fps for nm, _, _, fps in rows if nm == name) for name, *_ in spaces)
    print(f"  best default / best ViT-B/32: {oe_fps / clip_fps:.1f}x")


def bench_cache_rss(n_frames: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, "-c", RSS_CHILD, str(n_frames), tmp],
                             capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        entry = next(Path(tmp, "targets").iterdir())
        disk = sum(p.stat().st_size for p in entry.iterdir())
    peak, before = result["rss_peak_kb"] * 1024, result["rss_before_kb"] * 1024
    print(f"patch-target cache build, {result['shape']} float16, synthetic space, fresh process:")
    print(f"  cache entry on disk        {disk / 2**20:8.1f} MiB")
    print(f"  peak RSS of the process    {peak / 2**20:8.1f} MiB  (after imports, before build: {before / 2**20:.1f} MiB)")
    print(f"  growth of peak RSS in build {(peak - before) / 2**20:7.1f} MiB  (one batch of 32 frames in float32 is "
          f"{32 * 576 * 1024 * 4 / 2**20:.0f} MiB)")
    print(f"  peak RSS / cache size      {peak / disk:8.2f}")
    print(f"  build time                 {result['seconds']:8.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="embed fewer frames")
    args = parser.parse_args()
    bench_speed(args.quick)
    bench_cache_rss(900)


if __name__ == "__main__":
    main()
