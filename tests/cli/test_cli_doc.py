"""docs/cli.md names every command, option and argument of the CLI, and every `--help` works.

The command tree is walked from `recur.cli.main.cli`, so a new command or option fails here
until docs/cli.md documents it. A name counts only as a whole word: `--out` is not
documented by `--output`, nor `run` by `runs`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from recur.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "cli.md"


def _commands(
    command: click.Command, path: tuple[str, ...] = (), parent: click.Context | None = None
) -> Iterator[tuple[tuple[str, ...], click.Command, click.Context]]:
    """(the words after `recur`, the command, its context) for the group and every command
    under it. The contexts are chained as when recur runs, so each command sees the group's
    settings (`-h` as well as `--help`): click caches a command's help option the first
    time it is asked for it."""
    context = click.Context(command, info_name=path[-1] if path else "recur", parent=parent,
                            **(command.context_settings if parent is None else {}))
    yield path, command, context
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _commands(sub, (*path, name), context)


WALKED = list(_commands(cli))
COMMANDS = [(path, command) for path, command, _ in WALKED]
CONTEXTS = {path: context for path, _, context in WALKED}
IDS = [" ".join(("recur", *path)) for path, _ in COMMANDS]


def _documented_names(path: tuple[str, ...], command: click.Command) -> list[str]:
    """What the doc must name for a command: `recur NAME`, each option's spellings (long
    and short, `--help` included), and each argument as `SPEC`, in backquotes."""
    names = [" ".join(("recur", *path))] if path else []
    for param in command.get_params(CONTEXTS[path]):
        if isinstance(param, click.Option):
            names.extend([*param.opts, *param.secondary_opts])
        elif isinstance(param, click.Argument):
            names.append(f"`{param.human_readable_name}`")
    return names


def _missing(text: str, names: list[str]) -> list[str]:
    """The names that do not appear in `text` as whole words."""
    return [name for name in names
            if not re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text)]


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_the_doc_names_every_command_option_and_argument(
    path: tuple[str, ...], command: click.Command
) -> None:
    names = _documented_names(path, command)
    assert names or not path
    missing = _missing(DOC.read_text(), names)
    assert not missing, f"docs/cli.md does not mention {', '.join(missing)}"


def test_the_tree_has_the_commands_the_doc_describes() -> None:
    assert {"run", "check", "explain", "plot", "diff"} <= {path[0] for path, _ in COMMANDS
                                                          if path}


def test_a_name_missing_from_the_doc_is_found() -> None:
    """The check can fail: a doc without an option, or with only a longer name, misses it."""
    path, run = next((p, c) for p, c in COMMANDS if p == ("run",))
    names = _documented_names(path, run)
    assert {"recur run", "--steps", "-s", "--out", "-o", "--help", "`SPEC`"} <= set(names)
    text = DOC.read_text()
    unchanged = set(_missing(text, names))
    assert set(_missing(text.replace("--steps", "--stepz"), names)) - unchanged == {"--steps"}
    assert _missing("recur run: --output NAME, --outs", ["--out"]) == ["--out"]
    assert _missing("recur runs", ["recur run"]) == ["recur run"]


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_of_every_command_exits_0(
    path: tuple[str, ...], command: click.Command, flag: str
) -> None:
    result = CliRunner().invoke(cli, [*path, flag])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: ")
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.opts[-1] in result.stdout
