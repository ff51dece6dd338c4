"""Ingest at scale: a manifest of many sessions, read one at a time into per-session caches,
pooled by streaming into exactly the pseudo-mouse ``build_dataset`` makes; reruns reuse the
caches; a corrupt file stops ingest naming it and leaves earlier sessions cached."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neurrator.config import RunConfig
from neurrator.core.errors import InputError
from neurrator.data.manifest import read_manifest
from neurrator.rundir import RunDir
from neurrator.stages import run_stage


@pytest.fixture(scope="module")
def nwb_files(tmp_path_factory):
    """Three simulated mice (20 units each before QC); the third has one repeat more, so the
    pooled grid (4 repeats) differs from its own and its columns must be re-z-scored."""
    from neurrator.data.nwb_write import write_allen_nwb
    from neurrator.data.simulate import simulate_session
    from neurrator.data.stimulus import load_stimulus

    root = tmp_path_factory.mktemp("nwb")
    stimulus = load_stimulus("natural_movie_one", cache_dir=root / "cache")
    paths = []
    for k, (genotype, repeats) in enumerate([("Pvalb", 4), ("Sst", 4), ("Vip", 5)]):
        sim = simulate_session({"natural_movie_one": stimulus}, n_units=20, genotype=genotype, movie_repeats=repeats,
                               scene_repeats=0, seed=5, session_index=k)
        paths.append(write_allen_nwb(sim, root / f"mouse_{k}.nwb"))
    return root, paths


def _config(root, manifest, **extra) -> RunConfig:
    return RunConfig().with_overrides({
        "cache_dir": str(root / "cache"), "data.source": "nwb", "data.manifest": str(manifest),
        "data.allow_demo_stimulus": True, "preprocess.val_fraction": 0.25, "preprocess.test_fraction": 0.25, **extra})


def _cache_files(run_root):
    return {p: p.stat().st_mtime_ns for p in (run_root / "ingest" / "sessions").glob("*/cache.json")}


def test_manifest_entries_and_errors(tmp_path):
    manifest = tmp_path / "m.txt"
    manifest.write_text("# sessions\n/abs/a.nwb\nrel/b.nwb   # a comment\n\ndandi:sub-1/sub-1_ses-2.nwb\n")
    sources = read_manifest(manifest)
    assert [(s.kind, s.location) for s in sources] == [
        ("nwb", "/abs/a.nwb"), ("nwb", str(tmp_path / "rel" / "b.nwb")), ("dandi", "sub-1/sub-1_ses-2.nwb")]
    assert sources[1].origin == "m.txt:3"
    with pytest.raises(InputError, match="session file not found"):
        sources[0].resolve(tmp_path)
    manifest.write_text("a.nwb\na.nwb\n")
    with pytest.raises(InputError, match="m.txt.*repeats the session of m.txt:1"):
        read_manifest(manifest)
    manifest.write_text("dandi:sub-1/notes.txt\n")
    with pytest.raises(InputError, match="line 1"):
        read_manifest(manifest)
    manifest.write_text("# nothing\n")
    with pytest.raises(InputError, match="lists no sessions"):
        read_manifest(manifest)


def test_streamed_ingest_equals_the_in_memory_pseudo_mouse_and_reruns_from_cache(nwb_files, tmp_path):
    from neurrator.data.allen import read_session
    from neurrator.preprocess.dataset import build_dataset
    from neurrator.preprocess.io import load_dataset, load_split
    from neurrator.preprocess.session_cache import read_index

    root, paths = nwb_files
    manifest = tmp_path / "sessions.txt"
    manifest.write_text("\n".join(str(p) for p in paths) + "\n")
    config = _config(root, manifest)
    run = RunDir.create(tmp_path / "run", config)
    first = run_stage("ingest", run, config)
    assert "3 session(s) in ingest/sessions/ (0 already cached, 3 binned now)" in first.summary
    folder = run.stage_dir("ingest")
    streamed = load_dataset(folder / "dataset")
    split = load_split(folder / "split.json")
    reference = build_dataset([read_session(p) for p in paths], "natural_movie_one", split, n_frames=900)
    assert streamed.n_repeats == 4 == reference.n_repeats
    np.testing.assert_allclose(streamed.responses, reference.responses, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(streamed.zscore.mean, reference.zscore.mean, rtol=1e-6)
    assert streamed.units.index.tolist() == reference.units.index.tolist()
    assert sorted(p.stem for p in (folder / "splits").glob("*.json")) == sorted(
        ["contiguous_middle", "front_only", "repeats", "sparse_random"])
    index = read_index(folder / "sessions.json")
    assert [e.record["n_repeats"] for e in index] == [4, 4, 5]  # each cache keeps its own repeats

    before = _cache_files(run.root)
    again = run_stage("ingest", run, config)
    assert "(3 already cached, 0 binned now)" in again.summary and _cache_files(run.root) == before

    # A corrupt file stops ingest with its name; the sessions before it stay cached.
    bad = tmp_path / "broken.nwb"
    bad.write_bytes(b"not an HDF5 file" * 64)
    manifest.write_text("\n".join(str(p) for p in [paths[0], bad, paths[1]]) + "\n")
    with pytest.raises(InputError, match="broken.nwb"):
        run_stage("ingest", run, config)
    assert _cache_files(run.root) == before


def test_sessions_only_without_a_pseudo_mouse(nwb_files, tmp_path):
    root, paths = nwb_files
    manifest = tmp_path / "sessions.txt"
    manifest.write_text("\n".join(str(p) for p in paths[:2]) + "\n")
    config = _config(root, manifest, **{"data.pseudo_mouse": False})
    run = RunDir.create(tmp_path / "run", config)
    result = run_stage("ingest", run, config)
    assert "no pseudo-mouse" in result.summary
    folder = run.stage_dir("ingest")
    assert not (folder / "dataset").exists()
    entries = json.loads((folder / "sessions.json").read_text())["sessions"]
    assert len(entries) == 2 and all((folder / e["folder"] / "dataset" / "responses.npy").is_file() for e in entries)
