"""Shell completion (click's): the script a shell sources, and what it completes: commands,
options, the named kernels after -k, the border modes after --border."""
from __future__ import annotations

import os
import subprocess

import pytest
from click.testing import CliRunner

from clconv.cli import cli
from clconv.kernels import NAMED
from clconv.params import BORDER_ALIASES, BORDERS


def complete(words: str) -> list[str]:
    env = {"_CLCONV_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)}
    if words.endswith(" "):
        env["COMP_CWORD"] = str(len(words.split()))
    result = CliRunner().invoke(cli, [], env=env, prog_name="clconv")
    assert result.exit_code == 0, result.output
    return [line.split(",", 1)[1] for line in result.stdout.splitlines()]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_installed_script_prints_a_completion_script(clconv_script, shell):
    env = dict(os.environ, _CLCONV_COMPLETE=f"{shell}_source")
    r = subprocess.run([clconv_script], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stderr == ""
    assert "_CLCONV_COMPLETE" in r.stdout and f"{shell}_complete" in r.stdout


def test_commands_and_options_complete():
    assert complete("clconv ap") == ["apply"]
    assert {"apply", "batch", "bench", "kernels", "formats", "devices"} <= set(complete("clconv "))
    assert complete("clconv apply --bor") == ["--border", "--border-value"]


def test_kernel_names_complete_after_k():
    assert complete("clconv apply -k gau") == sorted(n for n in NAMED if n.startswith("gau"))
    assert complete("clconv batch --kernel sob") == sorted(n for n in NAMED if n.startswith("sob"))
    assert set(complete("clconv apply -k ")) == set(NAMED)


def test_border_modes_complete():
    assert set(complete("clconv apply --border ")) == set(BORDERS) | set(BORDER_ALIASES)
    assert complete("clconv apply --border wr") == ["wrap"]
