"""The run-directory artefact layer and the typed objects it saves: round trips and errors naming the file."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from neurrator.config import RunConfig
from neurrator.core.errors import InputError, StageUnavailableError
from neurrator.data.types import Stimulus
from neurrator.encoder.predictions import Predictions
from neurrator.narrate import NarrateConfig, build_caption_bank, build_narrator
from neurrator.narrate.bank import CaptionBank, provenance
from neurrator.narrate.narrations import Narrations, NarratorInfo, narrate_windows
from neurrator.rundir import RunDir
from neurrator.runio import read_narrated, read_predictions, read_references, write_narrated
from neurrator.vision.base import PatchTargets, SpaceInfo

N_FRAMES = 6


def _predictions(n=4) -> Predictions:
    rng = np.random.default_rng(0)
    pairs = np.stack([np.arange(n) % 2, np.arange(n) + 1], axis=1)
    return Predictions(rng.normal(size=(n, 3, 5)).astype(np.float16), pairs, checkpoint="train@abc",
                       space_id="toy", unit_subset="group:V1", n_units=7)


def _narrations(rows=(0, 2)) -> Narrations:
    pairs = _predictions().pairs[list(rows)]
    info = NarratorInfo("retrieval", "nearest caption", is_stand_in=True)
    return Narrations(windows=np.asarray(rows), pairs=pairs, sentences=tuple(f"s{r}" for r in rows),
                      references=tuple((f"ref {f}",) for f in pairs[:, 1]), retrieved_frame=np.array([0, -1]),
                      copied=np.array([True, False]), narrator=info,
                      captioner=NarratorInfo("bundled", "demo captions", is_stand_in=True),
                      bank={"rule": "training frames only", "n_entries": 3, "n_frames": 3, "n_user_entries": 0})


def _targets() -> PatchTargets:
    info = SpaceInfo(space_id="toy", grid=(1, 3), dim=5, layer="toy", is_stand_in=True)
    return PatchTargets(np.zeros((N_FRAMES, 3, 5), np.float16), info, stimulus_hash="h")


def test_predictions_round_trip(tmp_path):
    p = _predictions()
    p.save(tmp_path)
    q = Predictions.load(tmp_path)
    np.testing.assert_array_equal(q.patches, p.patches)
    np.testing.assert_array_equal(q.pairs, p.pairs)
    assert (q.checkpoint, q.space_id, q.unit_subset, q.n_units) == ("train@abc", "toy", "group:V1", 7)
    assert q.frames.tolist() == [1, 2, 3, 4]


def test_predictions_refuse_inconsistent_shapes():
    with pytest.raises(ValueError, match="repeat, frame"):
        Predictions(np.zeros((4, 3, 5), np.float16), np.zeros((3, 2), np.int64), checkpoint="c", space_id="s")


def test_narrations_round_trip(tmp_path):
    n = _narrations()
    n.save(tmp_path)
    m = Narrations.load(tmp_path)
    assert m.sentences == n.sentences and m.references == n.references and m.narrator == n.narrator
    assert m.copied.tolist() == [True, False] and m.retrieved_frame.tolist() == [0, -1] and m.bank == n.bank
    assert m.reference_captions() == {1: ["ref 1"], 3: ["ref 3"]}
    assert json.loads((tmp_path / "narrations.json").read_text())["n_copied"] == 1


def _rewrite_parquet(folder, **change):
    path = folder / "narrations.parquet"
    table = pd.read_parquet(path)
    (table.drop(columns=change.pop("drop")) if "drop" in change else table.assign(**change)).to_parquet(path)


@pytest.mark.parametrize(("make", "damage", "named"), [
    (_predictions, lambda d: np.save(d / "predictions.npy", np.zeros((3, 3, 5), np.float16)), "predictions.npy"),
    (_predictions, lambda d: np.save(d / "windows.npy", np.zeros((4, 3), np.int64)), "windows.npy"),
    (_predictions, lambda d: (d / "windows.npy").write_bytes(b"not numpy"), "windows.npy"),
    (_predictions, lambda d: (d / "predictions.json").write_text("{"), "predictions.json"),
    (_predictions, lambda d: (d / "predictions.json").unlink(), "predictions.json"),
    (_narrations, lambda d: _rewrite_parquet(d, drop="copied"), "narrations.parquet"),
    (_narrations, lambda d: (d / "narrations.parquet").write_bytes(b"PAR1 broken"), "narrations.parquet"),
    (_narrations, lambda d: _rewrite_parquet(d, frame=-1), "narrations.parquet"),
    (_narrations, lambda d: (d / "narrations.json").write_text('{"narrator": {}}'), "narrations.json"),
])
def test_load_errors_name_the_file(tmp_path, make, damage, named):
    saved = make()
    saved.save(tmp_path)
    damage(tmp_path)
    with pytest.raises(InputError) as err:
        type(saved).load(tmp_path)
    assert err.value.path.name == named


@pytest.fixture
def run(tmp_path):
    return RunDir.create(tmp_path / "run", RunConfig())


def test_run_reads_what_narrate_wrote_and_checks_it(run):
    with pytest.raises(StageUnavailableError, match="neurrator narrate"):
        read_predictions(run)
    outputs = write_narrated(run, _predictions(), _narrations(), {"narrator": "retrieval"})
    assert {p.name for p in outputs} == {"predictions.npy", "windows.npy", "predictions.json", "narrations.parquet",
                                         "narrations.json", "summary.json"}
    predictions, narrations = read_narrated(run, _targets())
    assert len(predictions) == 4 and narrations.windows.tolist() == [0, 2]

    bad = _narrations()
    write_narrated(run, _predictions(), Narrations(**{**bad.__dict__, "windows": np.array([1, 2])}), {})
    with pytest.raises(InputError, match="disagree") as err:
        read_narrated(run, _targets())
    assert err.value.path.name == "narrations.parquet"
    small = _targets()
    small = PatchTargets(small.patches[:3], small.info, small.stimulus_hash)
    write_narrated(run, _predictions(), _narrations(), {})
    with pytest.raises(InputError, match="outside the stimulus"):
        read_narrated(run, small)


def test_references_are_the_stimulus_captions_overridden_by_the_captioner(run):
    stimulus = Stimulus("natural_movie_one", np.zeros((N_FRAMES, 2, 2), np.uint8), 30.0,
                        {f: [f"bundled {f}"] for f in range(N_FRAMES)})
    assert read_references(run, stimulus)[1] == ["bundled 1"]
    write_narrated(run, _predictions(), _narrations(), {})
    refs = read_references(run, stimulus)
    assert refs[1] == ["ref 1"] and refs[3] == ["ref 3"] and refs[0] == ["bundled 0"]
    uncaptioned = Stimulus("natural_movie_one", stimulus.frames, 30.0, {})
    (run.stage_dir("narrate") / "narrations.json").unlink()
    with pytest.raises(InputError, match="re-run `neurrator narrate`"):  # half a narrate output is not used
        read_references(run, stimulus)
    (run.stage_dir("narrate") / "narrations.parquet").unlink()
    with pytest.raises(InputError, match="no reference captions") as err:
        read_references(run, uncaptioned)
    assert err.value.path.name == "stimulus.json"


def test_caption_bank_rule_and_provenance(tmp_path):
    targets = _targets()
    captions = {0: ["shared"], 1: ["one"], 2: ["shared"], 3: ["three"]}
    bank = build_caption_bank(NarrateConfig(), targets, captions, train_frames=np.array([0, 1]))
    assert bank.frames.tolist() == [0, 1] and provenance(bank)["rule"] == "training frames only"
    strict = build_caption_bank(NarrateConfig(strict_bank=True), targets, captions, train_frames=np.array([0, 1]))
    assert strict.texts == ["one"] and "strict" in strict.rule
    assert provenance(None) is None

    corpus = CaptionBank.from_captioned(np.ones((3, 3, 5)), [["a"], [], ["c", "d"]], rule="corpus")
    assert corpus.frames.tolist() == [0, 2] and corpus.all_texts() == {"a", "c", "d"}
    whole = np.ones((2, 3, 5))
    assert CaptionBank.from_captioned(whole, [["a"], ["b"]], rule="corpus").patches is whole  # not copied


def test_narrate_windows_flags_copies_and_retrieved_frames():
    rng = np.random.default_rng(1)
    patches = rng.normal(size=(4, 3, 5)).astype(np.float32)
    bank = CaptionBank.from_training_frames(patches, {i: [f"caption {i}"] for i in range(4)}, np.arange(4))
    narrator = build_narrator(NarrateConfig(), name="retrieval", bank=bank)
    info = NarratorInfo("bundled", "", is_stand_in=False)
    pairs = np.stack([np.zeros(4, np.int64), np.arange(4)], axis=1)
    narrations = narrate_windows(narrator, torch.from_numpy(patches), windows=np.arange(4), pairs=pairs,
                                 references=[[f"caption {i}"] for i in range(4)], captioner=info, bank=bank)
    assert narrations.retrieved_frame.tolist() == [0, 1, 2, 3] and narrations.copied.all()
    assert narrations.narrator.name == "retrieval" and narrations.bank["n_entries"] == 4

    class Plain:
        name, is_stand_in = "plain", False

        def narrate(self, patches, *, progress=False):
            return ["caption 0", "something new"]

    plain = narrate_windows(Plain(), torch.from_numpy(patches[:2]), windows=np.arange(2), pairs=pairs[:2],
                            references=[[], []], captioner=info, bank=bank)
    assert plain.copied.tolist() == [True, False] and plain.retrieved_frame.tolist() == [-1, -1]
    assert plain.narrator.description == "plain"
