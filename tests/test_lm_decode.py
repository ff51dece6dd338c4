"""``neurrator lm-decode`` on a simulated session: the planted running relation is recovered above
the shuffled-time control, salience and ablations, the stage's outputs, errors, the report section."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModel, GPT2Config

from neurrator.analysis.salience import SalienceInputs
from neurrator.analysis.salience import run as run_salience
from neurrator.config import RunConfig
from neurrator.core.errors import InputError
from neurrator.core.io import atomic_write_json
from neurrator.data.allen import read_session
from neurrator.data.nwb_write import write_allen_nwb
from neurrator.data.simulate import simulate_session
from neurrator.data.toy import toy_stimuli
from neurrator.encoder.lm_compare import compare_behaviour
from neurrator.preprocess.behaviour import behaviour_targets
from neurrator.preprocess.dataset import build_dataset
from neurrator.preprocess.io import save_dataset, save_split
from neurrator.preprocess.splits import make_split
from neurrator.report.lm_decode import lm_decode_section
from neurrator.rundir import RunDir
from neurrator.stages import run_stage
from neurrator.vision.base import PatchTargets, SpaceInfo

N_FRAMES, N_REPEATS = 120, 20
DECODER = {"seq_bins": 8, "max_steps": 60, "val_every": 20, "lr": 3e-3, "batch_size": 32, "num_threads": 1}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm") / "tiny-<i>gpt2"  # markup in a name the report must escape
    torch.manual_seed(0)
    AutoModel.from_config(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=64, n_positions=32,
                                     bos_token_id=0, eos_token_id=0)).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """A simulated Vip-Cre session (planted running gain) written to NWB, and its ground truth."""
    sim = simulate_session(toy_stimuli(n_frames=N_FRAMES, n_scenes=4), n_units=300, movie_repeats=N_REPEATS,
                           scene_repeats=0, opto_trials=5, genotype="Vip", seed=3)
    path = tmp_path_factory.mktemp("nwb") / "session.nwb"
    write_allen_nwb(sim, path)
    return path, sim.truth


@pytest.fixture(scope="module")
def session(simulated):
    return read_session(simulated[0])


def test_decoder_recovers_running_speed_above_the_shuffled_time_control(session, gpt2):
    split = make_split("repeats", N_REPEATS, N_FRAMES, 0, val_fraction=0.15, test_fraction=0.25)
    dataset = build_dataset([session], "natural_movie_one", split)
    speed = behaviour_targets(session.behaviour(), dataset, "running_speed")
    comp = compare_behaviour(dataset, speed, split, decoder={**DECODER, "backbone": gpt2}, seeds=(0, 1),
                             conditions=("pretrained", "shuffled"))
    runs = comp.per_seed()
    real = runs[runs["condition"] == "pretrained"]["r2"]
    shuffled = runs[runs["condition"] == "shuffled"]["r2"]
    assert real.min() > 0.05 and real.mean() > shuffled.mean() + 0.2
    trace = comp.trace()
    assert np.corrcoef(trace["truth"], trace["predicted_seed_mean"])[0, 1] > 0.3
    tests = comp.tests()
    assert set(tests["condition"]) == {"shuffled"} and tests["mse_difference"].iloc[0] > 0
    summary = comp.summary()
    assert (summary["r2_block_low"] <= summary["r2_block_high"]).all()


def test_salience_ranks_units_and_ablates_against_random(session, simulated, gpt2):
    split = make_split("repeats", N_REPEATS, N_FRAMES, 0, val_fraction=0.15, test_fraction=0.25)
    dataset = build_dataset([session], "natural_movie_one", split)
    speed = behaviour_targets(session.behaviour(), dataset, "running_speed")
    comp = compare_behaviour(dataset, speed, split, decoder={**DECODER, "backbone": gpt2}, seeds=(0,),
                             conditions=("pretrained",), keep=("pretrained", 0), max_test_windows=120)
    model = comp.kept
    truth = (comp.truth - model.meta_.target["mean"]) / model.meta_.target["std"]
    planted = pd.DataFrame(simulated[1]["units"]).set_index("unit_id").loc[dataset.units.index]
    result = run_salience(SalienceInputs(model.model_, dataset.windows(comp.test_pairs), truth, dataset.units,
                                         ig_steps=8, ig_windows=24, n_random=3, fractions=(0.05, 0.25),
                                         planted=planted))
    per_unit = pd.DataFrame(result.results["per_unit"])
    assert len(per_unit) == dataset.n_units and (per_unit["salience"] >= 0).all() and per_unit["salience"].max() > 0
    ablation = result.summary["ablation"]
    assert [r["k"] for r in ablation] == sorted(r["k"] for r in ablation)
    assert ablation[-1]["top_k_increase"] > ablation[-1]["random_increase"]  # the ranking carries information
    areas = {r["area"] for r in result.summary["by_area"]}
    assert areas == set(dataset.units["area"]) and result.figures["salience.png"][:4] == b"\x89PNG"
    assert "VIP" in {r["cell_type"] for r in result.summary["by_cell_type"]}
    # against the planted truth: salience follows the running gain; VIP units (β ≈ 1) carry more than their share
    assert result.summary["planted"]["spearman_running_beta"] > 0.1
    vip = next(r for r in result.summary["by_true_cell_type"] if r["true_cell_type"] == "VIP")
    assert vip["total_salience_share"] > 1.5 * vip["unit_share"] and vip["mean_running_beta"] > 0.7


@pytest.fixture
def run_dir(tmp_path, session, simulated, gpt2, monkeypatch):
    split = make_split("repeats", N_REPEATS, N_FRAMES, 0)
    dataset = build_dataset([session], "natural_movie_one", split)
    overrides = {"lm_decode.backbone": gpt2, "lm_decode.seeds": 2, "lm_decode.shuffled_seeds": 1,
                 "lm_decode.max_steps": 12, "lm_decode.val_every": 6, "lm_decode.ig_steps": 4,
                 "lm_decode.ig_windows": 16, "lm_decode.ablation_draws": 2, "lm_decode.max_test_windows": 120,
                 "lm_decode.progress": False, "lm_decode.seq_bins": 6}
    config = RunConfig().with_overrides(overrides)
    run = RunDir.create(tmp_path / "run", config)
    save_dataset(dataset, run.stage_dir("ingest") / "dataset")
    save_split(split, run.stage_dir("ingest") / "split.json")
    simulate = run.stage_dir("simulate")
    simulate.mkdir(parents=True, exist_ok=True)
    (simulate / "sessions.json").write_text(json.dumps({"sessions": [{"file": "session_0.nwb",
                                                                       "session_id": str(session.session_id)}]}))
    atomic_write_json(simulate / "session_0.truth.json", simulated[1])
    rng = np.random.default_rng(0)
    targets = PatchTargets(rng.normal(size=(N_FRAMES, 4, 3)).astype(np.float16),
                           SpaceInfo("toy-space", (2, 2), 3, "toy", True), "hash")
    stimulus = replace(toy_stimuli(n_frames=N_FRAMES)["natural_movie_one"],
                       captions={f: [f"a scene of shot {f // 20}"] for f in range(N_FRAMES)})  # for narrate
    monkeypatch.setattr("neurrator.runio.read_targets", lambda run, **kw: targets)
    monkeypatch.setattr("neurrator.runio.read_stimulus", lambda run: stimulus)
    return run, config


def test_stage_writes_tables_salience_checkpoints_and_a_report_section(run_dir):
    from neurrator import runio
    from neurrator.encoder.lm_estimator import LMDecoder

    run, config = run_dir
    result = run_stage("lm_decode", run, config)
    assert "running_speed" in result.summary and "pupil_area" in result.summary
    folder = run.stage_dir("lm_decode")
    outputs = runio.read_lm_decode(run)
    summary, tables = outputs["summary"], outputs["tables"]
    runs = tables["running_speed_runs"]
    assert set(runs["condition"]) == {"pretrained", "random", "scratch", "ridge", "shuffled"}
    assert runs.groupby("condition").size().to_dict() == {"pretrained": 2, "random": 2, "scratch": 2, "ridge": 2,
                                                          "shuffled": 1}
    assert set(tables["pupil_area_runs"]["condition"]) == {"pretrained", "random", "ridge"}
    assert "running_speed" in summary["headline"] and summary["settings"]["n_units"] == run_dir_units(run)
    assert outputs["salience"] is not None and (folder / "salience" / "salience.png").is_file()
    assert "spearman_running_beta" in summary["salience"]["planted"]  # the simulated session's ground truth
    assert set(pd.DataFrame(summary["vision"]["runs"])["condition"]) == {"pretrained", "random"}
    decoder = LMDecoder.load(folder / "checkpoint_running_speed")
    assert decoder.meta_.target["name"] == "running_speed"
    section = lm_decode_section(outputs, outputs["salience"].figures["salience.png"])
    titles = " ".join(t.title for t in section.tables)
    assert "pretrained against each control" in titles and "Salience by area" in titles and "Vision head" in titles
    assert "Salience by true cell type (simulator ground truth)" in titles
    assert any("recorded running speed" in f.title for f in section.figures)
    run_stage("report", run, config)
    page = (run.stage_dir("report") / "report.html").read_text()
    assert "Language-model decoders" in page and "tiny-&lt;i&gt;gpt2" in page and "tiny-<i>gpt2" not in page

    # the vision head enters the narration pipeline
    run_stage("narrate", run, config.with_overrides({"narrate.decoder": "lm_decoder", "narrate.narrator": "retrieval",
                                                     "narrate.max_windows": 8}))
    predictions, narrations = runio.read_predictions(run), runio.read_narrations(run)
    assert predictions.checkpoint.startswith("lm_decode/vision@") and len(narrations.sentences) == 8
    dataset = runio.read_dataset(run)
    vision = runio.read_lm_decoder(run, "vision", dataset, runio.read_targets(run))
    expected = vision.predict(dataset, predictions.pairs[:5], dtype=torch.float16).numpy()
    np.testing.assert_allclose(predictions.patches[:5].astype(np.float32), expected.astype(np.float32), atol=2e-3)
    with pytest.raises(InputError, match="not patches of a vision space"):
        runio.read_lm_decoder(run, "running_speed", dataset, runio.read_targets(run))


def run_dir_units(run) -> int:
    from neurrator import runio

    return runio.read_dataset(run).n_units


def test_stage_errors_are_one_line(run_dir, tmp_path, session):
    run, config = run_dir
    with pytest.raises(InputError, match="selects no unit") as err:
        run_stage("lm_decode", run, config.with_overrides({"lm_decode.units": "area:VISam+cell_type:PV+area:LGd"}))
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="not a language model"):
        clip = tmp_path / "clip"
        from transformers import CLIPVisionConfig

        AutoModel.from_config(CLIPVisionConfig(num_hidden_layers=1, hidden_size=16, num_attention_heads=2,
                                               intermediate_size=32, image_size=32, patch_size=16)).save_pretrained(clip)
        run_stage("lm_decode", run, config.with_overrides({"lm_decode.backbone": str(clip)}))
    # a session without running speed, when behaviour is asked for
    source = str(session.source)
    copy = tmp_path / "no_running.nwb"
    copy.write_bytes(Path(source).read_bytes())
    with h5py.File(copy, "a") as f:
        del f["processing/running"]
    dataset = runio_dataset(run)
    dataset.meta["sessions"][0]["source"] = str(copy)
    save_dataset(dataset, run.stage_dir("ingest") / "dataset")
    with pytest.raises(InputError, match="has no running speed") as err:
        run_stage("lm_decode", run, config)
    assert "no_running.nwb" in str(err.value) and "\n" not in str(err.value)


def runio_dataset(run):
    from neurrator import runio

    return runio.read_dataset(run)
