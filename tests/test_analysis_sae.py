"""TopK SAE: training quality, exact sparsity, persistence, pretrained loading, concept dictionary."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from scipy import stats
from test_analysis_fakes import bow_encode

from neurrator.analysis.common import single_threaded
from neurrator.analysis.concepts import (
    bootstrap_stability,
    concept_direction,
    label_features,
    rank_population_features,
    validate_concepts,
)
from neurrator.analysis.config import SAEConfig
from neurrator.analysis.sae import (
    SAE_BACKENDS,
    SparseAutoencoder,
    TopKTrainConfig,
    evaluate_sae,
    mean_codes,
    train_topk_sae,
)
from neurrator.core.errors import InputError


def _sparse_data(n=3000, d=16, atoms=24, k=3, seed=0):
    rng = np.random.default_rng(seed)
    dictionary = rng.normal(size=(atoms, d))
    codes = np.zeros((n, atoms))
    for i in range(n):
        codes[i, rng.choice(atoms, k, replace=False)] = rng.uniform(0.5, 2.0, k)
    return (codes @ dictionary + 3.0).astype(np.float32)


@pytest.fixture(scope="module")
def trained():
    x = _sparse_data(n=2000)
    with single_threaded():
        sae, log = train_topk_sae(
            x, TopKTrainConfig(d_sae=48, k=4, epochs=4, batch_size=128, lr=3e-3, seed=0)
        )
    return x, sae, log


def test_topk_sae_learns_sparse_data(trained):
    x, sae, log = trained
    m = evaluate_sae(sae, x)
    assert m.explained_variance > 0.7
    assert m.l0 == pytest.approx(4.0, abs=0.05)  # TopK: at most k active, ReLU may zero a few
    assert 0.0 <= m.dead_fraction < 0.5
    assert log[-1]["mse_per_dim"] < log[0]["mse_per_dim"]


def test_training_is_reproducible():
    x = _sparse_data(n=400)
    cfg = TopKTrainConfig(d_sae=16, k=2, epochs=2, batch_size=64, seed=3)
    with single_threaded():
        a, _ = train_topk_sae(x, cfg)
        b, _ = train_topk_sae(x, cfg)
    torch.testing.assert_close(a.W_dec, b.W_dec)


def test_save_and_load_roundtrip(trained, tmp_path):
    x, sae, _ = trained
    sae.save_pretrained(tmp_path / "sae")
    loaded = SparseAutoencoder.from_pretrained(tmp_path / "sae")
    assert loaded.k == 4 and loaded.d_sae == 48
    np.testing.assert_allclose(loaded.encode_batched(x[:50]), sae.encode_batched(x[:50]), atol=1e-6)
    codes = mean_codes(sae, x[:60].reshape(10, 6, -1))
    assert codes.shape == (10, 48)


def test_loads_saelens_style_relu_sae_and_rejects_bad_folders(tmp_path):
    folder = tmp_path / "pretrained"
    folder.mkdir()
    save_file(
        {
            "W_enc": torch.randn(8, 32),
            "W_dec": torch.randn(32, 8),
            "b_enc": torch.zeros(32),
            "b_dec": torch.zeros(8),
        },
        folder / "sae_weights.safetensors",
    )
    (folder / "cfg.json").write_text(
        json.dumps({"d_in": 8, "d_sae": 32, "architecture": "standard"})
    )
    sae = SparseAutoencoder.from_pretrained(folder)
    assert sae.k is None and (sae.encode(torch.randn(5, 8)) >= 0).all()
    cfg = SAEConfig(backend="pretrained", path=folder)
    assert (
        SAE_BACKENDS.create("pretrained", config=cfg, features=np.zeros((2, 8), np.float32)).d_sae
        == 32
    )
    with pytest.raises(InputError, match="vision space has dim"):
        SAE_BACKENDS.create("pretrained", config=cfg, features=np.zeros((2, 9), np.float32))
    (folder / "cfg.json").write_text(json.dumps({"architecture": "topk"}))
    with pytest.raises(InputError, match="no k"):
        SparseAutoencoder.from_pretrained(folder)
    with pytest.raises(InputError, match="cfg.json"):
        SparseAutoencoder.from_pretrained(tmp_path)


def test_ranking_unique_and_bootstrap_stability():
    rng = np.random.default_rng(0)
    n_bins, d = 40, 30
    base = rng.uniform(0, 0.1, size=(n_bins, d))
    acts = {p: base + rng.uniform(0, 0.01, size=(n_bins, d)) for p in ("PV", "SST", "VIP")}
    acts["PV"][:, 0] += 1.0  # shared by PV and SST
    acts["SST"][:, 0] += 1.0
    acts["VIP"][:, 7] += 2.0  # VIP only; silent elsewhere so no other top-k can pick it up
    acts["PV"][:, 7] = acts["SST"][:, 7] = 0.0
    means = {p: a.mean(0) for p, a in acts.items()}
    ranking = rank_population_features(means, top_k=3)
    assert 7 in ranking["VIP"].unique and 0 not in ranking["PV"].unique
    assert ranking["VIP"].unique[0] == 7
    boot = bootstrap_stability(acts, ranking, top_k=3, n_resamples=500, seed=0)
    assert boot.unique_survival["VIP"][7] == 1.0
    assert sum(boot.overlap_histogram["VIP"]) == 500
    # The vectorised resampling equals an explicit loop over the same resamples.
    rng2 = np.random.default_rng(0)
    weights = rng2.multinomial(n_bins, np.full(n_bins, 1 / n_bins), size=500) / n_bins
    loop = [
        len(set(np.argsort(-(w @ acts["PV"]))[:3]) & set(ranking["PV"].top)) / 3 for w in weights
    ]
    assert boot.overlap_mean["PV"] == pytest.approx(np.mean(loop))


def test_labels_and_concept_validation():
    captions = [
        ["a red car on the road"],
        ["a red car parked"],
        ["a dark room"],
        ["a cat on a sofa"],
    ] * 3
    image_acts = np.zeros((12, 4))
    image_acts[[0, 1, 4], 0] = [3.0, 2.0, 1.0]
    labels = label_features([0, 3], image_acts, captions, bow_encode, n_images=3)
    assert "car" in labels[0].label and labels[0].top_images == [0, 1, 4]
    assert labels[3].top_images == [] and "never active" in labels[3].label

    pooled = np.zeros((12, 3))
    pooled[[0, 1, 4, 5, 8, 9], 0] = 1.0  # car images load on axis 0
    direction, anchors = concept_direction("a car", pooled, captions, bow_encode, n_images=4)
    assert direction[0] > 0.9 and set(anchors) <= {0, 1, 4, 5, 8, 9}
    rng = np.random.default_rng(0)
    preds = {"SST": rng.normal(size=(50, 3)) + [1.0, 0, 0], "VIP": rng.normal(size=(50, 3))}
    (val,) = validate_concepts(["a car"], preds, pooled, captions, bow_encode, n_images=4)
    (test,) = val.welch
    centre = pooled.mean(0)
    ref = stats.ttest_ind(
        (preds["SST"] - centre) @ direction, (preds["VIP"] - centre) @ direction, equal_var=False
    )
    assert (
        test["t"] == pytest.approx(ref.statistic)
        and test["p"] < 1e-2
        and test["mean_difference"] > 0
    )


def test_concept_validation_without_captions_says_so():
    (val,) = validate_concepts(
        ["a car"], {"A": np.zeros((3, 2))}, np.zeros((4, 2)), [[]] * 4, bow_encode
    )
    assert val.welch == [] and "no captions" in val.note
