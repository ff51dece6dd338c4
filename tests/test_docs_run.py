"""Help that runs: every ``--set`` example in any ``--help`` text is executed through the CLI.

Each example's overrides go through ``neurrator config`` (the same parsing and validation every
stage applies before it runs), so an example naming a key that does not exist fails here.
The README's commands are executed by ``tests/test_readme_run.py``.
"""

from __future__ import annotations

import re
import shlex

import typer
from typer.testing import CliRunner

from neurrator.cli import app

_SET = re.compile(r"--set\s+('[^']*'|\"[^\"]*\"|[^\s`),]+)")


def _help_texts() -> dict[str, str]:
    """Command name → every help text it shows (command help and each option's help)."""
    group = typer.main.get_command(app)
    texts = {"neurrator": " ".join([group.help or "", *(p.help or "" for p in group.params if hasattr(p, "help"))])}
    for name, command in group.commands.items():
        texts[name] = " ".join([command.help or "", *(getattr(p, "help", None) or "" for p in command.params)])
    return texts


def _examples() -> list[tuple[str, list[str]]]:
    out = []
    for name, text in _help_texts().items():
        for match in _SET.finditer(text):
            out.append((name, shlex.split(match.group(1))))
    return out


def test_help_has_set_examples_for_the_stages():
    named = {name for name, _ in _examples()}
    assert {"train", "ingest", "embed", "narrate", "report"} <= named


def test_every_set_example_in_help_runs():
    runner = CliRunner()
    examples = _examples()
    assert len(examples) >= 10
    for name, (pair,) in examples:
        result = runner.invoke(app, ["config", "--set", pair])
        assert result.exit_code == 0, f"`neurrator {name} --help` example --set {pair}: {result.exception}"
        key, _, value = pair.partition("=")
        leaf = key.split(".")[-1]
        assert f"{leaf}:" in result.stdout


def test_config_command_rejects_an_unknown_key():
    result = CliRunner().invoke(app, ["config", "--set", "encoder.epochs=5"])
    assert result.exit_code != 0
    assert "unknown config key 'encoder.epochs'" in str(result.exception)
