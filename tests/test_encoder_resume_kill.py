"""A training process killed with SIGKILL and restarted ends exactly where an uninterrupted one does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import torch
    torch.set_num_threads(1)
    from safetensors.torch import save_file
    from neurrator.encoder import Neurrator
    from neurrator.encoder.synthetic import synthetic_problem

    resume_dir, out = sys.argv[1], sys.argv[2]
    dataset, targets, split = synthetic_problem(n_units=30, n_frames=48, n_repeats=5, n_patches=9, dim=6, seed=3)
    est = Neurrator(
        seed=7, d_model=32, n_heads=2, ff_dim=64, conv_channels=16, unit_bottleneck=16, basis_rank=6,
        basis_hidden=32, batch_size=32, windows_per_epoch=128, max_epochs=6, max_steps=0, val_every=3, progress=False,
    ).fit(dataset, targets, split, resume_dir=resume_dir, on_validation=lambda state: time.sleep(0.4))
    save_file({k: v.contiguous() for k, v in est.model_.state_dict().items()}, out + ".safetensors")
    json.dump([h["val_metric"] for h in est.history_], open(out + ".json", "w"))
    """
)


def _run(script, *args) -> None:
    subprocess.run([sys.executable, str(script), *map(str, args)], check=True, timeout=120)


@pytest.mark.slow
def test_sigkill_then_restart_reaches_the_same_final_state(tmp_path):
    from safetensors.torch import load_file

    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    _run(script, tmp_path / "resume_a", tmp_path / "a")

    resume_b = tmp_path / "resume_b"
    proc = subprocess.Popen([sys.executable, str(script), str(resume_b), str(tmp_path / "b")])
    deadline = time.monotonic() + 90
    epoch = 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            epoch = json.loads((resume_b / "state.json").read_text())["state"]["epoch"]
        except (OSError, ValueError, KeyError):
            epoch = 0
        if epoch >= 2:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (tmp_path / "b.json").exists()
    assert 2 <= epoch < 6

    _run(script, resume_b, tmp_path / "b")  # restart: resumes from the last finished epoch
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads((tmp_path / "b.json").read_text())
    weights_a, weights_b = load_file(str(tmp_path / "a.safetensors")), load_file(str(tmp_path / "b.safetensors"))
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:
        assert (weights_a[key] == weights_b[key]).all(), key
