"""The CLI through click's runner: help, options, exit codes, output selection."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy
import pytest
from click.testing import CliRunner

from recur import api
from recur.cli.main import cli

SPECS = Path(__file__).resolve().parents[2] / "specs"
FIB = str(SPECS / "fibonacci.yaml")


def invoke(*args: str, stdin: bytes | None = None) -> object:
    return CliRunner().invoke(cli, list(args), input=stdin)


@pytest.mark.parametrize("command", [[], ["run"], ["check"], ["grad"]])
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_every_command_has_help_with_an_example(command: list[str], flag: str) -> None:
    result = invoke(*command, flag)
    assert result.exit_code == 0
    assert "Example:" in result.stdout


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and "recur" in result.stdout


def test_run_prints_csv_to_stdout() -> None:
    result = invoke("run", FIB, "--steps", "5")
    assert result.exit_code == 0
    assert result.stdout == "x\n1\n2\n3\n5\n8\n"
    assert result.stderr == ""


def test_short_options_match_long_ones(tmp_path: Path) -> None:
    short = invoke("run", FIB, "-s", "4", "-f", "npy", "-o", str(tmp_path / "a.bin"))
    long = invoke("run", FIB, "--steps", "4", "--format", "npy", "--out", str(tmp_path / "b"))
    assert short.exit_code == long.exit_code == 0
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b").read_bytes()
    assert numpy.load(tmp_path / "a.bin").tolist() == [1, 2, 3, 5]


def test_npy_to_stdout_is_the_array() -> None:
    result = invoke("run", FIB, "-s", "3", "-f", "npy")
    assert result.exit_code == 0
    array = numpy.load(io.BytesIO(result.stdout_bytes))
    assert array.dtype == numpy.int64 and array.tolist() == [1, 2, 3]


def test_last_keeps_final_states() -> None:
    result = invoke("run", FIB, "--last")
    assert result.stdout == "x\n89\n"


def test_set_and_input_feed_params_and_sequences(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("params:\n  k: 2\nsequences:\n  s: input\noutputs:\n"
                    "  y: {step: 's * k', dtype: int64}\n")
    data = tmp_path / "s.csv"
    data.write_text("s\n1\n2\n3\n")
    result = invoke("run", str(spec), "--input", f"s={data}", "--set", "k=k * 5")
    assert result.exit_code == 2  # --set sees only params declared before k
    assert "unknown name 'k'" in result.stderr
    result = invoke("run", str(spec), "--input", f"s={data}", "--set", "k=10")
    assert result.exit_code == 0 and result.stdout == "y\n10\n20\n30\n"


def test_set_error_shows_the_expression_with_a_caret(tmp_path: Path) -> None:
    result = invoke("run", str(SPECS / "taylor_exp.yaml"), "--set", "x=1 + q")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[:3] == [
        "--set:1:7: error: unknown name 'q' in --set x",
        "    x=1 + q",
        "          ^",
    ]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--set", "nope=1"], "has no param 'nope'"),
        (["--set", "novalue"], "expects NAME=VALUE"),
        (["--input", "zz=f.npy"], "has no sequence or param 'zz'"),
        (["--output", "y"], "has no output 'y'"),
        (["-o", "out.txt"], "cannot tell the format"),
        (["--steps", "-1"], "--steps must be >= 0"),
        (["--bogus"], "recur: error: No such option '--bogus'"),
        (["--device", "tpu"], "recur: error: Invalid value for '--device'"),
    ],
)
def test_command_line_errors_exit_2_with_one_message(args: list[str], fragment: str) -> None:
    result = invoke("run", FIB, *args)
    assert result.exit_code == 2
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_missing_spec_file() -> None:
    result = invoke("run", "nowhere.yaml")
    assert result.exit_code == 2
    assert result.stderr.startswith("recur: error: cannot read spec 'nowhere.yaml'")


def test_keep_none_output_cannot_be_selected() -> None:
    result = invoke("run", str(SPECS / "taylor_exp.yaml"), "--output", "power")
    assert result.exit_code == 2 and "keep: none" in result.stderr


def test_device_cuda_without_cupy_says_how_to_install() -> None:
    pytest.importorskip("numpy")
    try:
        import cupy  # noqa: F401
    except ImportError:
        result = invoke("run", FIB, "--device", "cuda")
        assert result.exit_code == 2
        assert "pip install 'recur[cuda]'" in result.stderr
        assert "--device cpu" in result.stderr
    else:  # pragma: no cover - a machine with CuPy runs the GPU tests instead
        pytest.skip("CuPy is installed")


def test_device_auto_falls_back_to_cpu_without_cupy() -> None:
    result = invoke("run", FIB, "--device", "auto", "-s", "3")
    assert result.exit_code == 0 and result.stdout == "x\n1\n2\n3\n"


def test_check_reports_outputs_and_steps() -> None:
    result = invoke("check", FIB, str(SPECS / "pi.yaml"))
    assert result.exit_code == 0
    assert "steps: 10" in result.stdout
    assert "x: int64, state (), taps [-2, -1], keep all" in result.stdout
    assert "steps: 99998" in result.stdout


def test_check_verbose_says_which_engine_and_why(tmp_path: Path) -> None:
    mixes = tmp_path / "mixes.yaml"
    mixes.write_text("outputs:\n  h:\n    initial: [1.0, 3.0]\n"
                     "    step: h[t-1] / sum(h[t-1])\nsteps: 3\n")
    result = invoke("check", "-v", FIB, str(mixes))
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("  engine: ")]
    assert len(lines) == 2 and lines[0].startswith(("  engine: interp, because ",
                                                    "  engine: compiled, because "))
    assert "mixes lanes" in lines[1] or "no C compiler" in lines[1]
    assert "engine:" not in invoke("check", FIB).stdout


def test_check_stops_at_the_first_broken_spec(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("outputs:\n  x: {step: 'x[t-1]'}\n")
    result = invoke("check", str(broken), FIB)
    assert result.exit_code == 2
    assert "has no 'initial'" in result.stderr
    assert FIB not in result.stdout


def test_check_of_a_spec_needing_input_names_the_inputs(tmp_path: Path) -> None:
    spec = tmp_path / "in.yaml"
    spec.write_text("sequences:\n  s: input\noutputs:\n  y: {step: s}\n")
    result = invoke("check", str(spec))
    assert result.exit_code == 0 and "needs --input for: s" in result.stdout


def test_mixing_all_and_last_in_csv_suggests_alternatives(tmp_path: Path) -> None:
    spec = tmp_path / "mix.yaml"
    spec.write_text("steps: 2\noutputs:\n  a: {step: t}\n  b: {step: t, keep: last}\n")
    result = invoke("run", str(spec))
    assert result.exit_code == 2
    assert "--last" in result.stderr and ".npz" in result.stderr
    assert invoke("run", str(spec), "--last").stdout == "a,b\n1.0,1.0\n"


def test_meta_sidecar_says_how_the_result_was_made(tmp_path: Path) -> None:
    import hashlib
    import json

    spec = SPECS / "newton_sqrt.yaml"
    meta = tmp_path / "run.json"
    result = invoke("run", str(spec), "--set", "a=9", "-o", str(tmp_path / "x.npy"),
                    "--meta", str(meta))
    assert result.exit_code == 0, result.stderr
    data = json.loads(meta.read_text())
    assert data["spec_sha256"] == hashlib.sha256(spec.read_bytes()).hexdigest()
    assert data["params"]["a"] == 9
    steps_run = len(numpy.load(tmp_path / "x.npy"))
    assert data["steps_run"] == steps_run
    assert data["stopped"] == {"by": "until", "at_t": steps_run - 1}
    assert data["options"]["sets"] == ["a=9"]
    assert data["device"] == "cpu" and data["engine"] == "interp"
    assert data["outputs"]["x"] == {"dtype": "float64", "shape": [steps_run], "keep": "all"}
    assert data["elapsed_seconds"] >= 0


def test_meta_lists_small_array_params_and_describes_large_ones(tmp_path: Path) -> None:
    import json

    spec = tmp_path / "s.yaml"
    spec.write_text("params:\n  small: [1, 2]\n  big: zeros(5000)\nsteps: 2\n"
                    "outputs:\n  y: {step: 'sum(small) + sum(big) + t'}\n")
    meta = tmp_path / "m.json"
    assert invoke("run", str(spec), "--meta", str(meta)).exit_code == 0
    params = json.loads(meta.read_text())["params"]
    assert params["small"] == {"dtype": "int64", "shape": [2], "values": [1, 2]}
    assert params["big"] == {"dtype": "float64", "shape": [5000]}


# --- RunOptions: the CLI's run is the library's -------------------------------------------


def test_cli_and_library_run_the_same_options(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("params:\n  k: 2\n  c: 1.5\nsequences:\n  s: input\noutputs:\n"
                    "  y:\n    initial: 0.0\n    step: y[t-1] * c + s * k\n")
    samples = [0.5, -1.25, 2.0, 3.5, 7.0]
    data = tmp_path / "s.npy"
    numpy.save(data, numpy.array(samples))
    out = tmp_path / "out.npz"
    result = invoke("run", str(spec), "--input", f"s={data}", "--set", "k=3", "--set",
                    "c=k / 6", "--steps", "4", "--last", "--engine", "interp", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    options = api.RunOptions(steps=4, params={"k": "3", "c": "k / 6"},
                             inputs={"s": numpy.array(samples)}, last=True, engine="interp")
    by_options = api.run_with(api.load(str(spec)), options)
    by_keywords = api.run(str(spec), steps=4, params={"k": "3", "c": "k / 6"},
                          inputs={"s": numpy.array(samples)}, last=True, engine="interp")
    y = 0.0
    for t in range(4):  # the spec's step by hand
        y = y * 0.5 + samples[t] * 3
    with numpy.load(out) as written:
        assert written["y"].tolist() == by_options["y"].tolist() == by_keywords["y"].tolist()
    assert by_options["y"].shape == () and by_options["y"].item() == y
    assert by_options.engine == "interp"


def test_explain_prepares_what_the_options_say() -> None:
    compiled = api.prepare_with(api.load(FIB), api.RunOptions(steps=7, last=True))
    assert compiled.program.steps == 7
    assert "steps: 7" in invoke("explain", FIB, "--steps", "7").stdout


@pytest.mark.parametrize("typo", [{"step": 5}, {"param": {}}, {"checks": True}])
def test_a_misspelt_run_option_is_a_type_error(typo: dict[str, object]) -> None:
    with pytest.raises(TypeError, match=next(iter(typo))):
        api.RunOptions(**typo)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=next(iter(typo))):
        dataclasses.replace(api.RunOptions(), **typo)
    with pytest.raises(TypeError, match=next(iter(typo))):
        api.run(FIB, **typo)  # type: ignore[arg-type]


def test_run_options_cannot_be_changed_after_they_are_made() -> None:
    options = api.RunOptions(steps=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.steps = 4  # type: ignore[misc]
