"""Single-neuron neurration, attribution, and every analysis end to end on a toy problem."""

import json
from dataclasses import replace

import numpy as np
import pydantic
import pytest
import torch
from test_analysis_fakes import toy_inputs, toy_problem

from neurrator.analysis.attribution import gradient_x_input, patch_accuracy
from neurrator.analysis.common import CachedNarrator
from neurrator.analysis.concepts import build_concept_dictionary
from neurrator.analysis.config import ANALYSES, AnalysisConfig
from neurrator.analysis.neurons import choose_units, neurrate_units
from neurrator.analysis.result import AnalysisResult
from neurrator.analysis.suite import SUITE, needed_inputs, select

SMALL = {
    "scaling": {"sizes": [1, 10, "all"], "n_draws": 5},
    "contrasts": {"n_permutations": 9, "concepts": ["a car or vehicle"]},
    "sae": {"expansion": 4, "k": 4, "epochs": 2, "batch_size": 256, "n_bootstrap": 200, "top_k": 5},
    "neurons": {"units": 6, "max_windows": 8},
    "attribution": {"max_windows": 16, "n_targets": 3},
    "dina": {"max_steps": 40, "val_every": 20, "k_units": [4, 16], "n_random": 2, "max_windows": 16},
}
#: The toy session's encoder architecture (the dina analysis fits its towers with it).
TINY_ENCODER = {"d_model": 32, "n_heads": 2, "ff_dim": 64, "conv_channels": 16, "unit_bottleneck": 16, "batch_size": 32, "lr": 2e-3,
                    "contrastive_dim": 16}


def test_predict_many_equals_one_mask_at_a_time():
    _, inputs = toy_inputs()
    rng = np.random.default_rng(0)
    masks = rng.random((3, inputs.n_units)) > 0.5
    many = inputs.predict_many(masks)
    for m, mask in enumerate(masks):
        torch.testing.assert_close(many[m], inputs.predict(mask))


def test_leave_one_out_shift_is_larger_for_tuned_units():
    tp = toy_problem()
    narrate = CachedNarrator(tp.narrate, "toy")
    res = neurrate_units(
        range(tp.n_units),
        tp.predict_many,
        narrate,
        tp.n_units,
        units_table=tp.units,
        frames=tp.frames,
        units_per_batch=16,
        narrated_windows=12,
    )
    shift = {u.unit_id: u.loo_shift for u in res.units}
    areas = tp.units["area"].to_numpy()
    visual = np.mean([shift[i] for i, a in zip(tp.units.index, areas, strict=True) if a != "CA1"])
    hippo = np.mean([shift[i] for i, a in zip(tp.units.index, areas, strict=True) if a == "CA1"])
    assert visual > 2 * hippo
    assert len(res.units) == tp.n_units and res.units_per_second > 0
    assert res.units[0].example["all"] and res.units[0].cell_type == "PV"
    assert res.units[3].cell_type is None


def test_gradient_x_input_of_a_linear_map_is_analytic():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(10, 4, 6)).astype(np.float32))
    w = torch.from_numpy(rng.normal(size=(6, 2 * 3)).astype(np.float32))

    def forward(v):
        return (v.mean(1) @ w).reshape(len(v), 2, 3)

    imp = gradient_x_input(forward, x, lambda p: p.mean(1), batch_size=4)  # targets: 3 dims
    expected = (x.mean(1).mean(0)[:, None] * w.reshape(6, 2, 3).mean(1)).T.numpy()
    np.testing.assert_allclose(imp, expected, rtol=1e-4, atol=1e-6)


def test_patch_accuracy_perfect_and_bad():
    rng = np.random.default_rng(0)
    true = rng.normal(size=(20, 6, 4)).astype(np.float32)
    cos, r2 = patch_accuracy(true, true)
    np.testing.assert_allclose(cos, 1.0, atol=1e-6)
    np.testing.assert_allclose(r2, 1.0, atol=1e-6)
    cos, r2 = patch_accuracy(np.broadcast_to(true.mean(0), true.shape), true)
    np.testing.assert_allclose(r2, 0.0, atol=1e-5)


def test_choose_units_spreads_over_areas():
    tp = toy_problem()
    pos = choose_units(tp.units, 8, seed=0)
    assert len(pos) == 8 and len(set(tp.units["area"].iloc[pos])) == 4
    assert set(tp.units["cell_type"].iloc[choose_units(tp.units, 16, seed=0)].dropna()) == {
        "PV",
        "SST",
        "VIP",
    }
    assert len(choose_units(tp.units, "all")) == tp.n_units


def _toy_with_concepts(config: AnalysisConfig, dictionary=None):
    from neurrator.analysis.inputs import SessionInputs
    from neurrator.encoder.synthetic import synthetic_problem

    _, inputs = toy_inputs()
    if dictionary is None:
        dictionary = build_concept_dictionary(inputs.corpus, config.sae, inputs.encode, seed=0)
    dataset, targets, split = synthetic_problem(n_units=44, n_frames=48, n_repeats=5, seed=1)
    session = SessionInputs(dataset, split, targets, TINY_ENCODER)
    return replace(inputs, concepts=dictionary, session=session)


@pytest.fixture(scope="module")
def suite_results():
    """Every analysis of the suite, in suite order, on the toy problem (one concept dictionary)."""
    config = AnalysisConfig.model_validate(SMALL)
    inputs = _toy_with_concepts(config)
    return config, inputs.concepts, {a.name: a.run(inputs, config) for a in SUITE}


def test_every_analysis_runs_on_the_toy_problem_and_round_trips(tmp_path, suite_results):
    _, _, results = suite_results
    assert [a.name for a in SUITE] == list(ANALYSES) == list(results)
    for name, result in results.items():
        assert result.name == name and result.line
        assert result.inputs["n_units"] == 44 and result.inputs["stand_ins"] == {"everything": "toy problem"}
        result.save(tmp_path / name)
        loaded = AnalysisResult.load(tmp_path / name)
        assert loaded.summary == json.loads(json.dumps(result.summary))
        assert loaded.results == json.loads(json.dumps(result.results))
        assert loaded.inputs == json.loads(json.dumps(result.inputs)) and loaded.line == result.line
        assert loaded.figures.keys() == result.figures.keys()
        assert result.figures and all(len(png) > 1000 for png in result.figures.values())
        assert not [p for p in (tmp_path / name).iterdir() if p.name.startswith(".")]  # no temp files left
    scaling = results["scaling"].summary
    # Crossings are counted against the other-shot floor (SBERT gain over the shuffled pairing).
    assert scaling["crossing_points"]["V1"]["sbert_gain"] is not None and "sbert" not in scaling["crossing_points"]["V1"]
    assert scaling["crossing_points"]["hippocampus"]["sbert_gain"] is None  # CA1 carries nothing here
    v1 = {p["N"]: p["sbert"] for p in scaling["points"] if p["pool"] == "V1"}
    assert v1["all"] > v1["1"]
    sae = results["sae"].summary
    assert 0 <= sae["sae"]["dead_fraction"] <= 1 and sae["sae"]["l0"] <= 4
    assert (tmp_path / "sae" / "sae" / "cfg.json").is_file()
    assert AnalysisResult.load(tmp_path / "sae").files.keys() == {"sae/cfg.json", "sae/sae_weights.safetensors"}
    assert len(results["neurons"].results["units"]) == 6 and results["neurons"].results["units"][0]["features"]
    assert results["attribution"].summary["target_kind"] == "sae"


def test_analyses_share_no_state_any_order_gives_the_same_results(suite_results):
    """Each analysis alone, in reverse order, on fresh inputs: the same results as the suite's."""
    config, dictionary, forward = suite_results
    inputs = _toy_with_concepts(config, dictionary)
    for analysis in reversed(SUITE):
        alone = analysis.run(inputs, config)
        drop = {"units_per_second"}  # a timing
        assert ({k: v for k, v in alone.summary.items() if k not in drop}
                == {k: v for k, v in forward[analysis.name].summary.items() if k not in drop}), analysis.name


def test_suite_builds_only_the_inputs_the_selected_analyses_read():
    config = AnalysisConfig.model_validate(SMALL)
    assert [a.name for a in select(["attribution", "scaling"])] == ["scaling", "attribution"]
    assert needed_inputs(select(["scaling", "similarity", "contrasts"]), config) == frozenset()
    assert needed_inputs(select(["neurons"]), config) == {"corpus", "concepts"}
    dims = AnalysisConfig.model_validate({**SMALL, "attribution": {"targets": "dims"}})
    assert needed_inputs(select(["attribution"]), dims) == frozenset()
    assert needed_inputs(select(["attribution"]), config) == {"corpus", "concepts"}
    assert needed_inputs(select(["dina"]), config) == {"session"}


def test_config_rejects_unknown_analysis():
    with pytest.raises(pydantic.ValidationError):
        AnalysisConfig.model_validate({"analyses": ["nope"]})


def test_read_image_corpus_folder_array_and_captions(tmp_path):
    from skimage import io

    from neurrator.analysis.corpus import read_image_corpus
    from neurrator.core.errors import InputError

    folder = tmp_path / "images"
    folder.mkdir()
    io.imsave(folder / "a.png", np.full((20, 30), 200, np.uint8), check_contrast=False)
    io.imsave(folder / "b.png", np.zeros((10, 10, 3), np.uint8), check_contrast=False)
    (tmp_path / "caps.json").write_text(
        json.dumps({"a.png": ["a bright wall"], "b.png": "darkness"})
    )
    images, captions = read_image_corpus(folder, tmp_path / "caps.json", size=16)
    assert images.shape == (2, 16, 16, 3) and images.dtype == np.uint8 and images[0].min() == 200
    assert captions == [["a bright wall"], ["darkness"]]
    np.save(tmp_path / "arr.npy", np.zeros((3, 8, 8), np.uint8))
    images, captions = read_image_corpus(tmp_path / "arr.npy")
    assert images.shape == (3, 8, 8) and captions == [[], [], []]
    (tmp_path / "bad.json").write_text(json.dumps({"c.png": ["?"]}))
    with pytest.raises(InputError, match="names none of the 2 items"):
        read_image_corpus(folder, tmp_path / "bad.json")
    with pytest.raises(InputError, match="folder of images"):
        read_image_corpus(tmp_path / "caps.json")


def test_shuffled_partners_pair_across_shots():
    from neurrator.analysis.scaling import shuffled_partners

    frames = np.array([0, 1, 2, 3, 4, 5, 0, 1])
    shots = np.array([0, 0, 1, 1, 2, 2])
    partner = shuffled_partners(frames, shots, seed=0)
    assert (shots[frames[partner]] != shots[frames]).all()
    assert sorted(partner.tolist()) == list(
        range(len(frames))
    )  # a permutation: constant narrations gain 0
    single = shuffled_partners(frames, np.zeros(6, int), seed=0)  # one shot: pair across frames
    assert (frames[single] != frames).all()
