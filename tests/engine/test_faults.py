"""Faults around a run: outputs that cannot be written, inputs that cannot be read, and
evaluation faults (integer overflow per operator and dtype, `--check`).

An output fault is one clear error with exit 1 or 2, and never a truncated file under the
requested name: an existing file is replaced only by a complete new one. An input fault
is one clear error that names the option. The I/O unit tests live in test_io_*.py; these
drive the same code the way a user meets it, with the failure injected where it happens.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import recur
from recur.cli.main import cli
from recur.diagnostics import RecurError, UsageError
from recur.engine.c import native
from recur.io import outputs, writers
from recur.io.inputs import read_input
from recur.io.outputs import write_outputs
from recur.io.writers import OutputArray

COUNT = "steps: 5\noutputs:\n  x:\n    dtype: int64\n    initial: 0\n    step: x[t-1] + 1\n"
TWO = COUNT + "  y:\n    step: x[t] * 0.5\n"


def invoke(*args: str, stdin: bytes | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), input=stdin)


def one_error(result: Any, code: int | tuple[int, ...] = 2) -> str:
    """The single line of a failed command's stderr, checked: its status, no traceback."""
    codes = code if isinstance(code, tuple) else (code,)
    assert result.exit_code in codes, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.stderr.splitlines() if not line.startswith("note: ")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("recur: error: "), lines[0]
    return lines[0]


def spec_file(tmp_path: Path, text: str = COUNT) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return str(path)


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def sample(n: int = 2000) -> list[OutputArray]:
    return [OutputArray("x", np.arange(n, dtype=np.float64) / 7, per_step=True)]


# --- output faults: a full disk, injected ------------------------------------------------------


class _FillingUp:
    """A binary file that takes `room` bytes, then fails as a full disk does."""

    def __init__(self, stream: Any, room: int) -> None:
        self._stream = stream
        self._room = room

    def write(self, data: Any) -> int:
        data = bytes(data)
        if len(data) > self._room:
            self._stream.write(data[: self._room])
            self._room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._stream.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __enter__(self) -> _FillingUp:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.close()


def _disk_with_room(monkeypatch: pytest.MonkeyPatch, room: int) -> None:
    """Every file recur.io.outputs opens fills up after `room` bytes."""
    real_open = open

    def filling_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        stream = real_open(file, mode, *args, **kwargs)
        return _FillingUp(stream, room) if "w" in mode else stream

    monkeypatch.setattr(outputs, "open", filling_open, raising=False)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(room=st.integers(0, 40_000), fmt=st.sampled_from(["csv", "npy", "npz"]),
       existing=st.booleans())
def test_a_disk_that_fills_up_never_leaves_a_partial_file(
    tmp_path_factory: pytest.TempPathFactory, room: int, fmt: str, existing: bool
) -> None:
    folder = tmp_path_factory.mktemp("full")
    target = folder / f"out.{fmt}"
    if existing:
        target.write_bytes(b"the old result\n")
    with pytest.MonkeyPatch.context() as monkeypatch:
        _disk_with_room(monkeypatch, room)
        try:
            write_outputs(sample(), str(target), None)
        except UsageError as error:
            assert str(error) == f"cannot write {str(target)!r}: No space left on device"
            assert listing(folder) == (["out." + fmt] if existing else [])
            if existing:
                assert target.read_bytes() == b"the old result\n"
            return
    # it fitted: the whole new result, and nothing else
    assert listing(folder) == [f"out.{fmt}"]
    assert read_input("x", str(target)).shape == (2000,)


@pytest.mark.parametrize("fmt", ["csv", "npy", "npz"])
def test_a_full_disk_through_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    _disk_with_room(monkeypatch, 10)
    out = tmp_path / f"out.{fmt}"
    result = invoke("run", spec_file(tmp_path), "--output", "x", "-o", str(out))
    line = one_error(result)
    assert line == f"recur: error: cannot write {str(out)!r}: No space left on device"
    assert listing(tmp_path) == ["spec.yaml"]


def test_a_full_disk_reported_by_ndarray_tofile_names_the_cause(tmp_path: Path) -> None:
    """NumPy writes a real file with `ndarray.tofile`, whose failure has no errno ("8000
    requested and 512 written"); recur has it write through `write`, which keeps it."""
    with open(tmp_path / "x.npy", "wb") as real:
        calls: list[int] = []
        original = real.write

        def counting(data: Any) -> int:
            calls.append(len(data))
            return original(data)

        real.write = counting  # type: ignore[method-assign]
        writers.write_npy(real, sample())
    assert sum(calls) == (tmp_path / "x.npy").stat().st_size
    assert np.load(tmp_path / "x.npy").shape == (2000,)


@pytest.mark.parametrize("failure", [
    OSError(errno.EIO, os.strerror(errno.EIO)),
    OSError(errno.EXDEV, os.strerror(errno.EXDEV)),
])
def test_a_failing_rename_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: OSError
) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old\n")

    def no_rename(source: str, destination: str) -> None:
        raise failure

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(UsageError, match=failure.strerror):
        write_outputs(sample(), str(target), None)
    assert target.read_text() == "old\n"
    assert listing(tmp_path) == ["out.csv"]


@pytest.mark.parametrize("failure", [RuntimeError("boom"), KeyboardInterrupt(), MemoryError()])
@pytest.mark.parametrize("room", [0, 100, 5000])
def test_a_write_failing_midway_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException, room: int
) -> None:
    target = tmp_path / "out.npy"
    target.write_bytes(b"old")
    real_open = open

    class Breaking(_FillingUp):
        def write(self, data: Any) -> int:
            if len(bytes(data)) > self._room:
                raise failure
            return super().write(data)

    def breaking_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        return Breaking(real_open(file, mode, *args, **kwargs), room)

    monkeypatch.setattr(outputs, "open", breaking_open, raising=False)
    with pytest.raises(type(failure)):
        write_outputs(sample(), str(target), None)
    assert target.read_bytes() == b"old"
    assert listing(tmp_path) == ["out.npy"]


def test_an_existing_file_is_replaced_by_the_complete_new_one(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("x\n" + "999\n" * 1000)
    result = invoke("run", spec_file(tmp_path), "-o", str(target))
    assert result.exit_code == 0, result.output
    assert target.read_text() == "x\n1\n2\n3\n4\n5\n"
    assert listing(tmp_path) == ["out.csv", "spec.yaml"]


# --- output faults: places that cannot take a file -------------------------------------------


def test_a_path_that_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "out.csv").mkdir()
    result = invoke("run", spec_file(tmp_path), "-o", str(tmp_path / "out.csv"))
    assert "Is a directory" in one_error(result)
    assert listing(tmp_path / "out.csv") == []


def test_a_missing_folder(tmp_path: Path) -> None:
    result = invoke("run", spec_file(tmp_path), "-o", str(tmp_path / "no" / "out.csv"))
    assert "No such file or directory" in one_error(result)


def test_a_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("permissions do not bind this user (root)")
        result = invoke("run", spec_file(tmp_path), "-o", str(folder / "out.csv"))
        assert "Permission denied" in one_error(result)
        assert listing(folder) == []
    finally:
        folder.chmod(0o755)


def test_a_folder_that_refuses_new_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a read-only folder does, for users that permissions do not bind."""
    import tempfile

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    result = invoke("run", spec_file(tmp_path), "-o", str(tmp_path / "out.csv"))
    assert "Permission denied" in one_error(result)
    assert listing(tmp_path) == ["spec.yaml"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_named_pipe_is_written_through_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    received: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as pipe:
            received.append(pipe.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    result = invoke("run", spec_file(tmp_path), "-o", str(fifo))
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(os.stat(fifo).st_mode), "the pipe was replaced by a file"
    reader.join(timeout=10)
    assert received == [b"x\n1\n2\n3\n4\n5\n"]


def test_a_symbolic_link_keeps_pointing_at_the_new_result(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    real = tmp_path / "results" / "run.csv"
    real.write_text("old\n")
    link = tmp_path / "latest.csv"
    link.symlink_to(real)
    result = invoke("run", spec_file(tmp_path), "-o", str(link))
    assert result.exit_code == 0, result.output
    assert link.is_symlink()
    assert real.read_text() == "x\n1\n2\n3\n4\n5\n"
    assert listing(tmp_path / "results") == ["run.csv"]


def test_a_meta_sidecar_that_cannot_be_written_leaves_the_result_whole(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    result = invoke("run", spec_file(tmp_path), "-o", str(out),
                    "--meta", str(tmp_path / "no" / "meta.json"))
    assert "meta.json" in one_error(result)
    assert out.read_text() == "x\n1\n2\n3\n4\n5\n"


# --- output faults: standard output ------------------------------------------------------------


class _FullStdout(io.BytesIO):
    def write(self, data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def isatty(self) -> bool:
        return False


@pytest.mark.parametrize("fmt", ["csv", "npy", "npz"])
def test_standard_output_on_a_full_disk_is_one_error(fmt: str) -> None:
    with pytest.raises(UsageError) as info:
        write_outputs(sample(), None, fmt, _FullStdout())
    assert str(info.value) == "cannot write to standard output: No space left on device"


def _run_shell(command: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path,
                          env={**os.environ, "PYTHON": sys.executable})


needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full") or not shutil.which("bash"),
                                    reason="needs /dev/full and bash")


@needs_dev_full
@pytest.mark.parametrize("fmt", ["csv", "npy", "npz"])
def test_standard_output_to_dev_full(tmp_path: Path, fmt: str) -> None:
    spec_file(tmp_path, COUNT.replace("steps: 5", "steps: 100000"))
    done = _run_shell(f'"$PYTHON" -m recur run spec.yaml -f {fmt} > /dev/full', tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr == ("recur: error: cannot write to standard output: "
                           "No space left on device\n")


@needs_dev_full
def test_standard_output_closed(tmp_path: Path) -> None:
    spec_file(tmp_path)
    done = _run_shell('"$PYTHON" -m recur run spec.yaml >&-', tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[0] == ("recur: error: cannot write to standard output: "
                                           "it is closed")
    assert "Traceback" not in done.stderr


# --- input faults: one clear error each ----------------------------------------------------------

SEQUENCE = "sequences:\n  s: input\noutputs:\n  x:\n    step: s * 2\n"


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=array.dtype.hasobject)
    return buffer.getvalue()


def _with_shape(data: bytes, shape: str) -> bytes:
    """The .npy bytes with the shape in their header replaced, the header's length kept."""
    start = data.index(b"'shape': (")
    end = data.index(b")", start) + 1
    new = f"'shape': {shape}".encode()
    header_end = data.index(b"\n", end)
    padding = header_end - end
    text = data[:start] + new + data[end:header_end]
    grow = len(new) - (end - start)
    assert padding >= grow, "no room in the header"
    return text.replace(b" " * grow, b"", 1) + data[header_end:] if grow > 0 else (
        data[:start] + new + b" " * -grow + data[end:])


def _input_error(tmp_path: Path, name: str, data: bytes, code: int = 2) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    started = time.monotonic()
    result = invoke("run", spec_file(tmp_path, SEQUENCE), "--input", f"s={path}")
    assert time.monotonic() - started < 10
    line = one_error(result, code)
    assert line.startswith(f"recur: error: --input s={path}: "), line
    return line


@pytest.mark.parametrize("cut", [5, 20, 60, -1])
def test_truncated_npy(tmp_path: Path, cut: int) -> None:
    data = _npy(np.arange(10.0))
    assert "truncated or corrupt" in _input_error(tmp_path, "in.npy", data[:cut])


@pytest.mark.parametrize("shape", ["(1000000000000,)", "(100000, 100000)",
                                   "(4611686018427387904,)"])
def test_npy_header_declaring_a_huge_array_is_refused_unread(tmp_path: Path, shape: str) -> None:
    data = _with_shape(_npy(np.arange(4.0)), shape)
    line = _input_error(tmp_path, "in.npy", data)
    assert "the limit is 1,000,000,000" in line or "truncated or corrupt" in line


def test_npy_header_declaring_more_data_than_the_file_holds(tmp_path: Path) -> None:
    data = _with_shape(_npy(np.arange(4.0)), "(100000000,)")
    line = _input_error(tmp_path, "in.npy", data)
    assert "declares 800,000,000 bytes of data, it holds 32" in line


def test_npy_on_standard_input_declaring_a_huge_array(tmp_path: Path) -> None:
    data = _with_shape(_npy(np.arange(4.0)), "(1000000000000,)")
    result = invoke("run", spec_file(tmp_path, SEQUENCE), "--input", "s=-", stdin=data)
    assert "the limit is 1,000,000,000" in one_error(result)


def test_npz_member_declaring_a_huge_array_is_refused_undecompressed(tmp_path: Path) -> None:
    """A zip bomb: a small archive whose member claims more than the limit, and inflates
    to far more than the archive's size; it is refused from its header."""
    header = _with_shape(_npy(np.zeros(1)), "(2000000000,)")[:-8]
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive, \
            archive.open("s.npy", "w", force_zip64=True) as member:
        member.write(header)
        for _ in range(16):  # 256 MiB of zeros
            member.write(bytes(2**24))
    assert path.stat().st_size < 2**20
    line = _input_error(tmp_path, "bomb.npz", path.read_bytes())
    assert "2,000,000,000 elements; the limit is 1,000,000,000" in line


@pytest.mark.parametrize("array", [
    np.array(["a", "b"]), np.array([b"a", b"b"]), np.array([1, "a", None], dtype=object),
    np.zeros(2, dtype=[("a", "f8"), ("b", "i4")]), np.array(["2020-01-01"], dtype="M8[D]"),
    np.array([1, 2], dtype="m8[s]"), np.zeros(2, dtype="V8"),
], ids=["unicode", "bytes", "object", "structured", "datetime", "timedelta", "void"])
def test_wrong_dtypes_are_refused(tmp_path: Path, array: np.ndarray) -> None:
    line = _input_error(tmp_path, "in.npy", _npy(array))
    assert "Python objects" in line or "unsupported dtype" in line


@pytest.mark.parametrize(("text", "fragment"), [
    ("s,t\n1,2\n3\n", "line 3 has 1 fields, the header has 2"),
    ("s,t\n1,2\n3,4,5\n", "line 3 has 3 fields, the header has 2"),
    ("s\n1\nabc\n", "line 3, column 's': 'abc' is not a number"),
    ("s\n1\n\n2\n", "line 3 is empty"),
    ("s[0],s[1]\n1,\n", "line 2, column 's[1]': empty cell"),
    ("s\ntrue\n2\n", "'true' mixed with numbers"),
    ("s\n" + "1" * 5000 + "\n", "an integer of 5000 characters does not fit in int64"),
    ("s[0],s[99999999999999999999]\n1,2\n", "s[1] is missing"),
    ("s[99999999999999999999]\n1\n", "s[0] is missing"),
    ('s\n"1\n', "malformed CSV"),
], ids=["short-row", "long-row", "text", "empty-line", "empty-cell", "bool-and-number",
        "5000-digits", "sparse-header", "huge-index", "open-quote"])
def test_bad_csv_is_one_clear_error(tmp_path: Path, text: str, fragment: str) -> None:
    assert fragment in _input_error(tmp_path, "in.csv", text.encode())


def test_csv_with_many_columns_loads_quickly(tmp_path: Path) -> None:
    n = 20_000
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"s[{i}]" for i in range(n)) + "\n" + ",".join(["1"] * n) + "\n")
    started = time.monotonic()
    array = read_input("s", str(path))
    assert time.monotonic() - started < 2
    assert array.shape == (1, n)


@pytest.mark.parametrize("data", [b"s\n1\nnan\n3\n", _npy(np.array([1.0, np.nan, 3.0]))],
                         ids=["csv", "npy"])
def test_nan_in_an_input_is_a_value_and_check_finds_where_it_lands(
    tmp_path: Path, data: bytes
) -> None:
    suffix = "csv" if data.startswith(b"s\n") else "npy"
    path = tmp_path / f"in.{suffix}"
    path.write_bytes(data)
    spec = spec_file(tmp_path, SEQUENCE)
    ran = invoke("run", spec, "--input", f"s={path}")
    assert ran.exit_code == 0 and ran.stdout == "x\n2.0\nnan\n6.0\n"
    checked = invoke("run", spec, "--input", f"s={path}", "--check")
    assert checked.exit_code == 1
    assert "output 'x' is not finite at t=1" in checked.stderr
    assert "Traceback" not in checked.output


def test_an_input_that_does_not_fit_in_memory_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_memory(*args: Any, **kwargs: Any) -> Any:
        raise MemoryError

    monkeypatch.setattr(np.lib.format, "read_array", no_memory)
    with pytest.raises(RecurError) as info:
        read_input("s", "-", io.BytesIO(_npy(np.arange(3.0))))
    assert info.value.exit_code == 1
    assert str(info.value) == "--input s=-: the array does not fit in the memory available"


# --- integer overflow, per operator and dtype --------------------------------------------------

I32, I64 = np.iinfo(np.int32), np.iinfo(np.int64)
# operator -> (step, operand v, operand w, the lane that overflows), per dtype; all
# overflow at t=0 but `+ t`, which reaches the limit at t=1 and passes it at t=2
OPERATIONS = {
    "+": ("v + w", lambda i: [1, i.max, 3], lambda i: [1, 1, 1], 1),
    "-": ("v - w", lambda i: [1, 2, i.min], lambda i: [0, 0, 1], 2),
    "*": ("v * w", lambda i: [1, i.max // 2 + 1, 3], lambda i: [5, 2, 1], 1),
    "**": ("v ** w", lambda i: [2, 3, 2], lambda i: [3, 2, i.bits - 1], 2),
    "//": ("v // w", lambda i: [i.min, 7, 1], lambda i: [-1, 2, 1], 0),
    "% by 0": ("v % w", lambda i: [5, 7, 1], lambda i: [1, 0, 1], 1),
    "// by 0": ("v // w", lambda i: [5, 7, 1], lambda i: [1, 1, 0], 2),
    "neg": ("-v + w * 0", lambda i: [1, i.min, 3], lambda i: [0, 0, 0], 1),
    "abs": ("abs(v) + w * 0", lambda i: [i.min, 2, 3], lambda i: [0, 0, 0], 0),
    "+ t": ("v + w + t", lambda i: [0, i.max - 1, 0], lambda i: [0, 0, 0], 1),
}
REDUCTIONS = {
    "sum": "sum(v) + sum(w) * 0",
    "prod": "prod(v) + sum(w) * 0",
    "dot": "dot(v, w)",
    "@": "v @ w",
}


@pytest.mark.parametrize("dtype", ["int32", "int64"])
@pytest.mark.parametrize("op", list(OPERATIONS))
def test_integer_overflow_names_the_output_the_step_and_the_lane(op: str, dtype: str) -> None:
    step, v, w, lane = OPERATIONS[op]
    info = np.iinfo(dtype)
    text = (f"params:\n  v: input\n  w: input\nsteps: 3\noutputs:\n"
            f"  x:\n    dtype: {dtype}\n    step: {step}\n")
    spec = recur.load(text, path="ops.yaml")
    arrays = {"v": np.array(v(info), dtype=dtype), "w": np.array(w(info), dtype=dtype)}
    # the exact result of lane `lane` is out of range; the others are fine
    with pytest.raises(RecurError) as error:
        recur.run(spec, inputs=arrays)
    message = error.value.message
    assert error.value.exit_code == 1, message
    t = 2 if op == "+ t" else 0
    assert "'x'" in message and f"t={t} " in message and f"(lane {lane})" in message, message
    assert ("zero" in message) == ("by 0" in op), message
    # with the faulty lane made harmless, the same step runs exactly
    fine = {name: np.delete(array, lane) for name, array in arrays.items()}
    got = recur.run(spec, inputs=fine)["x"]
    assert got.dtype == np.dtype(dtype)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
@pytest.mark.parametrize("op", list(REDUCTIONS))
def test_integer_reduction_overflow_is_reported(op: str, dtype: str) -> None:
    info = np.iinfo(dtype)
    text = (f"params:\n  v: input\n  w: input\nsteps: 2\noutputs:\n"
            f"  x:\n    dtype: {dtype}\n    step: {REDUCTIONS[op]}\n")
    spec = recur.load(text, path="ops.yaml")
    big = np.array([info.max // 2 + 1, info.max // 2 + 1], dtype=dtype)
    ones = np.array([1, 1], dtype=dtype)
    with pytest.raises(RecurError) as error:
        recur.run(spec, inputs={"v": big, "w": ones})
    assert error.value.exit_code == 1
    assert "overflow" in error.value.message and "t=0" in error.value.message
    assert "'x'" in error.value.message


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_storing_a_wider_value_checks_the_range(dtype: str) -> None:
    wide = int(np.iinfo(dtype).max) + 1
    text = (f"steps: 3\noutputs:\n  x:\n    dtype: {dtype}\n    initial: 0\n"
            f"    step: x[t-1] * 0 + (t - 1) * {wide}\n")
    if dtype == "int64":
        text = text.replace(f"{wide}", f"{wide - 1} + (t - 1)")
    with pytest.raises(RecurError) as error:
        recur.run(recur.load(text, path="store.yaml"))
    assert error.value.exit_code == 1 and "t=2" in error.value.message


# --- --check: the first non-finite value of each output, with t and lane ----------------------


def _check_error(text: str) -> str:
    with pytest.raises(RecurError) as error:
        recur.run(recur.load(text, path="check.yaml"), check=True)
    assert error.value.exit_code == 1
    assert error.value.span is not None
    return error.value.message


@pytest.mark.parametrize(("dtype", "blowup"), [
    ("float64", "x[t-1] * 1e200"),
    ("float32", "x[t-1] * 1e30"),
    ("complex128", "x[t-1] * (1e200 + 1e200j)"),
])
def test_check_names_the_first_non_finite_state_its_step_and_lane(
    dtype: str, blowup: str
) -> None:
    # lane 2 grows fastest: it overflows first, at a step worked out here
    text = (f"params:\n  r: [1e-300, 1e-200, 1e10]\nsteps: 6\noutputs:\n  x:\n"
            f"    dtype: {dtype}\n    initial: r\n    step: {blowup}\n")
    result = recur.run(recur.load(text, path="check.yaml"))["x"]
    finite = np.isfinite(result)
    first_t = int(np.argmax(~finite.all(axis=1)))
    first_lane = int(np.argmax(~finite[first_t]))
    assert not finite.all() and first_lane == 2
    assert f"output 'x' is not finite at t={first_t} (lane {first_lane})" in _check_error(text)


def test_check_names_the_output_that_fails_first() -> None:
    text = """\
steps: 5
outputs:
  x:
    initial: 1.0
    step: x[t-1] * 1e300
  y:
    initial: [1.0, 1.0]
    step: y[t-1] / (3 - t) * [1, 0]
"""
    # y divides by zero at t=3 in lane 1 (0/0: nan) ... but x is inf already at t=1
    assert "output 'x' is not finite at t=1" in _check_error(text)
    late_x = text.replace("1e300", "1.0")
    # y: t=0 [1/3, 0], t=1 [1/6, 0], t=2 [1/6, 0], t=3 [inf, nan]: lane 0 first
    assert "output 'y' is not finite at t=3 (lane 0)" in _check_error(late_x)


def test_check_covers_outputs_that_are_not_kept_and_states_with_two_axes() -> None:
    text = """\
params:
  m: '[[1.0, 2.0], [3.0, 0.0]]'
steps: 3
outputs:
  hidden:
    keep: none
    step: m / (m * t - m * t)
  x:
    step: sum(hidden[t]) * 0
"""
    # 0/0 and x/0 at t=0 in every lane; the first lane, in C order, is (0, 0)
    assert "output 'hidden' is not finite at t=0 (lane (0, 0))" in _check_error(text)


def test_check_accepts_finite_runs_and_ignores_integers() -> None:
    text = "steps: 3\noutputs:\n  x:\n    dtype: int64\n    step: t * 2\n"
    assert recur.run(recur.load(text, path="ok.yaml"), check=True)["x"].tolist() == [0, 2, 4]


# --- the fields of a run's error: output, t, lane ---------------------------------------------

POWERS = ("params:\n  r: [2, 3, 5, 4]\nsteps: 40\noutputs:\n"
          "  x:\n    dtype: int64\n    initial: [1, 1, 1, 1]\n    step: x[t-1] * r\n")
ENGINES = ["interp", pytest.param("compiled", marks=pytest.mark.skipif(
    not native.available(), reason="no C compiler"))]


@pytest.mark.parametrize("engine", ENGINES)
def test_an_integer_overflow_carries_its_output_step_and_lane(engine: str) -> None:
    # x[t] = r ** (t + 1) in each lane: the first step and lane past int64, by hand
    states, t = [1, 1, 1, 1], 0
    while True:
        states = [x * r for x, r in zip(states, [2, 3, 5, 4], strict=True)]
        over = [i for i, x in enumerate(states) if x > I64.max]
        if over:
            break
        t += 1
    with pytest.raises(RecurError) as error:
        recur.run(recur.load(POWERS, path="powers.yaml"), engine=engine)
    assert (error.value.output, error.value.t, error.value.lane) == ("x", t, (over[0],))
    assert error.value.exit_code == 1
    assert f"at t={t} (lane {over[0]})" in error.value.message


def test_a_fault_in_until_carries_no_output() -> None:
    text = ("steps: 5\nuntil: 10 // (2 - t) > 100\noutputs:\n"
            "  x:\n    dtype: int64\n    step: t\n")
    with pytest.raises(RecurError) as error:
        recur.run(recur.load(text, path="until.yaml"), engine="interp")
    assert (error.value.output, error.value.t, error.value.lane) == (None, 2, None)


def test_a_non_finite_value_under_check_carries_its_output_step_and_lane() -> None:
    # lanes of a 2x2 grid, each multiplied by its own factor every step: the first step
    # at which one passes float64's largest value, and the first such lane in C order
    factors = [[10.0, 1e100], [1e150, 1e-10]]
    text = (f"params:\n  f: {factors}\nsteps: 6\noutputs:\n"
            "  x:\n    initial: f * 0 + 1\n    step: x[t-1] * f\n")
    grid, t = [[1.0, 1.0], [1.0, 1.0]], 0
    while True:
        grid = [[x * f for x, f in zip(row, frow, strict=True)]
                for row, frow in zip(grid, factors, strict=True)]
        bad = [(i, j) for i in range(2) for j in range(2) if grid[i][j] == float("inf")]
        if bad:
            break
        t += 1
    with pytest.raises(RecurError) as error:
        recur.run(recur.load(text, path="grid.yaml"), check=True)
    assert (error.value.output, error.value.t, error.value.lane) == ("x", t, bad[0])
    assert error.value.span is not None and error.value.exit_code == 1
    unchecked = recur.run(recur.load(text, path="grid.yaml"))["x"]  # runs on
    assert np.isinf(unchecked[t][bad[0]])


def test_the_signals_between_layers_are_recur_errors_that_render() -> None:
    """A fault, a kernel's fault, an engine's refusal or failed compile that escaped its
    handler would still print as one clear error, never a traceback."""
    from recur.diagnostics import (
        CompileError,
        EngineError,
        Fault,
        KernelFault,
        RecurError,
        Unsupported,
        render,
    )

    assert issubclass(Unsupported, EngineError) and issubclass(CompileError, EngineError)
    stopped = KernelFault.at(7)
    assert isinstance(stopped, RecurError) and stopped.t == 7 and stopped.exit_code == 1
    assert render(stopped) == "recur: error: a compiled kernel stopped at a fault at t=7"
    spec = recur.load("outputs:\n  x:\n    dtype: int64\n    initial: 1\n"
                      "    step: x[t-1] * 3\nsteps: 2\n")
    node = recur.api.prepare(spec).program.output("x").step
    fault = Fault.of("integer overflow", None, node)
    assert (fault.kind, fault.span, fault.exit_code) == ("integer overflow", node.span, 1)
    assert render(fault).startswith("<spec>:5:11: error: integer overflow")
