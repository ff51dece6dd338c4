"""Docs that run: the README's shell blocks are executed, command by command, with bash.

"Your own Allen session" runs end to end on the real-model path: tiny CLIP, LLaVA and BLIP-2
models built from configs with random weights and saved to local folders (``tests/tiny_models``),
so the user's ``from_pretrained`` path is the one exercised, on a small Allen-layout NWB file
ingested as a recording with its stimulus template. The README text is run as written except
for three things, all visible below: its example paths and hub ids point at those local files
and models, ``neurrator`` is a bash function that appends CPU and scale-down overrides
(``--set`` given later wins), and the caption options A and B, which are alternatives, run in
turn (A through ingest, B through the report).

The set-up block's ``make`` targets are checked with ``make -n`` (``make demo`` is
``neurrator demo``, which ``test_end_to_end.py`` runs at tiny scale; CI runs ``make test``).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY
from tiny_models import save_tiny_blip2, save_tiny_clip, save_tiny_llava

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

#: Appended to every stage command: CPU, and a scaled-down paper preset and evaluation.
OVERRIDES = [
    "vision.device=cpu", "encoder.device=cpu", "narrate.device=cpu", "narrate.dtype=float32",
    "preprocess.val_fraction=0.2", "preprocess.test_fraction=0.2",
    "encoder.d_model=32", "encoder.n_heads=2", "encoder.ff_dim=64", "encoder.conv_channels=8",
    "encoder.temporal_layers=1", "encoder.patch_layers=1", "encoder.max_epochs=2", "encoder.windows_per_epoch=128",
    "encoder.batch_size=32", "narrate.max_new_tokens=6", "narrate.batch_size=8",
    *(s for s in TINY if not s.startswith("data.simulation")),
]
STAGE_COMMANDS = ("simulate", "ingest", "embed", "train", "narrate", "evaluate", "benchmark", "analyze", "report", "sweep")


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def commands(block: str) -> list[str]:
    """The block's lines with backslash continuations joined; comments kept (bash skips them)."""
    return [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def _prelude() -> str:
    extra = " ".join(shlex.quote(f"--set={o}") for o in OVERRIDES)
    stages = "|".join(STAGE_COMMANDS)
    return (
        "set -euo pipefail\n"
        f"neurrator() {{ local cmd=$1; shift; case $cmd in {stages}) "
        f"{shlex.quote(sys.executable)} -m neurrator.cli \"$cmd\" \"$@\" {extra};; "
        f"*) {shlex.quote(sys.executable)} -m neurrator.cli \"$cmd\" \"$@\";; esac; }}\n"
    )


def test_setup_block_make_targets_exist():
    setup = commands(shell_blocks(README.read_text())[0])
    targets = [line.split()[1] for line in setup if line.startswith("make ")]
    assert targets == ["demo", "test"]
    for target in targets:
        out = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
    assert "neurrator demo" in subprocess.run(["make", "-n", "demo"], cwd=ROOT, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def allen_session(tmp_path_factory):
    """A small recorded-style session: NWB, its 40-frame 304 × 608 template, captions."""
    from neurrator.data.nwb_write import write_allen_nwb
    from neurrator.data.simulate import simulate_session
    from neurrator.data.toy import toy_stimuli

    root = tmp_path_factory.mktemp("allen")
    stimuli = toy_stimuli(n_frames=40)
    # Four shots of ten frames; the camera pans within a shot so that no two frames are equal.
    movie = stimuli["natural_movie_one"]
    panned = np.stack([np.roll(frame, 6 * (f % 10), axis=1) for f, frame in enumerate(movie.frames)])
    stimuli["natural_movie_one"] = dataclasses.replace(movie, frames=panned)
    sim = simulate_session(stimuli, n_units=60, movie_repeats=6, scene_repeats=0, opto_trials=5, seed=1)
    nwb = write_allen_nwb(sim, root / "session_715093703.nwb")
    templates = root / "allen_templates"
    templates.mkdir()
    np.save(templates / "natural_movie_one.npy", stimuli["natural_movie_one"].frames)
    captions = root / "nm1_captions.json"
    words = ["a dark room", "a person on a road", "a parked car", "a dog by a tree"]
    captions.write_text(json.dumps({str(f): [f"{words[f // 10]} in shot {f // 10}", words[f // 10]] for f in range(40)}))
    return {"NWB": nwb, "STIM": templates, "CAPTIONS": captions}


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    llava = save_tiny_llava(root / "llava")
    return {"llava-hf/llava-1.5-7b-hf": llava, "openai/clip-vit-large-patch14-336": save_tiny_clip(llava, root / "clip"),
            "Salesforce/blip2-opt-2.7b": save_tiny_blip2(root / "blip2")}


def _allen_block() -> list[str]:
    return commands(shell_blocks(section("Your own Allen session"))[0])


def _localised(lines: list[str], files: dict[str, Path], models: dict[str, Path], run: Path) -> list[str]:
    out = []
    for line in lines:
        if line.startswith("make "):
            continue  # the installed environment runs the tests
        name = line.split("=", 1)[0]
        if name in files:
            line = f"{name}={files[name]}"
        elif name == "R":
            line = f"R={run}"
        for hub_id, folder in models.items():
            line = line.replace(hub_id, str(folder))
        out.append(line)
    return out


def _run_bash(lines: list[str], cwd: Path) -> subprocess.CompletedProcess:
    script = _prelude() + "\n".join(lines) + "\n"
    return subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=1800)


def _option(lines: list[str], letter: str) -> int:
    """Index of the command following the README's ``#    <letter>.`` comment."""
    marker = next(i for i, line in enumerate(lines) if re.match(rf"#\s+{letter}\.", line.strip()))
    return marker + 1


@pytest.mark.slow
def test_your_own_allen_session_runs_end_to_end_on_real_model_code(allen_session, tiny_models, tmp_path):
    lines = _allen_block()
    a, b = _option(lines, "A"), _option(lines, "B")
    assert all(lines[i].startswith("neurrator ingest") for i in (a, b))

    # Option A: your own caption JSON, checked at ingest.
    run_a = tmp_path / "runs" / "a"
    out = _run_bash(_localised(lines[: a + 1], allen_session, tiny_models, run_a), tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    stimulus = json.loads((run_a / "ingest" / "stimulus.json").read_text())
    assert stimulus["captions_json"] == str(allen_session["CAPTIONS"]) and not stimulus["is_stand_in"]

    # Option B: BLIP-2 captions at narrate time; then CLIP → paper encoder → LLaVA → … → report.
    run_b = tmp_path / "runs" / "b"
    out = _run_bash(_localised(lines[:a] + lines[a + 1 :], allen_session, tiny_models, run_b), tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    manifest = json.loads((run_b / "manifest.json").read_text())
    assert [s for s, v in manifest["stages"].items() if v["status"] != "done"] == []
    assert not {"session", "stimulus", "vision_space", "narrator", "reference_captions"} & set(manifest["stand_ins"])
    narrate = json.loads((run_b / "narrate" / "summary.json").read_text())
    assert narrate["narrator"] == "llava" and narrate["captioner"]["name"] == "blip2"
    checkpoint = json.loads((run_b / "train" / "checkpoint.json").read_text())
    assert checkpoint["encoder_config"]["head"] == "patches"  # the paper preset's learned patch queries
    assert (run_b / "report" / "report.html").is_file()
    status = out.stdout[out.stdout.rindex("\nstage "):]  # `neurrator status`, the block's last command
    assert "STALE" not in status and status.count("fresh") == 8


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def section(heading: str) -> str:
    """The README text under ``## <heading>…`` up to the next ``## `` heading."""
    text = README.read_text()
    start = text.index(f"## {heading}")
    end = text.find("\n## ", start + 3)
    return text[start:] if end < 0 else text[start:end]


@pytest.mark.slow
def test_python_api_block_runs(tmp_path, monkeypatch):
    """The README's Python block, executed as written in a fresh folder holding the session file
    it names. As for the shell blocks, two calls get scale-down settings: ``run_pipeline``'s config
    is merged with the tiny-demo overrides, and ``Neurrator`` gets a short step budget."""
    import functools

    from neurrator import api
    from neurrator.cli import _parse_overrides
    from neurrator.data.nwb_write import write_allen_nwb
    from neurrator.data.simulate import simulate_session
    from neurrator.data.stimulus import load_stimulus

    stimuli = {"natural_movie_one": load_stimulus("natural_movie_one", cache_dir=tmp_path / "cache")}
    write_allen_nwb(simulate_session(stimuli, n_units=60, movie_repeats=5, scene_repeats=0, opto_trials=10, seed=2),
                    tmp_path / "session_715093703.nwb")
    monkeypatch.chdir(tmp_path)

    run_pipeline = api.run_pipeline

    def tiny_pipeline(config, *args, **kwargs):
        config = api.RunConfig.validated(config).with_overrides(_parse_overrides([*TINY, f"cache_dir={tmp_path / 'cache'}"]))
        return run_pipeline(config, *args, **kwargs)

    monkeypatch.setattr(api, "run_pipeline", tiny_pipeline)
    monkeypatch.setattr(api, "Neurrator", functools.partial(api.Neurrator, max_steps=20, val_every=10, batch_size=16))
    namespace: dict = {}
    exec(compile(python_blocks(section("Python API"))[0], "README.md (Python API)", "exec"), namespace)
    assert namespace["patches"].shape[0] == len(namespace["split"].test)
    assert len(namespace["narrations"]) > 0 and namespace["sae"].name == "sae"
    assert (tmp_path / "runs" / "mine" / "report" / "report.html").is_file()


#: README commands this machine cannot run, and why; their overrides are still checked.
NOT_RUNNABLE_HERE = {
    "--address ray://": "joins an existing Ray cluster",
    "narrate.narrator=vllm": "vLLM needs CUDA",
    "neurrator sweep --run runs/demo --grid grid.yaml ": "a 24-cell encoder sweep over the full demo (the sweep "
    "engine's own tests run it on small grids)",
    "neurrator sweep --run runs/demo --grid bench.yaml ": "a 90-cell benchmark sweep over the full demo "
    "(tests/test_sweep_benchmark.py runs the cell kind on a small run)",
}


def test_scale_blocks_run_or_have_their_settings_checked(allen_session, tmp_path):
    """The scale section: the many-session ingest runs (its two manifest entries pointed at two
    local copies of the test session); commands that need a cluster, CUDA or the full demo have
    their ``--set`` overrides checked by ``neurrator config``."""
    from typer.testing import CliRunner

    from neurrator.cli import app

    lines = [line for block in shell_blocks(section("Scale")) for line in commands(block)]
    second = tmp_path / "session_2.nwb"
    second.write_bytes(allen_session["NWB"].read_bytes())
    runnable = []
    for line in lines:
        reason = next((why for key, why in NOT_RUNNABLE_HERE.items() if key in line), None)
        if reason is None:
            line = line.replace("/data/session_715093703.nwb", str(allen_session["NWB"]))
            runnable.append(re.sub(r"'dandi:[^']*'", str(second), line))
            continue
        pairs = [a for a in shlex.split(line.split("#")[0]) if "=" in a and not a.startswith("--")]
        result = CliRunner().invoke(app, ["config", *(x for p in pairs for x in ("--set", p))])
        assert result.exit_code == 0, f"{line!r} ({reason}): {result.exception}"
    assert any(line.startswith("neurrator ingest") for line in runnable)
    prelude = [f"STIM={allen_session['STIM']}", f"CAPTIONS={allen_session['CAPTIONS']}"]
    out = _run_bash(prelude + [line for line in runnable if not line.startswith("neurrator sweep")], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    index = json.loads((tmp_path / "runs" / "many" / "ingest" / "sessions.json").read_text())
    assert len(index["sessions"]) == 2
    from neurrator.evaluate.methods import BENCHMARK_METHODS
    from neurrator.sweep import SWEEP_CELLS, load_grid

    for name in ("grid.yaml", "bench.yaml"):  # the grid files the block writes are valid, their names known
        grid = load_grid(tmp_path / name)
        assert grid.cell in SWEEP_CELLS.names() and grid.cells()
        assert set(grid.axes.get("method", [])) <= set(BENCHMARK_METHODS.names())
