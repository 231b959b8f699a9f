"""`--meta`: the sidecar names each input by path, SHA-256, dtype and shape, and its engine
is a name `--engine` takes back."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy
import pytest
from click.testing import CliRunner

from recur.cli.main import cli
from recur.io import read_input

SPECS = Path(__file__).resolve().parents[2] / "specs"
MOVING = str(SPECS / "moving_average.yaml")


def run_with_meta(tmp_path: Path, *args: str, stdin: bytes | None = None) -> dict[str, Any]:
    meta = tmp_path / "run.json"
    result = CliRunner().invoke(cli, ["run", *args, "-o", str(tmp_path / "out.npz"),
                                      "--meta", str(meta)], input=stdin)
    assert result.exit_code == 0, result.output
    return dict(json.loads(meta.read_text()))


def write_npy(path: Path, values: numpy.ndarray) -> None:
    numpy.save(path, values)


def write_npz(path: Path, values: numpy.ndarray) -> None:
    numpy.savez_compressed(path, other=numpy.ones(3), s=values)  # the wanted member second


def write_csv(path: Path, values: numpy.ndarray) -> None:
    path.write_text("s\n" + "".join(f"{value!r}\n" for value in values.tolist()))


@pytest.mark.parametrize("write", [write_npy, write_npz, write_csv])
def test_an_input_file_is_named_by_path_hash_dtype_and_shape(tmp_path: Path,
                                                               write: Any) -> None:
    values = numpy.linspace(0.0, 1.0, 40_000)  # an .npy larger than one read
    path = tmp_path / f"s.{write.__name__.removeprefix('write_')}"
    write(path, values)
    data = run_with_meta(tmp_path, MOVING, "--input", f"s={path}")
    assert data["inputs"] == {"s": {
        "path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "dtype": "float64", "shape": [40_000]}}


def test_the_dtype_is_the_one_the_run_used(tmp_path: Path) -> None:
    path = tmp_path / "s.npy"
    numpy.save(path, numpy.arange(10, dtype=numpy.int16))  # widened to int64 on reading
    entry = run_with_meta(tmp_path, MOVING, "--input", f"s={path}")["inputs"]["s"]
    assert (entry["dtype"], entry["shape"]) == ("int64", [10])
    assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("fmt", ["npy", "csv"])
def test_standard_input_is_named_by_the_hash_of_what_was_read(tmp_path: Path,
                                                             fmt: str) -> None:
    buffer = io.BytesIO()
    values = numpy.arange(12.0)
    if fmt == "npy":
        numpy.save(buffer, values)
    else:
        buffer.write(b"s\n" + b"".join(b"%r\n" % value for value in values.tolist()))
    data = run_with_meta(tmp_path, MOVING, "--input", "s=-", stdin=buffer.getvalue())
    assert data["inputs"]["s"] == {
        "path": "-", "sha256": hashlib.sha256(buffer.getvalue()).hexdigest(),
        "dtype": "float64", "shape": [12]}


def test_a_run_without_inputs_lists_none(tmp_path: Path) -> None:
    assert run_with_meta(tmp_path, MOVING)["inputs"] == {}


def test_reading_feeds_the_digest_every_byte_once_whatever_the_loader_seeks(
        tmp_path: Path) -> None:
    """An .npz is read directory first, an .npy's header twice: the digest still sees the
    file's bytes once, in order."""
    path = tmp_path / "a.npz"
    numpy.savez(path, a=numpy.arange(5), b=numpy.arange(7.0))
    digest = hashlib.sha256()
    numpy.testing.assert_array_equal(read_input("b", str(path), digest=digest),
                                     numpy.arange(7.0))
    assert digest.hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(("spec", "args"), [
    ("fibonacci.yaml", ["--steps", "10"]),  # auto: the interpreter (too short to compile)
    ("accumulate.yaml", ["--set", "n=300000", "--last"]),  # auto: compiled, with a C compiler
    ("logistic_sweep.yaml", ["--steps", "5", "--engine", "interp"]),
])
def test_the_sidecar_engine_is_a_name_engine_takes(tmp_path: Path, spec: str,
                                                   args: list[str]) -> None:
    first = run_with_meta(tmp_path, str(SPECS / spec), *args)
    again = run_with_meta(tmp_path, str(SPECS / spec), *args, "--engine", first["engine"])
    assert first["engine"] in ("interp", "compiled")
    assert again["engine"] == first["engine"]
