"""The ``neurrator`` command: a thin layer over :mod:`neurrator.stages`.

Every stage takes ``--run DIR`` (the run directory), ``--config FILE`` (YAML) and any number
of ``--set key=value`` overrides of the config. Errors a user can fix print one line and
exit with status 2.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
import yaml

from neurrator.config import RunConfig
from neurrator.core.errors import NeurratorError
from neurrator.rundir import CONFIG_FILE, RunDir, default_run_name, status_table
from neurrator.stages import DEMO_ORDER, PIPELINE, STAGES, StageResult, run_stage

app = typer.Typer(
    name="neurrator",
    help="Turn spike trains into plain-language narration of what an animal saw.\n\n"
    "Stages run in order: simulate → ingest → embed → train → narrate → evaluate → "
    "benchmark → analyze → report. `neurrator demo` runs them all on the embedded offline default.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

RunOpt = Annotated[Path | None, typer.Option("--run", help="Run directory (default: runs/<config name>).")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a config value, e.g. --set encoder.max_epochs=5 (repeatable; "
                 "`neurrator config` lists every key)."),
]


def _parse_overrides(pairs: list[str] | None) -> dict:
    overrides = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise NeurratorError(f"--set expects key=value, got {pair!r}")
        overrides[key.strip()] = yaml.safe_load(value) if value else None
    return overrides


def _resolve(run_dir: Path | None, config_file: Path | None, sets: list[str] | None, *, fresh: bool) -> tuple[RunDir, RunConfig]:
    """Find the config (flag > run dir > defaults), apply overrides, open or create the run.

    A new run not named explicitly (``--set name=…`` or a config file's ``name``) is named
    after its folder (``--run``), else after its NWB sessions (see :func:`default_run_name`).
    """
    overrides = _parse_overrides(sets)
    named = "name" in overrides
    if config_file is not None:
        config = RunConfig.from_yaml(config_file)
        named = named or "name" in config.model_fields_set
    elif run_dir is not None and (run_dir / CONFIG_FILE).is_file():
        config = RunConfig.from_yaml(run_dir / CONFIG_FILE)
        named = True
    elif run_dir is not None and not fresh:
        RunDir.open(run_dir)  # raises a clear "not a run directory" error
        raise AssertionError("unreachable")
    else:
        config = RunConfig()
    config = config.with_overrides(overrides)
    if not named:
        config = config.with_overrides({"name": run_dir.name if run_dir is not None else default_run_name(config)})
    root = run_dir if run_dir is not None else Path("runs") / config.name
    if not fresh:
        RunDir.open(root)
    return RunDir.create(root, config), config


def _print_result(stage: str, result: StageResult, seconds: float, *, table: bool = True) -> None:
    typer.secho(f"[{stage}] done in {seconds:.1f} s", fg=typer.colors.GREEN, err=True)
    if result.summary:
        typer.echo(result.summary)
    if result.table and table:
        typer.echo(result.table)


def _run(stage: str, run_dir: Path | None, config_file: Path | None, sets: list[str] | None, *, fresh: bool,
         this_time: dict | None = None) -> None:
    """Run one stage; ``this_time`` overrides the config for this invocation only (not saved in the run)."""
    run, config = _resolve(run_dir, config_file, sets, fresh=fresh)
    config = config.with_overrides(this_time or {})
    t0 = time.perf_counter()
    result = run_stage(stage, run, config)
    _print_result(stage, result, time.perf_counter() - t0)


#: One example per stage for its --help (tests/test_docs_run.py executes every one).
STAGE_EXAMPLES = {
    "simulate": "neurrator simulate --run runs/small --set data.simulation.n_units=300",
    "ingest": "neurrator ingest --run runs/s1 --set data.source=nwb --set 'data.nwb_paths=[session.nwb]' "
              "--set data.stimulus_dir=templates --set data.captions_json=captions.json",
    "embed": "neurrator embed --run runs/demo --set vision.backend=clip --set vision.model=openai/clip-vit-large-patch14-336",
    "train": "neurrator train --run runs/demo --set encoder.max_epochs=5",
    "narrate": "neurrator narrate --run runs/demo --set narrate.max_windows=100",
    "evaluate": "neurrator evaluate --run runs/demo --set evaluate.n_bootstrap=1000",
    "analyze": "neurrator analyze --run runs/demo --only sae --set analysis.max_windows=24",
    "report": "neurrator report --run runs/demo --set report.raster_units=64",
    "lm_decode": "neurrator lm-decode --run runs/demo --set lm_decode.mode=lora",
}


OnlyOpt = Annotated[list[str] | None, typer.Option("--only", help="Run only this analysis (repeatable), e.g. "
                                                   "--only sae; the run's analysis.analyses is left as it is.")]


def _make_stage_command(stage: str, help_text: str, *, fresh: bool) -> None:
    def command(run: RunOpt = None, config: ConfigOpt = None, set_: SetOpt = None) -> None:
        _run(stage, run, config, set_, fresh=fresh)

    if stage == "analyze":
        def command(run: RunOpt = None, config: ConfigOpt = None, set_: SetOpt = None, only: OnlyOpt = None) -> None:
            _run(stage, run, config, set_, fresh=fresh, this_time={"analysis.analyses": only} if only else None)

    command.__doc__ = help_text + (
        "" if fresh else "\n\nNeeds an existing run directory (--run) holding the earlier stages' outputs; "
        "refuses outputs of a stage that failed or re-ran since (see `neurrator status`)."
    ) + (f"\n\nExample: {STAGE_EXAMPLES[stage]}" if stage in STAGE_EXAMPLES else "")
    app.command(name=stage.replace("_", "-"), help=command.__doc__)(command)  # lm_decode → lm-decode


for _stage, (_module, _help) in STAGES.items():
    # simulate or ingest (of real NWB files) starts a run; every later stage reads an existing one.
    if _stage != "sweep":  # sweep has its own options, below
        _make_stage_command(_stage, _help, fresh=_stage in ("simulate", "ingest"))


@app.command()
def sweep(
    grid: Annotated[Path, typer.Option("--grid", help="Grid file (YAML): cell kind, params, axes.")],
    run: RunOpt = None,
    address: Annotated[str | None, typer.Option(help="Join this Ray cluster (auto, host:6379, ray://host:10001).")] = None,
    num_cpus: Annotated[int | None, typer.Option(help="CPUs of the local Ray instance (default: all cores).")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Fan the cells of a grid file out as Ray tasks; rerunning computes only missing cells.

    Needs an existing run directory (--run) holding the outputs the cells read.
    """
    sets = [*(set_ or []), f"sweep.grid={json.dumps(str(grid))}"]
    sets += [f"sweep.address={json.dumps(address)}"] if address else []
    sets += [f"sweep.num_cpus={num_cpus}"] if num_cpus else []
    _run("sweep", run, config, sets, fresh=False)


@app.command(name="config")
def show_config(run: RunOpt = None, config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Print the resolved config (defaults < --config file < the run's config < --set) as YAML.

    Every key it prints can be overridden with --set; nothing runs and nothing is written.
    Example: neurrator config --set encoder.preset=paper
    """
    if config is not None:
        cfg = RunConfig.from_yaml(config)
    elif run is not None:
        cfg = RunDir.open(run).config()
    else:
        cfg = RunConfig()
    typer.echo(cfg.with_overrides(_parse_overrides(set_)).to_yaml(), nl=False)


@app.command()
def status(run: Annotated[Path, typer.Option("--run", help="Run directory.")]) -> None:
    """Print each stage's status, time and whether its inputs are stale.

    A stage is stale when an earlier stage failed or re-ran after it; stages refuse stale
    inputs and name the stage to re-run.
    """
    typer.echo(status_table(RunDir.open(run).statuses(PIPELINE)))


@app.command()
def demo(
    name: Annotated[str, typer.Option(help="Run name; outputs go to runs/<name>/.")] = "demo",
    run: RunOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Run the whole pipeline on the embedded offline default and print where the report is.

    Offline stand-ins (simulated session, oriented-energy vision space, retrieval narrator with
    SmolLM2) are labelled as such in every output.
    """
    sets = [f"name={name}", *(set_ or [])]
    run_dir, cfg = _resolve(run, config, sets, fresh=True)
    typer.secho(f"neurrator demo → {run_dir.root}", bold=True, err=True)
    t_start = time.perf_counter()
    last = None
    for stage in DEMO_ORDER:
        typer.secho(f"[{stage}] {STAGES[stage][1]}", fg=typer.colors.CYAN, err=True)
        t0 = time.perf_counter()
        last = run_stage(stage, run_dir, cfg)
        _print_result(stage, last, time.perf_counter() - t0, table=stage != DEMO_ORDER[-1])
    report = run_dir.stage_dir("report") / "report.html"
    typer.secho(f"demo finished in {time.perf_counter() - t_start:.0f} s", bold=True, err=True)
    typer.echo(f"Report: {report.resolve()}")
    if last is not None and last.table:  # the results summary, last thing on screen
        typer.echo("\n" + last.table)


def main() -> None:
    """Entry point: run the app, turning user-fixable errors into one line and exit 2."""
    try:
        app(standalone_mode=False)
    except NeurratorError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        typer.secho("aborted", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        # Usage errors from typer's bundled click (unknown command, bad option).
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code or 2)
        raise


if __name__ == "__main__":
    main()
