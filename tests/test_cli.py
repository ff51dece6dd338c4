import subprocess
import sys

import pytest

from neurrator.config import RunConfig
from neurrator.core.errors import InputError


def _cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "neurrator.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_help_lists_every_stage():
    out = _cli("--help")
    assert out.returncode == 0
    for stage in ["simulate", "ingest", "embed", "train", "narrate", "evaluate", "analyze", "report", "demo"]:
        assert stage in out.stdout


@pytest.mark.parametrize(
    "args, needle",
    [
        (["bogus-stage"], "No such command"),
        (["train", "--run", "/nonexistent/run"], "not a run directory"),
        (["simulate", "--set", "data.simulation.n_units=-3"], "data.simulation.n_units"),
        (["simulate", "--set", "no.such.key=1"], "unknown config key"),
    ],
)
def test_bad_input_one_line_error_nonzero_exit(args, needle, tmp_path):
    out = _cli(*args, cwd=tmp_path)
    assert out.returncode != 0
    assert needle in out.stderr
    assert "Traceback" not in out.stderr


def test_config_overrides_and_yaml_roundtrip(tmp_path):
    cfg = RunConfig().with_overrides({"seed": 7, "data.simulation.n_units": 50})
    path = tmp_path / "c.yaml"
    path.write_text(cfg.to_yaml())
    back = RunConfig.from_yaml(path)
    assert back.seed == 7 and back.data.simulation.n_units == 50
    path.write_text("seed: [not, an, int]\n")
    with pytest.raises(InputError, match="seed"):
        RunConfig.from_yaml(path)
