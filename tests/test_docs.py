"""Every `$ recur ...` example in the docs runs and prints what the docs show."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from recur.cli import cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```(console|python)\n(.*?)```", re.DOTALL)


def _examples() -> list[tuple[str, str, str]]:
    """(id, command, expected stdout) for console blocks; (id, code, '') for python."""
    found = []
    for doc in DOCS:
        for number, (kind, body) in enumerate(BLOCK.findall(doc.read_text())):
            if kind == "python":
                found.append((f"{doc.name}-{number}-python", body, ""))
                continue
            for command, output in re.findall(r"^\$ (.*)\n((?:(?!\$ ).*\n)*)", body, re.M):
                found.append((f"{doc.name}-{number}-{command}", command, output))
    return found


EXAMPLES = _examples()


CONSOLE = [e for e in EXAMPLES if not e[0].endswith("-python")]


@pytest.mark.parametrize(("command", "expected"), [e[1:] for e in CONSOLE],
                         ids=[e[0] for e in CONSOLE])
def test_console_example(command: str, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    args = shlex.split(command)
    assert args[0] == "recur"
    result = CliRunner().invoke(cli, args[1:])
    if "error:" in expected:  # an example of a diagnostic: it goes to stderr
        assert result.exit_code != 0
        assert result.stderr == expected
    else:
        assert result.exit_code == 0, result.stderr
        assert result.stdout == expected


@pytest.mark.parametrize("code", [e[1] for e in EXAMPLES if "-python" in e[0]],
                         ids=[e[0] for e in EXAMPLES if "-python" in e[0]])
def test_python_example(code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The block runs, and each `print(...)  # shown` line prints what its comment shows."""
    monkeypatch.chdir(ROOT)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "<doc>", "exec"), {})  # the docs' own example code
    expected = re.findall(r"^print\(.*\)\s+# (.*)$", code, re.M)
    assert expected, "a python example should show what it prints"
    assert printed.getvalue().splitlines() == expected
