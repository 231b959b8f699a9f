"""Every `$ ...` example in the docs runs and prints what the docs show.

A plain `recur ...` line runs in-process through click's CliRunner. Any other line (a
pipeline, `;`, `&&`, a redirect, a glob or `$` expansion, or another program first) runs
with `bash -c` from the repository's root, with this interpreter's folder (where the
installed `recur` lives) first on PATH; it must exit 0 and print exactly the lines shown
(add `2>&1` to show an error, `; echo "exit status $?"` to show a failure). Such a line is
skipped, never failed, where one of its programs is missing; a line that also needs a
Python module says so with a trailing `# needs: pandas` (several: `# needs: pandas,
scipy`), and is skipped without it.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from recur.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```(console|python)\n(.*?)```", re.DOTALL)
NEEDS = re.compile(r"\s+#\s*needs:\s*([\w., ]+?)\s*$")
MAX_ID = 80  # longer commands are cut in test ids

# Where an unquoted character of these appears, bash has something to do.
SHELL_CHARS = set("|&;<>()$`*?[~#\n")
OPERATORS = "|&;()<>"
# Words that start a segment but are not the program it runs.
PREFIX_WORDS = {"!", "{", "if", "then", "else", "elif", "while", "until", "do", "time"}
# Segments with no program of their own (`for r in 1 2 3`, `done`, `fi`).
NO_PROGRAM = {"for", "case", "select", "done", "fi", "esac", "}", "in"}
BUILTINS = {"cd", "echo", "printf", "export", "set", "test", "[", "true", "false", "read",
            "exit", ":", ".", "source", "unset", "shift", "return", "local", "pwd", "type"}


def _examples() -> list[tuple[str, str, str, str]]:
    """(kind, id, command, expected stdout) for console lines; (kind, id, code, '') for
    python blocks."""
    found = []
    for doc in DOCS:
        for number, (kind, body) in enumerate(BLOCK.findall(doc.read_text())):
            if kind == "python":
                found.append((kind, f"{doc.name}-{number}-python", body, ""))
                continue
            for command, output in re.findall(r"^\$ (.*)\n((?:(?!\$ ).*\n)*)", body, re.M):
                shown = NEEDS.sub("", command)
                if len(shown) > MAX_ID:
                    shown = shown[: MAX_ID - 3] + "..."
                found.append((kind, f"{doc.name}-{number}-{shown}", command, output))
    return found


EXAMPLES = _examples()


CONSOLE = [e[1:] for e in EXAMPLES if e[0] == "console"]
PYTHON = [e[1:3] for e in EXAMPLES if e[0] == "python"]


def _unquoted(command: str) -> str:
    """The characters of a command line that bash reads unquoted (`$` and "`" kept
    inside double quotes, where bash still expands them)."""
    kept, quote, escaped = [], "", False
    for char in command:
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            if char == quote:
                quote = ""
            elif quote == '"' and char in "$`":
                kept.append(char)
        elif char in "'\"":
            quote = char
        else:
            kept.append(char)
    return "".join(kept)


def _is_plain_recur(command: str) -> bool:
    words = shlex.split(command)
    return bool(words) and words[0] == "recur" and not SHELL_CHARS & set(_unquoted(command))


def _words(command: str) -> list[tuple[str, bool]]:
    """A shell line as (text, is_operator) tokens: words with their quotes removed, and
    runs of unquoted `|&;()<>`. Enough to find the programs a doc's line runs."""
    tokens: list[tuple[str, bool]] = []
    word: str | None = None  # None: between words
    quote, i = "", 0
    while i < len(command):
        char = command[i]
        if quote:
            if char == quote:
                quote = ""
            elif char == "\\" and quote == '"' and i + 1 < len(command):
                i += 1
                word = (word or "") + command[i]
            else:
                word = (word or "") + char
        elif char == "\\" and i + 1 < len(command):
            i += 1
            word = (word or "") + command[i]
        elif char in "'\"":
            quote, word = char, word or ""
        elif char == "#" and word is None:
            break  # a comment
        elif char.isspace() or char in OPERATORS:
            if word is not None:
                tokens.append((word, False))
                word = None
            end = i
            while end < len(command) and command[end] in OPERATORS:
                end += 1
            if end > i:
                tokens.append((command[i:end], True))
                i = end
                continue
        else:
            word = (word or "") + char
        i += 1
    if word is not None:
        tokens.append((word, False))
    return tokens


def _programs(command: str) -> list[str]:
    """The first word of each segment of a shell line: the programs it runs."""
    programs, at_start = [], True
    for word, operator in _words(command):
        if operator:
            if not set(word) & set("<>"):  # `|`, `&&`, `;`, `)|`..., not a redirect
                at_start = True
        elif not at_start:
            continue
        elif word in PREFIX_WORDS or re.fullmatch(r"[A-Za-z_]\w*=.*", word):
            continue  # `do recur ...`, `LC_ALL=C sort`: the program comes next
        else:
            at_start = False
            if word not in NO_PROGRAM:
                programs.append(word)
    return programs


def _shell_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _run_in_shell(command: str, expected: str) -> None:
    needs = NEEDS.search(command)
    if needs:
        for module in re.split(r"[,\s]+", needs.group(1).strip()):
            pytest.importorskip(module, reason=f"needs the Python module {module}")
        command = command[: needs.start()]
    env = _shell_env()
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    for program in _programs(command):
        if program not in BUILTINS and shutil.which(program, path=env["PATH"]) is None:
            pytest.skip(f"needs {program}, which is not installed")
    done = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    if done.returncode == 127 and "command not found" in done.stderr:
        pytest.skip(f"a program is not installed: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected, done.stderr


@pytest.mark.parametrize(("command", "expected"), [e[1:] for e in CONSOLE],
                         ids=[e[0] for e in CONSOLE])
def test_console_example(command: str, expected: str, monkeypatch: pytest.MonkeyPatch,
                         tmp_path: Path) -> None:
    """What the example shows is what a reader gets the first time, with no kernels in the
    cache: `auto` then prices compiling, and so chooses as it does on a new machine (the
    engines' transcendental functions differ in the last bits: docs/performance.md)."""
    monkeypatch.setenv("RECUR_CACHE_DIR", str(tmp_path / "kernels"))
    if not _is_plain_recur(command):
        _run_in_shell(command, expected)
        return
    monkeypatch.chdir(ROOT)
    args = shlex.split(command)
    result = CliRunner().invoke(cli, args[1:])
    if "error:" in expected:  # an example of a diagnostic: it goes to stderr
        assert result.exit_code != 0
        assert result.stderr == expected
    else:
        assert result.exit_code == 0, result.stderr
        assert result.stdout == expected


@pytest.mark.parametrize("code", [e[1] for e in PYTHON], ids=[e[0] for e in PYTHON])
def test_python_example(code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The block runs, and each `print(...)  # shown` line prints what its comment shows."""
    monkeypatch.chdir(ROOT)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "<doc>", "exec"), {})  # the docs' own example code
    expected = re.findall(r"^print\(.*\)\s+# (.*)$", code, re.M)
    assert expected, "a python example should show what it prints"
    assert printed.getvalue().splitlines() == expected


README_RESULTS = re.findall(r"^\| `(\w+\.yaml)` \| [^|]* \| `([^`]*)` \|$",
                            (ROOT / "README.md").read_text(), re.M)


def test_readme_table_of_examples_is_found() -> None:
    assert len(README_RESULTS) >= 5


@pytest.mark.parametrize(("name", "shown"), README_RESULTS, ids=[r[0] for r in README_RESULTS])
def test_readme_table_shows_what_each_example_prints(name: str, shown: str,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    """The "default result" column: `recur run specs/NAME` without its CSV header, with
    no kernels in the cache (as `test_console_example`)."""
    monkeypatch.setenv("RECUR_CACHE_DIR", str(tmp_path / "kernels"))
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(cli, ["run", f"specs/{name}"])
    assert result.exit_code == 0, result.stderr
    assert " ".join(result.stdout.splitlines()[1:]) == shown


@pytest.mark.parametrize(("command", "programs"), [
    ("recur run a.yaml | awk -F, 'NR > 1'", ["recur", "awk"]),
    ('recur run a.yaml -o - -f npy | python -c "import numpy; a; b"', ["recur", "python"]),
    ("mkdir -p /tmp/x && recur run a.yaml -o /tmp/x/a.csv 2>/dev/null", ["mkdir", "recur"]),
    ("for r in 1 2; do printf '%s ' $r; recur run a.yaml --set r=$r | tail -1; done",
     ["printf", "recur", "tail"]),
    ("LC_ALL=C sort -k2 < a.csv; echo $(gnuplot -e 'x')", ["sort", "echo", "gnuplot"]),
    ("(echo s; seq 1 5)| tr '|' ',' 2>&1 | awk -F'|' '{ print }' # a | comment",
     ["echo", "seq", "tr", "awk"]),
    ('recur check "a b.yaml" "c;d.yaml" 2>&1; echo "exit status $?"', ["recur", "echo"]),
])
def test_programs_of_a_shell_line(command: str, programs: list[str]) -> None:
    assert _programs(command) == programs


@pytest.mark.parametrize(("command", "plain"), [
    ("recur run specs/fibonacci.yaml --steps 5", True),
    ("recur run specs/rnn.yaml --set 'W=[[0.9, 0], [0, 0.9]]' --last", True),
    ('recur run specs/taylor_exp.yaml --set "x=-1"', True),
    ("recur check specs/*.yaml", False),
    ("recur run specs/fibonacci.yaml | head -3", False),
    ('recur run specs/logistic_sweep.yaml --set "r=$R"', False),
    ("recur run a.yaml > /tmp/a.csv", False),
    ("cat specs/pi.yaml", False),
    ("recur run specs/pi.yaml  # needs: scipy", False),
])
def test_plain_recur_lines_run_in_process(command: str, plain: bool) -> None:
    assert _is_plain_recur(command) == plain
