"""Sweep engine: grid files, resumable cells, one Parquet table, Ray tasks, a killed worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from neurrator.core.errors import InputError
from neurrator.sweep.engine import gather, result_path, run_sweep
from neurrator.sweep.grid import Cell, SweepGrid, load_grid


def _grid(**axes) -> SweepGrid:
    return SweepGrid(name="t", cell="spin", params={"iterations": 1000}, axes=axes or {"seed": [0, 1, 2]})


def test_grid_expands_every_combination_with_stable_ids(tmp_path):
    grid = SweepGrid(cell="spin", params={"iterations": 5},
                     axes={"method": ["a", "b"], "subset": ["all", "group:V1"], "seed": [0, 1, 2]})
    cells = grid.cells()
    assert len(cells) == 12 and len({c.cell_id for c in cells}) == 12
    assert cells[0].axes == {"method": "a", "subset": "all", "seed": 0}
    # The id depends on kind, axes and params only: same cell, same id; other params, other id.
    assert Cell("spin", {"seed": 0, "method": "a", "subset": "all"}, {"iterations": 5}).cell_id == cells[0].cell_id
    assert Cell("spin", cells[0].axes, {"iterations": 6}).cell_id != cells[0].cell_id
    path = tmp_path / "grid.yaml"
    path.write_text("cell: spin\naxes:\n  seed: []\n")
    with pytest.raises(InputError, match="grid.yaml.*no values: seed"):
        load_grid(path)
    path.write_text("cell: spin\nbogus: 1\n")
    with pytest.raises(InputError, match="bogus"):
        load_grid(path)


def test_inline_sweep_writes_each_cell_resumes_and_gathers(tmp_path):
    cells = _grid(seed=[0, 1, 2, 3]).cells()
    first = run_sweep(cells[:2], tmp_path, executor="inline", progress=False)
    assert (first.done, first.skipped) == (2, 0) and all(result_path(tmp_path, c).is_file() for c in cells[:2])
    before = {c.cell_id: result_path(tmp_path, c).stat().st_mtime_ns for c in cells[:2]}
    second = run_sweep(cells, tmp_path, executor="inline", progress=False)
    assert (second.done, second.skipped) == (2, 2)
    assert before == {c.cell_id: result_path(tmp_path, c).stat().st_mtime_ns for c in cells[:2]}  # not recomputed
    table = gather(tmp_path, cells)
    again = pd.read_parquet(tmp_path / "results.parquet")
    assert list(again["seed"]) == [0, 1, 2, 3] and len(set(again["checksum"])) == 4
    assert {"cell_id", "kind", "checksum", "timing.wall_seconds", "timing.pid"} <= set(table.columns)


def test_a_failing_cell_is_recorded_and_retried_on_rerun(tmp_path):
    cells = [Cell("spin", {"seed": 0}, {}), Cell("spin", {"seed": 1}, {"fail": True})]
    report = run_sweep(cells, tmp_path, executor="inline", progress=False)
    assert report.done == 1 and list(report.failed) == [cells[1].cell_id]
    assert "asked to fail" in report.failed[cells[1].cell_id]
    assert result_path(tmp_path, cells[1]).with_suffix(".failed.json").is_file()
    assert len(gather(tmp_path, cells)) == 1
    again = run_sweep(cells, tmp_path, executor="inline", progress=False)
    assert again.skipped == 1 and len(again.failed) == 1  # the failed cell ran again


def test_ray_tasks_compute_the_same_results_as_inline(tmp_path):
    pytest.importorskip("ray")
    cells = _grid(seed=[0, 1, 2]).cells()
    report = run_sweep(cells, tmp_path / "ray", executor="ray", num_cpus=1, progress=False)
    assert report.done == 3 and report.cluster["cpus"] == 1
    inline = run_sweep(cells, tmp_path / "inline", executor="inline", progress=False)
    assert inline.done == 3
    ray_table, inline_table = gather(tmp_path / "ray", cells), gather(tmp_path / "inline", cells)
    assert list(ray_table["checksum"]) == list(inline_table["checksum"])
    assert set(ray_table["timing.pid"]) != {os.getpid()}  # computed in Ray worker processes


DRIVER = textwrap.dedent("""
    import sys
    from neurrator.sweep.engine import run_sweep
    from neurrator.sweep.grid import SweepGrid
    cells = SweepGrid(cell="spin", params={"sleep": float(sys.argv[2])}, axes={"seed": list(range(int(sys.argv[3])))}).cells()
    report = run_sweep(cells, sys.argv[1], executor="ray", num_cpus=1, progress=False, max_retries=2)
    print("REPORT", report.done, report.skipped, len(report.failed), flush=True)
""")


def _children(pid: int) -> list[int]:
    import psutil

    return [p.pid for p in psutil.Process(pid).children(recursive=True)]


def _worker_running_a_cell(driver: int) -> int | None:
    import psutil

    for pid in _children(driver):
        try:
            if "execute_cell" in " ".join(psutil.Process(pid).cmdline()):
                return pid
        except psutil.NoSuchProcess:
            continue
    return None


def test_killed_worker_loses_only_its_cell_and_the_sweep_completes(tmp_path):
    """SIGKILL the worker process running a cell mid-sweep: Ray retries that task; the cells
    finished before the kill are neither lost nor recomputed."""
    pytest.importorskip("ray")
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    folder = tmp_path / "sweep"
    driver = subprocess.Popen([sys.executable, str(script), str(folder), "1.0", "4"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        deadline = time.time() + 120
        while len(list((folder / "cells").glob("*.json"))) < 2 and time.time() < deadline:
            time.sleep(0.1)
        finished = {p.name: p.stat().st_mtime_ns for p in (folder / "cells").glob("*.json")}
        victim = None
        while victim is None and time.time() < deadline:
            victim = _worker_running_a_cell(driver.pid)
            time.sleep(0.05)
        assert victim is not None, "no Ray worker found running a cell"
        os.kill(victim, signal.SIGKILL)
        out, _ = driver.communicate(timeout=180)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert "REPORT 4 0 0" in out, out
    after = {p.name: p.stat().st_mtime_ns for p in (folder / "cells").glob("*.json")}
    assert len(after) == 4 and all(after[name] == mtime for name, mtime in finished.items())


@pytest.mark.slow
def test_killed_driver_loses_only_unfinished_cells_and_rerun_completes(tmp_path):
    pytest.importorskip("ray")
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    folder = tmp_path / "sweep"
    driver = subprocess.Popen([sys.executable, str(script), str(folder), "1.0", "6"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    deadline = time.time() + 120
    while len(list((folder / "cells").glob("*.json"))) < 2 and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray instance it started
    driver.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in (folder / "cells").glob("*.json")}
    assert 2 <= len(finished) < 6
    rerun = subprocess.run([sys.executable, str(script), str(folder), "1.0", "6"], check=False, capture_output=True, text=True,
                           timeout=180, start_new_session=True)
    done, skipped, failed = (int(x) for x in rerun.stdout.split("REPORT")[1].split())
    # A worker may still finish its cell while the killed driver's Ray instance shuts down, so
    # the rerun skips at least the cells finished at the kill and computes the rest.
    assert failed == 0 and done + skipped == 6 and skipped >= len(finished) and done >= 1, rerun.stdout
    after = {p.name: p.stat().st_mtime_ns for p in (folder / "cells").glob("*.json")}
    assert len(after) == 6 and all(after[name] == mtime for name, mtime in finished.items())


def test_sweep_command_runs_a_grid_in_a_run_directory(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("name: cheap\ncell: spin\nparams: {iterations: 10}\naxes:\n  seed: [0, 1]\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "neurrator.cli"]
    from neurrator.config import RunConfig
    from neurrator.rundir import RunDir

    RunDir.create(run, RunConfig())
    out = subprocess.run([*cmd, "sweep", "--run", str(run), "--grid", str(grid), "--set", "sweep.executor=inline"],
                         check=False, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "2 cells, 0 already done, 2 computed" in out.stdout
    assert len(pd.read_parquet(run / "sweep" / "cheap" / "results.parquet")) == 2
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["sweeps"]["cheap"]["done"] == 2
    bad = subprocess.run([*cmd, "sweep", "--run", str(run), "--grid", str(tmp_path / "missing.yaml")],
                         check=False, env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "missing.yaml: grid file not found" in bad.stderr
