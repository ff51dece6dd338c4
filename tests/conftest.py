"""Shared fixtures.

``tiny_demo_run``: ``neurrator demo`` through the CLI at a tiny scale (same stages and offline
backends as the demo), run once per test session. The end-to-end test checks it; the report
tests render it, so the report is always tested on what the pipeline really writes. Tests
that change a run work on a copy (``tiny_run_copy``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

#: Overrides that shrink ``neurrator demo`` to a test-sized run.
TINY = [
    "data.simulation.n_units=60",
    "data.simulation.movie_repeats=6",
    "data.simulation.scene_repeats=4",
    "encoder.max_epochs=2",
    "encoder.windows_per_epoch=256",
    "encoder.max_minutes=0.5",
    "narrate.max_windows=60",
    "evaluate.n_bootstrap=200",
    "evaluate.controls_max_windows=48",
    "evaluate.benchmark.methods=[neurrator,neurrator_checkpoint,ridge,mlp,pca_knn,cebra-128]",
    "evaluate.benchmark.active_only_methods=[]",
    "evaluate.benchmark.quick_budget.max_steps=20",
    "evaluate.benchmark.quick_budget.validate_every=10",
    "evaluate.benchmark.max_test_windows_quick=60",
    "evaluate.benchmark.n_permutations=100",
    "analysis.max_windows=48",
    "analysis.scaling.sizes=[1,10,all]",
    "analysis.scaling.max_windows=16",
    "analysis.contrasts.n_permutations=20",
    "analysis.sae.epochs=2",
    "analysis.sae.n_bootstrap=100",
    "analysis.neurons.units=6",
    "analysis.neurons.max_windows=8",
    "analysis.neurons.narrated_windows=2",
    "analysis.attribution.max_windows=16",
]


@pytest.fixture(scope="session")
def tiny_demo_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """(run folder, the CLI's completed process) of a tiny ``neurrator demo``.

    Developers may set ``NEURRATOR_TEST_TINY_DEMO=<folder>`` to keep the run in that folder
    and reuse it in later sessions (it is made there when absent; CI never sets it).
    """
    keep = os.environ.get("NEURRATOR_TEST_TINY_DEMO")
    root = Path(keep) if keep else tmp_path_factory.mktemp("e2e")
    record = root / "cli-output.json"
    if record.is_file():
        saved = json.loads(record.read_text())
        return root / "tiny", subprocess.CompletedProcess(saved["args"], 0, saved["stdout"], saved["stderr"])
    root.mkdir(parents=True, exist_ok=True)
    sets = [arg for s in TINY for arg in ("--set", s)]
    out = subprocess.run(
        [sys.executable, "-m", "neurrator.cli", "demo", "--name", "tiny", "--run", str(root / "tiny"),
         "--set", f"cache_dir={root / 'cache'}", *sets],
        capture_output=True, text=True, timeout=1200, cwd=root,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    if keep:
        record.write_text(json.dumps({"args": out.args, "stdout": out.stdout, "stderr": out.stderr}))
    return root / "tiny", out


@pytest.fixture
def tiny_run_copy(tiny_demo_run, tmp_path) -> Path:
    """A private copy of the tiny run (without the simulated NWB files) to change freely."""
    run, _ = tiny_demo_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("*.nwb", "predictions.npy"))
    return copy


@pytest.fixture(scope="module")
def one_torch_thread():
    """CPU results are bit-reproducible for a fixed thread count, so fix it for the module
    (use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
