"""Stage status and staleness: a failed or re-run stage marks every later stage stale, and a
stage refuses stale inputs naming the stage to re-run (``neurrator.rundir``, ``neurrator status``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from neurrator.config import RunConfig
from neurrator.core.errors import StaleInputError
from neurrator.rundir import RunDir, default_run_name, linear_pipeline, stage_statuses, status_table

ORDER = linear_pipeline(("simulate", "ingest", "embed", "train", "report", "sweep"), unread={"report"})


def _ok(run: RunDir, name: str) -> None:
    with run.stage(name, ORDER):
        pass


def _fail(run: RunDir, name: str) -> None:
    with pytest.raises(RuntimeError), run.stage(name, ORDER):
        raise RuntimeError("disk full")


def _status(run: RunDir) -> dict[str, tuple[str, str | None]]:
    return {s.stage: (s.status, s.stale_because) for s in run.statuses(ORDER)}


@pytest.fixture
def run(tmp_path):
    return RunDir.create(tmp_path / "run", RunConfig(name="t"))


def test_fresh_pipeline_has_no_stale_stage(run):
    for name in list(ORDER)[:4]:
        _ok(run, name)
    status = _status(run)
    assert [status[n] for n in ORDER] == [("done", None)] * 4 + [("not run", None)] * 2


def test_rerun_marks_every_later_stage_stale_and_they_refuse(run):
    for name in list(ORDER)[:4]:
        _ok(run, name)
    _ok(run, "ingest")  # re-run
    status = _status(run)
    assert status["simulate"] == ("done", None) and status["ingest"] == ("done", None)
    assert status["embed"] == ("done", "ingest re-ran after it")
    assert status["train"][1] == "ingest re-ran after it"
    # train reads embed, which is stale: the message names embed, the first stage to re-run.
    with pytest.raises(StaleInputError, match=r"embed is stale .*re-run `neurrator embed --run"):
        _ok(run, "train")
    assert _status(run)["train"] == ("done", "ingest re-ran after it")  # refused: record untouched
    _ok(run, "embed")
    _ok(run, "train")
    assert all(v[1] is None for v in _status(run).values())


def test_failed_reingest_blocks_the_old_outputs(run):
    """A failed re-ingest leaves old files on disk; embed must refuse them, not exit 0."""
    for name in list(ORDER)[:3]:
        _ok(run, name)
    _fail(run, "ingest")
    status = _status(run)
    assert status["ingest"][0] == "failed"
    assert status["embed"] == ("done", "ingest failed after it ran")
    with pytest.raises(StaleInputError, match=r"ingest failed \(disk full\).*re-run `neurrator ingest"):
        _ok(run, "embed")
    with pytest.raises(StaleInputError, match="ingest failed"):
        _ok(run, "train")


def test_interrupted_stage_counts_as_not_finished(run):
    _ok(run, "simulate")
    run.update_manifest(stages={"ingest": {"status": "running", "started": "x"}})
    with pytest.raises(StaleInputError, match="ingest started but did not finish"):
        _ok(run, "embed")


def test_report_may_read_a_stale_run(run):
    for name in list(ORDER)[:3]:
        _ok(run, name)
    _fail(run, "ingest")
    with run.stage("report", ORDER, check_inputs=False):
        pass
    assert _status(run)["report"][0] == "done"


def test_rerun_withdraws_the_stage_s_own_stand_in_labels(run):
    with run.stage("embed", ORDER):
        run.mark_stand_in("vision_space", "offline space")
    run.mark_stand_in("session", "simulated")  # outside any stage: kept
    assert set(run.manifest()["stand_ins"]) == {"vision_space", "session"}
    _ok(run, "embed")  # re-run with a real backend marks nothing
    assert set(run.manifest()["stand_ins"]) == {"session"}


def test_status_table_and_legacy_manifest():
    manifest = {"stages": {"ingest": {"status": "done", "seconds": 3.25}, "embed": {"status": "done"},
                           "extra": {"status": "failed", "error": "boom"}}}
    statuses = stage_statuses(manifest, ORDER)
    assert [s.stage for s in statuses] == [*ORDER, "extra"]
    table = status_table(statuses)
    lines = table.splitlines()
    assert lines[0].split() == ["stage", "status", "seconds", "finished", "inputs"]
    assert "ingest" in lines[2] and "3.2" in lines[2] and "fresh" in lines[2]
    assert "boom" in lines[-1]


def test_status_command_prints_the_table(run):
    _ok(run, "simulate")
    _fail(run, "ingest")
    out = subprocess.run([sys.executable, "-m", "neurrator.cli", "status", "--run", str(run.root)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "simulate" in out.stdout and "failed" in out.stdout and "disk full" in out.stdout


def test_real_data_runs_are_named_after_their_sessions():
    cfg = RunConfig().with_overrides({"data.source": "nwb", "data.nwb_paths": ["/d/a_1.nwb", "/d/b_2.nwb"]})
    assert default_run_name(cfg) == "a_1+1"
    assert default_run_name(RunConfig()) == "demo"


def test_nothing_reads_the_report(run):
    """A stale report is no reason to refuse a later stage (the sweep reads ingest, not the report)."""
    for name in ("simulate", "ingest", "embed", "train", "report"):
        _ok(run, name)
    _ok(run, "train")  # the report is now stale
    assert _status(run)["report"] == ("done", "train re-ran after it")
    _ok(run, "sweep")
    assert _status(run)["sweep"] == ("done", None)
