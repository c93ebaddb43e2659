"""Every command and every option of the command line says what it is for (issue 13 item 5): the
click tree is walked from clconv.cli, so a command or option added later is checked too. click
gives arguments no help of their own: each is named (INPUT, IN_DIR, ...) in its command's help."""
from __future__ import annotations

import click
import pytest

from clconv.cli import cli

def commands(command: click.Command = cli, path: tuple[str, ...] = ()):
    """(path below `clconv`, command) for the group and every command under it, depth first."""
    yield path, command
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            yield from commands(command.commands[name], (*path, name))


def parameters(command: click.Command, path: tuple[str, ...]):
    """Every parameter of ``command`` as click shows it, the --help option included."""
    with click.Context(command, info_name=" ".join(("clconv", *path))) as ctx:
        return command.get_params(ctx)


COMMANDS = list(commands())
OPTIONS = [(path, p) for path, command in COMMANDS for p in parameters(command, path) if isinstance(p, click.Option)]
ARGUMENTS = [(path, command, p) for path, command in COMMANDS for p in command.params if isinstance(p, click.Argument)]


def option_id(path, option) -> str:
    return " ".join((*path, max(option.opts, key=len)))


def test_the_walk_finds_every_command_and_option():
    """The walk itself: a tree it could not see would pass every test below."""
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"", "apply", "batch", "bench", "devices", "formats", "kernels", "matrix", "tune"} <= names
    assert {"apply --kernel", "batch --recursive", "apply --help", "--version"} <= {option_id(*o) for o in OPTIONS}
    assert {"apply input", "apply output", "batch in_dir", "kernels name"} <= {
        " ".join((*path, a.name)) for path, _, a in ARGUMENTS}


def command_id(path) -> str:
    return " ".join(("clconv", *path))


@pytest.mark.parametrize("path, command", COMMANDS, ids=[command_id(path) for path, _ in COMMANDS])
def test_every_command_has_help_and_a_short_help(path, command):
    assert command.help and command.help.strip(), path
    with click.Context(command, info_name="clconv") as ctx:
        assert command.get_short_help_str(limit=80).strip(), path
        assert command.get_help(ctx).strip()


@pytest.mark.parametrize("path, option", OPTIONS, ids=[option_id(*o) for o in OPTIONS])
def test_every_option_has_help(path, option):
    assert not option.hidden, option_id(path, option)  # a hidden option is still one a user can type
    assert option.help and option.help.strip(), option_id(path, option)


@pytest.mark.parametrize("path, command, argument", ARGUMENTS,
                         ids=[" ".join((*path, a.name)) for path, _, a in ARGUMENTS])
def test_every_argument_is_named_in_its_commands_help(path, command, argument):
    name = argument.human_readable_name  # as the usage line shows it: INPUT, IN_DIR, NAME
    assert name and name in command.help, (command_id(path), name)


@pytest.mark.parametrize("path", [path for path, _ in COMMANDS], ids=[command_id(path) for path, _ in COMMANDS])
def test_help_of_every_command_runs_and_lists_its_options(run_cli, path):
    result = run_cli(*path, "--help")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.startswith("Usage: clconv"), result.stdout[:200]
    command = dict(COMMANDS)[path]
    for option in parameters(command, path):
        if isinstance(option, click.Option):
            assert max(option.opts, key=len) in result.stdout, option_id(path, option)
