"""Sweep engine on Ray: speed-up from 1 to 2 local CPUs, overhead per task, and a fault test.

    python benchmarks/bench_sweep.py [--cells 16] [--work-seconds 1.0] [--noop-cells 200] [--parts speed overhead fault]
    python benchmarks/bench_sweep.py --parts fault          # the fault test alone (counts, not timings)

- **Speed-up.** ``--cells`` CPU-bound ``spin`` cells (a pure-Python integer recurrence sized to
  about ``--work-seconds`` of one idle core, calibrated first) run through :func:`run_sweep`
  on a fresh local Ray instance with 1 CPU, then with 2 CPUs; the same cells run inline (one
  process, no Ray) give the serial reference. Reported: wall time of the cells (Ray start-up
  excluded and reported apart), speed-up 1 → 2 CPUs, and the ideal (2.0). On a machine that is
  not idle the speed-up is capped by the free cores: the load is printed beside every figure.
- **Overhead per task.** ``--noop-cells`` cells that do nothing: (wall time − start-up) / cells
  with 1 CPU, i.e. scheduling, the worker call, the atomic result file and the driver's
  bookkeeping per cell; also cells/s (throughput).
- **Fault test.** A sweep of 6 cells of 1 s in a child driver; once 2 results exist, one Ray
  worker process running a cell is killed (SIGKILL). Reported: cells finished before the kill,
  whether their files were left untouched, whether the sweep completed (Ray retries the lost
  task), and, after killing the driver itself mid-sweep, how many cells the rerun computed.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from neurrator.sweep.engine import run_sweep
from neurrator.sweep.grid import SweepGrid


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} (1 min) {five:.2f} (5 min), {os.cpu_count()} CPUs"


def calibrate(seconds: float) -> int:
    from neurrator.sweep.cells import spin_cell
    from neurrator.sweep.grid import Cell

    n = 200_000
    t0 = time.perf_counter()
    spin_cell(Cell("spin", {}, {"iterations": n}), None)
    return int(n * seconds / max(time.perf_counter() - t0, 1e-6))


def timed(cells, cpus: int | None, executor: str = "ray") -> tuple[float, float]:
    """(wall seconds of the cells, Ray start-up seconds) for a fresh sweep folder."""
    import ray

    folder = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    startup = 0.0
    if executor == "ray":
        t0 = time.perf_counter()
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                 logging_level="WARNING")
        startup = time.perf_counter() - t0
    try:
        report = run_sweep(cells, folder, executor=executor, progress=False)
    finally:
        if executor == "ray":
            ray.shutdown()
    assert report.done == len(cells) and not report.failed, report
    return report.seconds, startup


FAULT_DRIVER = textwrap.dedent("""
    import sys
    from neurrator.sweep.engine import run_sweep
    from neurrator.sweep.grid import SweepGrid
    cells = SweepGrid(cell="spin", params={"sleep": 1.0}, axes={"seed": list(range(6))}).cells()
    r = run_sweep(cells, sys.argv[1], executor="ray", num_cpus=1, progress=False, max_retries=2)
    print("REPORT", r.done, r.skipped, len(r.failed), flush=True)
""")


def report_line(stdout: str) -> str:
    """The driver's ``REPORT done skipped failed`` line (Ray's own log lines may surround it)."""
    return next((line.strip() for line in stdout.splitlines() if line.startswith("REPORT")), "no report (driver died)")


def fault_test() -> None:
    import psutil

    work = Path(tempfile.mkdtemp(prefix="bench-sweep-fault-"))
    script = work / "driver.py"
    script.write_text(FAULT_DRIVER)

    def files(folder):
        return {p.name: p.stat().st_mtime_ns for p in (folder / "cells").glob("*.json")}

    def wait_for(folder, n):
        deadline = time.time() + 120
        while len(files(folder)) < n and time.time() < deadline:
            time.sleep(0.05)

    # 1. kill a worker running a cell
    folder = work / "worker-kill"
    driver = subprocess.Popen([sys.executable, str(script), str(folder)], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    wait_for(folder, 2)
    before = files(folder)
    victim = None
    while victim is None and driver.poll() is None:
        for child in psutil.Process(driver.pid).children(recursive=True):
            try:
                if "execute_cell" in " ".join(child.cmdline()):
                    victim = child.pid
            except psutil.NoSuchProcess:
                pass
        time.sleep(0.02)
    if victim is None:
        print("worker kill: the sweep ended before a worker running a cell was found; no fault injected")
        return
    os.kill(victim, signal.SIGKILL)
    out, _ = driver.communicate(timeout=300)
    after = files(folder)
    kept = all(after.get(k) == v for k, v in before.items())
    print(f"worker kill: {len(before)} of 6 cells finished before SIGKILL of worker pid {victim}; "
          f"those files untouched: {kept}; driver's report: {report_line(out)} (done, skipped, failed); "
          f"{len(after)} of 6 result files at the end")

    # 2. kill the driver (and the Ray instance it started), then rerun
    folder = work / "driver-kill"
    driver = subprocess.Popen([sys.executable, str(script), str(folder)], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    wait_for(folder, 2)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    time.sleep(2)
    before = files(folder)
    rerun = subprocess.run([sys.executable, str(script), str(folder)], capture_output=True, text=True, check=True)
    after = files(folder)
    kept = all(after.get(k) == v for k, v in before.items())
    print(f"driver kill: {len(before)} of 6 cells on disk after SIGKILL of the driver's process group; rerun's report: "
          f"{report_line(rerun.stdout)}; files of finished cells untouched: {kept}; {len(after)} of 6 at the end")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=16)
    parser.add_argument("--work-seconds", type=float, default=1.0)
    parser.add_argument("--noop-cells", type=int, default=200)
    parser.add_argument("--parts", nargs="+", choices=["speed", "overhead", "fault"], default=["speed", "overhead", "fault"])
    parser.add_argument("--skip-fault", action="store_true", help="same as leaving 'fault' out of --parts")
    args = parser.parse_args()
    parts = set(args.parts) - ({"fault"} if args.skip_fault else set())

    print(f"before: {load_note()}")
    if "speed" in parts:
        speed(args)
    if "overhead" in parts:
        overhead(args)
    if "fault" in parts:
        print(f"\n== fault test ({load_note()})")
        fault_test()


def speed(args) -> None:
    iterations = calibrate(args.work_seconds)
    cells = SweepGrid(cell="spin", params={"iterations": iterations}, axes={"seed": list(range(args.cells))}).cells()
    serial, _ = timed(cells, None, executor="inline")
    one, start1 = timed(cells, 1)
    two, start2 = timed(cells, 2)
    print(f"\n== speed-up: {args.cells} spin cells of ~{args.work_seconds:g} s CPU each ({iterations:,} iterations), "
          f"{load_note()}")
    print(f"inline (no Ray, 1 process): {serial:6.2f} s")
    print(f"Ray, 1 CPU                : {one:6.2f} s   (+ {start1:.1f} s Ray start-up)")
    print(f"Ray, 2 CPUs               : {two:6.2f} s   (+ {start2:.1f} s Ray start-up)")
    print(f"speed-up 1 → 2 CPUs: {one / two:.2f}x (ideal 2.00x on 2 idle cores); Ray 1 CPU vs inline: "
          f"{one / serial:.2f}x")


def overhead(args) -> None:
    noop = SweepGrid(cell="spin", params={"iterations": 0}, axes={"seed": list(range(args.noop_cells))}).cells()
    wall, _ = timed(noop, 1)
    inline, _ = timed(noop, None, executor="inline")
    print(f"\n== overhead: {args.noop_cells} no-op cells, Ray with 1 CPU: {wall:.2f} s → {1e3 * wall / len(noop):.1f} ms "
          f"per task ({len(noop) / wall:.0f} cells/s); inline (same result files, no Ray): "
          f"{1e3 * inline / len(noop):.1f} ms per cell; {load_note()}")


if __name__ == "__main__":
    main()
