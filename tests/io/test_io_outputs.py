"""Writing results: formats, exact CSV text, round trips, stdout, atomic files."""

from __future__ import annotations

import csv
import io
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from recur.diagnostics import UsageError
from recur.io.inputs import read_input
from recur.io.outputs import resolve_format, write_outputs
from recur.io.writers import OutputArray, write_csv, write_npy, write_npz


def _csv_text(*outputs: OutputArray) -> str:
    stream = io.StringIO()
    write_csv(stream, outputs)
    return stream.getvalue()


def _stdout_bytes(outputs: list[OutputArray], fmt: str | None = None) -> bytes:
    stdout = io.BytesIO()
    write_outputs(outputs, None, fmt, stdout)
    assert not stdout.closed
    return stdout.getvalue()


def _usage_error(call, *args) -> UsageError:
    with pytest.raises(UsageError) as info:
        call(*args)
    return info.value


def _listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


# resolve_format


@pytest.mark.parametrize(
    ("path", "fmt", "expected"),
    [
        ("out.csv", "npy", "npy"),
        ("out.txt", "npz", "npz"),
        (None, "npz", "npz"),
        ("out.npy", None, "npy"),
        ("dir.d/OUT.NPZ", None, "npz"),
        ("out.csv", None, "csv"),
        (None, None, "csv"),
        ("-", None, "csv"),
    ],
)
def test_resolve_format(path: str | None, fmt: str | None, expected: str) -> None:
    assert resolve_format(path, fmt).name == expected


@pytest.mark.parametrize("path", ["out.txt", "out"])
def test_resolve_format_needs_a_known_suffix(path: str) -> None:
    error = _usage_error(resolve_format, path, None)
    assert str(error) == (
        f"cannot tell the format of '{path}': use --format or a .npy, .npz or .csv suffix"
    )


def test_resolve_format_rejects_unknown_formats() -> None:
    assert "unknown format 'txt'" in str(_usage_error(resolve_format, None, "txt"))


# CSV text


def test_csv_scalar_per_step() -> None:
    values = [0.0, 1.0, 3.0, 6.0]
    text = _csv_text(OutputArray("sum", np.array(values), per_step=True))
    assert text == "sum\n" + "".join(f"{v!r}\n" for v in values)


def test_csv_headers_are_quoted_when_they_hold_a_comma() -> None:
    array = np.arange(12, dtype=np.int64).reshape(2, 2, 3)
    text = _csv_text(
        OutputArray("v", np.array([[1, 2], [3, 4]]), per_step=True),
        OutputArray("x", array, per_step=True),
    )
    header, first, second = text.splitlines()
    assert header == 'v[0],v[1],"x[0,0]","x[0,1]","x[0,2]","x[1,0]","x[1,1]","x[1,2]"'
    assert first == "1,2," + ",".join(map(str, range(6)))
    assert second == "3,4," + ",".join(map(str, range(6, 12)))


def test_csv_reads_back_with_the_csv_module() -> None:
    array = np.arange(6).reshape(1, 2, 3)
    rows = list(csv.reader(io.StringIO(_csv_text(OutputArray("x", array, per_step=True)))))
    assert rows[0] == [f"x[{i},{j}]" for i in range(2) for j in range(3)]
    assert rows[1] == [str(v) for v in range(6)]


def test_csv_float_text() -> None:
    values = [0.1, 15.0, 1e16, float("nan"), float("inf"), float("-inf"), -0.0, 1 / 3]
    text = _csv_text(OutputArray("x", np.array(values), per_step=True))
    assert text.splitlines()[1:] == [
        "0.1",
        "15.0",
        "1e+16",
        "nan",
        "inf",
        "-inf",
        "-0.0",
        repr(1 / 3),
    ]


def test_csv_float32_is_written_as_the_float64_it_widens_to() -> None:
    array = np.array([0.1, 1 / 3], dtype=np.float32)
    text = _csv_text(OutputArray("x", array, per_step=True))
    assert text.splitlines()[1:] == [repr(float(np.float64(v))) for v in array]
    assert text.splitlines()[1] != "0.1"


def test_csv_ints_bools_and_complex() -> None:
    text = _csv_text(
        OutputArray("n", np.array([-(2**63), 7], dtype=np.int64), per_step=True),
        OutputArray("k", np.array([3, 4], dtype=np.int32), per_step=True),
        OutputArray("b", np.array([True, False]), per_step=True),
        OutputArray("c", np.array([1.5 + 2j, complex(0, -1)]), per_step=True),
    )
    assert text == f"n,k,b,c\n{-(2**63)},3,true,(1.5+2j)\n7,4,false,-1j\n"


def test_csv_final_states_are_one_line() -> None:
    text = _csv_text(
        OutputArray("s", np.array(55), per_step=False),
        OutputArray("v", np.array([1.5, 2.5]), per_step=False),
    )
    assert text == "s,v[0],v[1]\n55,1.5,2.5\n"


def test_csv_zero_steps_is_a_header_only() -> None:
    text = _csv_text(OutputArray("x", np.zeros((0, 2)), per_step=True))
    assert text == "x[0],x[1]\n"


def test_csv_cannot_mix_all_and_last() -> None:
    error = _usage_error(
        _csv_text,
        OutputArray("x", np.arange(3), per_step=True),
        OutputArray("y", np.array(1), per_step=False),
        OutputArray("z", np.arange(3), per_step=True),
    )
    assert str(error) == "cannot mix outputs kept 'all' (x, z) and 'last' (y) in one CSV"
    (note,) = error.notes
    assert "--output NAME" in note
    assert "--last" in note
    assert ".npz" in note


# .npy and .npz


def test_npy_holds_one_output() -> None:
    outputs = [OutputArray(name, np.arange(3), per_step=True) for name in "xy"]
    error = _usage_error(write_npy, io.BytesIO(), outputs)
    assert str(error) == ".npy holds one array; choose one with --output NAME or write .npz"


def test_npy_stream() -> None:
    stream = io.BytesIO()
    array = np.arange(6, dtype=np.int32).reshape(3, 2)
    write_npy(stream, [OutputArray("x", array, per_step=True)])
    stream.seek(0)
    loaded = np.load(stream, allow_pickle=False)
    assert loaded.dtype == np.int32
    np.testing.assert_array_equal(loaded, array)


def test_npz_stores_each_output_under_its_name() -> None:
    arrays = {"file": np.arange(3), "allow_pickle": np.array(2.5), "x": np.ones((2, 2), bool)}
    stream = io.BytesIO()
    write_npz(stream, [OutputArray(name, a, per_step=True) for name, a in arrays.items()])
    stream.seek(0)
    with np.load(stream, allow_pickle=False) as loaded:
        assert list(loaded.keys()) == list(arrays)
        for name, array in arrays.items():
            assert loaded[name].dtype == array.dtype
            np.testing.assert_array_equal(loaded[name], array)


# Round trips through write_outputs and read_input

ROUND_TRIP_ARRAYS = {
    "int64": np.array([[0, -5], [2**62, 7]], dtype=np.int64),
    "float64": np.array([[0.1, np.nan], [np.inf, -np.inf], [1e16, -0.0]]),
    "float32": np.array([[0.1, 1 / 3]], dtype=np.float32),
    "bool": np.array([[True, False, True]]),
    "complex": np.array([[1.5 + 2j, -1j], [np.nan + 1j, 0j]]),
}


def _per_step(state_shape: tuple[int, ...], dtype_name: str) -> np.ndarray:
    """A (3, *state_shape) array made from the sample values of one dtype."""
    sample = ROUND_TRIP_ARRAYS[dtype_name].ravel()
    size = 3 * int(np.prod(state_shape))
    return np.resize(sample, size).reshape(3, *state_shape)


def _assert_same(loaded: np.ndarray, expected: np.ndarray) -> None:
    assert loaded.dtype == expected.dtype
    assert loaded.shape == expected.shape
    np.testing.assert_array_equal(loaded, expected)
    if expected.dtype.kind == "f":  # -0.0 stays -0.0; a NaN's sign is not kept
        numbers = ~np.isnan(expected)
        np.testing.assert_array_equal(np.signbit(loaded[numbers]), np.signbit(expected[numbers]))


@pytest.mark.parametrize("fmt", ["npy", "npz", "csv"])
@pytest.mark.parametrize("dtype_name", list(ROUND_TRIP_ARRAYS))
@pytest.mark.parametrize("state_shape", [(), (2,), (2, 3)], ids=str)
def test_round_trip(
    tmp_path: Path, fmt: str, dtype_name: str, state_shape: tuple[int, ...]
) -> None:
    array = _per_step(state_shape, dtype_name)
    path = str(tmp_path / f"out.{fmt}")
    write_outputs([OutputArray("x", array, per_step=True)], path, None)
    expected = array.astype(np.float64) if fmt == "csv" and dtype_name == "float32" else array
    _assert_same(read_input("x", path), expected)


@pytest.mark.parametrize("fmt", ["npy", "npz", "csv"])
def test_round_trip_of_a_final_state_through_stdout(fmt: str) -> None:
    array = np.array([[0.5, 2.0, -1.0], [3.0, np.nan, 1e300]])
    data = _stdout_bytes([OutputArray("x", array, per_step=False)], fmt)
    loaded = read_input("x", "-", io.BytesIO(data))
    # CSV has no place for a state without a step axis: it comes back as one row.
    _assert_same(loaded, array[np.newaxis] if fmt == "csv" else array)


def test_round_trip_of_several_outputs_through_npz(tmp_path: Path) -> None:
    outputs = [
        OutputArray("x", np.arange(4.0), per_step=True),
        OutputArray("y", np.array([[1, 2]]), per_step=True),
    ]
    path = str(tmp_path / "out.npz")
    write_outputs(outputs, path, None)
    for output in outputs:
        _assert_same(read_input(output.name, path), output.array)


def test_csv_of_one_spec_feeds_another_under_another_name() -> None:
    array = np.array([[1.0, 2.0], [3.0, 4.5]])
    data = _stdout_bytes([OutputArray("x", array, per_step=True)])
    _assert_same(read_input("s", "-", io.BytesIO(data)), array)


_SHAPES = st.one_of(st.tuples(st.integers(1, 20)), st.tuples(st.integers(1, 20), st.just(2)))


@given(array=hnp.arrays(st.sampled_from([np.float64, np.int64]), _SHAPES))
def test_csv_round_trip_property(array: np.ndarray) -> None:
    data = _stdout_bytes([OutputArray("x", array, per_step=True)], "csv")
    _assert_same(read_input("x", "-", io.BytesIO(data)), array)


# Standard output


def test_csv_to_stdout_leaves_it_open_and_flushed() -> None:
    data = _stdout_bytes([OutputArray("x", np.array([1, 2]), per_step=True)])
    assert data == b"x\n1\n2\n"


def test_stdout_defaults_to_sys_stdout(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    write_outputs([OutputArray("x", np.array([1.5]), per_step=True)], "-", None)
    assert capsysbinary.readouterr().out == b"x\n1.5\n"


class _Terminal(io.BytesIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("fmt", ["npy", "npz"])
def test_binary_to_a_terminal_is_refused(fmt: str) -> None:
    terminal = _Terminal()
    error = _usage_error(
        write_outputs, [OutputArray("x", np.arange(3), per_step=True)], None, fmt, terminal
    )
    assert str(error) == f"refusing to write binary .{fmt} to a terminal"
    assert error.notes == ("use -o FILE, pipe it, or --format csv",)
    assert terminal.getvalue() == b""


def test_csv_to_a_terminal_is_fine() -> None:
    terminal = _Terminal()
    write_outputs([OutputArray("x", np.arange(2), per_step=True)], None, None, terminal)
    assert terminal.getvalue() == b"x\n0\n1\n"


# Files


def test_invalid_writes_create_nothing(tmp_path: Path) -> None:
    two = [OutputArray(name, np.arange(3), per_step=True) for name in "xy"]
    mixed = [two[0], OutputArray("y", np.array(1), per_step=False)]
    with pytest.raises(UsageError, match="holds one array"):
        write_outputs(two, str(tmp_path / "out.npy"), None)
    with pytest.raises(UsageError, match="cannot mix"):
        write_outputs(mixed, str(tmp_path / "out.csv"), None)
    with pytest.raises(UsageError, match="cannot tell the format"):
        write_outputs(two, str(tmp_path / "out.txt"), None)
    assert _listing(tmp_path) == []


def test_file_mode_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_outputs(
            [OutputArray("x", np.arange(3), per_step=True)], str(tmp_path / "a.csv"), None
        )
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.csv").st_mode) == 0o640


def test_relative_path_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_outputs([OutputArray("x", np.arange(2), per_step=True)], "out.csv", None)
    assert (tmp_path / "out.csv").read_text() == "x\n0\n1\n"


def _failing_midway(exception: BaseException):
    def write_array(stream, array, **kwargs) -> None:
        stream.write(b"\x93NUMPY partial")
        raise exception

    return write_array


@pytest.mark.parametrize("exception", [RuntimeError("boom"), KeyboardInterrupt()])
@pytest.mark.parametrize("fmt", ["npy", "npz"])
def test_failed_binary_write_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, exception: BaseException
) -> None:
    monkeypatch.setattr(np.lib.format, "write_array", _failing_midway(exception))
    with pytest.raises(type(exception)):
        write_outputs(
            [OutputArray("x", np.arange(3), per_step=True)], str(tmp_path / f"o.{fmt}"), None
        )
    assert _listing(tmp_path) == []


def test_failed_csv_write_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old\n")

    class HalfWriter:
        def __init__(self, stream, **kwargs) -> None:
            self.stream = stream

        def writerow(self, row) -> None:
            self.stream.write(",".join(row) + "\n")

        def writerows(self, rows) -> None:
            self.stream.write("1\n" * 10_000)
            raise KeyboardInterrupt

    monkeypatch.setattr(csv, "writer", HalfWriter)
    with pytest.raises(KeyboardInterrupt):
        write_outputs([OutputArray("x", np.arange(3), per_step=True)], str(target), None)
    assert target.read_text() == "old\n"
    assert _listing(tmp_path) == ["out.csv"]


def test_existing_file_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old content that is longer than the new one\n" * 10)
    write_outputs([OutputArray("x", np.array([1]), per_step=True)], str(target), None)
    assert target.read_text() == "x\n1\n"
    assert _listing(tmp_path) == ["out.csv"]


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o604, 0o755])
def test_a_replaced_file_keeps_its_mode(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    target.chmod(mode)
    old = os.umask(0o022)  # would give 0644 to a new file
    try:
        write_outputs([OutputArray("x", np.array([1]), per_step=True)], str(target), None)
    finally:
        os.umask(old)
    assert target.read_text() == "x\n1\n"
    assert stat.S_IMODE(os.stat(target).st_mode) == mode


def test_set_id_bits_are_not_carried_to_the_new_content(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    target.chmod(0o4755)
    write_outputs([OutputArray("x", np.array([1]), per_step=True)], str(target), None)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o755


def test_through_a_link_the_linked_file_keeps_its_mode(tmp_path: Path) -> None:
    (tmp_path / "real.csv").write_text("old\n")
    (tmp_path / "real.csv").chmod(0o600)
    (tmp_path / "link.csv").symlink_to("real.csv")
    write_outputs([OutputArray("x", np.array([1]), per_step=True)], str(tmp_path / "link.csv"),
                  None)
    assert (tmp_path / "real.csv").read_text() == "x\n1\n"
    assert stat.S_IMODE(os.stat(tmp_path / "real.csv").st_mode) == 0o600
    assert (tmp_path / "link.csv").is_symlink()


def _read_only(tmp_path: Path) -> Path:
    target = tmp_path / "out.csv"
    target.write_text("precious\n")
    target.chmod(0o444)
    return target


def _refused(target: Path) -> None:
    error = _usage_error(write_outputs, [OutputArray("x", np.array([1]), True)], str(target),
                         None)
    assert str(error) == f"cannot replace {str(target)!r}: this user may not write it (mode 0444)"
    assert error.notes == ("--force replaces it, keeping its mode",)
    assert error.exit_code == 2
    assert target.read_text() == "precious\n"
    assert _listing(target.parent) == [target.name]


def _forced(target: Path) -> None:
    write_outputs([OutputArray("x", np.array([1]), True)], str(target), None, force=True)
    assert target.read_text() == "x\n1\n"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o444


def test_a_file_this_user_may_not_write_is_refused_unless_forced(tmp_path: Path) -> None:
    target = _read_only(tmp_path)
    if os.access(target, os.W_OK):
        pytest.skip("permissions do not apply to this user")
    _refused(target)
    _forced(target)


def test_the_refusal_follows_what_the_system_says_this_user_may_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same refusal for every user, root included: `os.access` says no, as it says to
    a user that permissions bind."""
    target = _read_only(tmp_path)
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    _refused(target)
    _forced(target)


def test_root_replaces_a_read_only_file_as_cp_does(tmp_path: Path) -> None:
    target = _read_only(tmp_path)
    if not os.access(target, os.W_OK):
        pytest.skip("permissions bind this user (not root)")
    write_outputs([OutputArray("x", np.array([1]), True)], str(target), None)
    assert target.read_text() == "x\n1\n"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o444


def test_disk_full_is_reported_and_cleaned_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(fd: int) -> None:
        raise OSError(28, os.strerror(28))

    monkeypatch.setattr(os, "fsync", no_space)
    path = str(tmp_path / "out.npy")
    error = _usage_error(write_outputs, [OutputArray("x", np.arange(3), True)], path, None)
    assert str(error) == f"cannot write {path!r}: {os.strerror(28)}"
    assert _listing(tmp_path) == []


def test_missing_folder(tmp_path: Path) -> None:
    path = str(tmp_path / "out" / "x.npy")
    error = _usage_error(write_outputs, [OutputArray("x", np.arange(3), True)], path, None)
    assert str(error) == f"cannot write {path!r}: No such file or directory"


def test_path_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "out.csv").mkdir()
    path = str(tmp_path / "out.csv")
    error = _usage_error(write_outputs, [OutputArray("x", np.arange(3), True)], path, None)
    assert str(error) == f"cannot write {path!r}: Is a directory"
    assert _listing(tmp_path) == ["out.csv"]


def test_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("permissions do not apply to this user")
        path = str(folder / "x.csv")
        error = _usage_error(write_outputs, [OutputArray("x", np.arange(3), True)], path, None)
        assert str(error) == f"cannot write {path!r}: Permission denied"
        assert _listing(folder) == []
    finally:
        folder.chmod(0o755)


# Devices and pipes named as files


SPECS = Path(__file__).resolve().parents[2] / "specs"


def _recur(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "recur", "run", *args], capture_output=True,
                          timeout=120, check=False)


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="needs /dev/null")
def test_an_npz_archive_of_several_outputs_can_go_to_dev_null() -> None:
    done = _recur(str(SPECS / "lotka_volterra.yaml"), "-o", "/dev/null", "-f", "npz")
    assert done.returncode == 0 and done.stderr == b""


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_an_npz_archive_streams_into_a_named_pipe(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    done = _recur(str(SPECS / "lotka_volterra.yaml"), "-o", str(fifo), "-f", "npz")
    reader.join(timeout=60)
    assert done.returncode == 0, done.stderr
    archive = np.load(io.BytesIO(received[0]))
    expected = np.load(io.BytesIO(_recur(str(SPECS / "lotka_volterra.yaml"), "-o", "-", "-f",
                                         "npz").stdout))
    assert sorted(archive.files) == sorted(expected.files) and len(expected.files) == 2
    for name in expected.files:
        np.testing.assert_array_equal(archive[name], expected[name])


@pytest.mark.skipif(not os.path.exists("/dev/stdout"), reason="needs /dev/stdout")
def test_dev_stdout_writes_into_the_pipe_that_standard_output_is() -> None:
    through_name = _recur(str(SPECS / "fibonacci.yaml"), "-o", "/dev/stdout", "-f", "csv")
    through_dash = _recur(str(SPECS / "fibonacci.yaml"), "-o", "-", "-f", "csv")
    assert through_name.returncode == 0, through_name.stderr
    assert through_name.stdout == through_dash.stdout and through_name.stdout.count(b"\n") > 5


# --force on the command line: refused before the run, replaced with it

OVERFLOWING = ("steps: 200\noutputs:\n  x:\n    dtype: int64\n    initial: [0, 1]\n"
               "    step: x[t-1] + x[t-2]\n")


@pytest.mark.parametrize(("command", "name"), [(["run", "-o"], "out.csv"),
                                             (["run", "--meta"], "out.json"),
                                             (["plot", "-o"], "out.png")])
def test_the_command_line_refuses_before_running_and_force_replaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str], name: str
) -> None:
    from click.testing import CliRunner

    from recur.cli.main import cli

    if command[0] == "plot":
        pytest.importorskip("matplotlib")
    target = tmp_path / name
    target.write_text("precious\n")
    target.chmod(0o444)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: (os.fspath(path) != str(target)
                                                          and real_access(path, mode)))
    spec = tmp_path / "spec.yaml"
    spec.write_text(OVERFLOWING)  # would fail at t=91: the refusal comes first
    result = CliRunner().invoke(cli, [*command, str(target), str(spec)])
    assert result.exit_code == 2
    assert "cannot replace" in result.stderr and "overflow" not in result.stderr
    assert target.read_text() == "precious\n"
    spec.write_text(OVERFLOWING.replace("200", "5"))
    extra = ["-o", str(tmp_path / "x.csv")] if command[1] == "--meta" else []
    result = CliRunner().invoke(cli, [*command, str(target), str(spec), "--force", *extra])
    assert result.exit_code == 0, result.output
    assert target.read_bytes() != b"precious\n"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o444


# stale temporary files: what a writer killed outright (SIGKILL, the OOM killer) left


def _temporary(folder: Path, base: str, age: float = 0.0, middle: str = "0123abcd.k2_x9qzt"
               ) -> Path:
    path = folder / f".{base}.{middle}.tmp"
    path.write_bytes(b"partial")
    if age:
        past = path.stat().st_mtime - age
        os.utime(path, (past, past))
    return path


def test_stale_temporaries_of_the_target_are_removed_by_the_next_write(tmp_path: Path) -> None:
    stale = _temporary(tmp_path, "out.csv", age=3600)
    kept = [
        _temporary(tmp_path, "out.csv", middle="89abcdef.aaaaaaaa"),  # fresh: maybe live
        _temporary(tmp_path, "other.csv", age=3600),  # another target's
        _temporary(tmp_path, "out.csv", age=3600, middle="0123abcg.aaaaaaaa"),  # not hex
        _temporary(tmp_path, "out.csv", age=3600, middle="aaaaaaaa"),  # not recur's naming
        _temporary(tmp_path, "out.csv.x", age=3600),
    ]
    write_outputs([OutputArray("x", np.arange(3.0), True)], str(tmp_path / "out.csv"), None)
    assert (tmp_path / "out.csv").read_text() == "x\n0.0\n1.0\n2.0\n"
    assert not stale.exists()
    assert _listing(tmp_path) == sorted(["out.csv", *(path.name for path in kept)])


def test_a_live_writer_s_temporary_is_kept_however_old(tmp_path: Path) -> None:
    """A writer that started before this process holds a lock on its temporary file."""
    live = _temporary(tmp_path, "out.csv", age=3600)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys\n"
         f"f = open({str(live)!r}, 'rb'); fcntl.flock(f, fcntl.LOCK_EX)\n"
         "print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        write_outputs([OutputArray("x", np.arange(3.0), True)], str(tmp_path / "out.csv"), None)
        assert live.exists()
    finally:
        holder.communicate("")
    write_outputs([OutputArray("x", np.arange(3.0), True)], str(tmp_path / "out.csv"), None)
    assert not live.exists()  # its writer is gone


def test_a_write_killed_outright_leaves_a_temporary_the_next_run_removes(
        tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("outputs:\n  x:\n    initial: 0.0\n    step: x[t-1] + 1\n")
    target = tmp_path / "out.csv"
    command = [sys.executable, "-m", "recur", "run", str(spec), "-o", str(target)]
    writer = subprocess.Popen([*command, "--steps", "10000000"], stderr=subprocess.PIPE)
    try:
        while not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]:
            assert writer.poll() is None, writer.communicate()[1]
            time.sleep(0.01)
    finally:
        writer.kill()
        writer.communicate()
    assert len(_listing(tmp_path)) == 2  # the spec, the temporary: no out.csv
    done = subprocess.run([*command, "--steps", "2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert _listing(tmp_path) == ["out.csv", "s.yaml"]
    assert target.read_text() == "x\n1.0\n2.0\n"
