"""The compiled engine's cache and compiler under damage (docs/robustness.md, "The kernel
cache and the C compiler"): a damaged kernel is rebuilt, a compiler that hangs or fails
is stopped or reported, SIGTERM leaves no compiler and no scratch folder behind, and a
cache that cannot be used (read-only, full, not a folder) gives a note and a temporary
folder. Every result is checked against a plain Python loop."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy
import pytest
from click.testing import CliRunner

import recur
from recur import api
from recur.cli.main import cli
from recur.diagnostics import RecurError
from recur.engine.c import advice, native
from recur.engine.c import engine as c_engine

pytestmark = pytest.mark.skipif(not native.available(), reason="no C compiler")

ROOT = Path(__file__).resolve().parents[2]
STEPS = 20_000
SPEC = (f"steps: {STEPS}\noutputs:\n  x:\n    dtype: int64\n    initial: 1\n"
        "    step: (x[t-1] * 5 + 3) % 1000003\n")


def expected() -> list[int]:
    values, x = [], 1
    for _ in range(STEPS):
        x = (x * 5 + 3) % 1000003
        values.append(x)
    return values


def kernel_path(text: str = SPEC) -> Path:
    spec = recur.load(text)
    return native.library_path(c_engine.CEngine().kernel(api.prepare(spec).program).source)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache folder, nothing loaded in this process yet, and a private temporary
    folder (to see that nothing is left in it)."""
    folder = tmp_path / "kernels"
    monkeypatch.setenv("RECUR_CACHE_DIR", str(folder))
    monkeypatch.setattr(native, "_loaded", {})
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    return folder


def fake_compiler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> Path:
    """Set CC to a shell script with `body`; it writes its process ids to the returned file."""
    pids = tmp_path / "pids"
    script = tmp_path / "fake-cc"
    script.write_text(f"#!/bin/sh\necho $$ >> {pids}\n{body}\n")
    script.chmod(0o755)
    monkeypatch.setenv("CC", str(script))
    native.compiler.cache_clear()
    native.machine.cache_clear()
    monkeypatch.setattr(native, "_loaded", {})
    return pids


@pytest.fixture(autouse=True)
def _forget_the_compiler() -> object:
    yield
    native.compiler.cache_clear()
    native.machine.cache_clear()


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie, whose parent has not reaped it, does not)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] not in ("Z", "X")


def run_compiled(engine: str = "compiled") -> list[int]:
    return recur.run(recur.load(SPEC), engine=engine)["x"].tolist()


def library_without_kernel(path: Path) -> None:
    source = path.with_suffix(".c")
    source.write_text("int other(void) { return 1; }\n")
    subprocess.run([*(native.compiler() or []), "-shared", "-fPIC", "-o", str(path),
                    str(source)], check=True)
    source.unlink()


def rewrite(path: Path, data: bytes) -> None:
    """Give `path` new contents as a new file. This process has the kernel mapped, and
    changing that file in place (truncating it) would end the process with SIGBUS when the
    library's pages are next read, at exit at the latest; another process's damage looks
    the same to a later run either way."""
    damaged = path.with_name(path.name + ".damaged")
    damaged.write_bytes(data)
    os.replace(damaged, path)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated to 100 bytes": lambda path: rewrite(path, path.read_bytes()[:100]),
    "truncated to 0 bytes": lambda path: rewrite(path, b""),
    "random bytes": lambda path: rewrite(
        path,
        numpy.random.default_rng(7).integers(0, 256, 20_000, dtype=numpy.uint8).tobytes()),
    "a folder": lambda path: (path.unlink(), path.mkdir(), (path / "x").write_text("x")),
    "a library without kernel": library_without_kernel,
}


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("engine", ["compiled", "auto"])
def test_a_damaged_kernel_is_rebuilt(damage: str, engine: str, cache: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "is_cached", lambda source: True)  # auto takes the kernel
    assert run_compiled() == expected()
    path = kernel_path()
    DAMAGE[damage](path)
    monkeypatch.setattr(native, "_loaded", {})  # a later run
    with pytest.warns(native.EngineNote, match="does not load .*; rebuilding it"):
        result = recur.run(recur.load(SPEC), engine=engine)
    assert result.engine == "compiled" and result["x"].tolist() == expected()
    assert path.is_file() and sorted(p.name for p in cache.iterdir()) == [path.name]
    loads = [sys.executable, "-c", f"import ctypes; ctypes.CDLL({str(path)!r}).kernel"]
    assert subprocess.run(loads, check=False).returncode == 0  # in a later process too


def test_the_command_line_says_a_damaged_kernel_was_rebuilt(cache: Path) -> None:
    run_compiled()
    rewrite(kernel_path(), b"")
    native._loaded.clear()
    spec = cache.parent / "spec.yaml"
    spec.write_text(SPEC)
    ran = CliRunner().invoke(cli, ["run", str(spec), "--engine", "compiled", "-f", "csv",
                                   "-o", "-"])
    assert ran.exit_code == 0, ran.output
    assert [int(v) for v in ran.stdout.split()[1:]] == expected()
    assert ran.stderr.startswith("recur: note: the cached kernel ")
    assert "rebuilding it" in ran.stderr


def test_a_kernel_of_another_machine_is_never_loaded(cache: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU and the compiler are in the cache key: another machine's kernel (here one
    of random bytes, as good as foreign code) has another name, and is not opened."""
    here = kernel_path()
    monkeypatch.setattr(native, "machine", lambda: "x86_64\nflags: avx512f (another CPU)")
    there = kernel_path()
    assert here.parent == there.parent and here.name != there.name
    cache.mkdir()
    there.write_bytes(b"\x7fELF" + bytes(1000))
    monkeypatch.undo()
    monkeypatch.setenv("RECUR_CACHE_DIR", str(cache))
    assert run_compiled() == expected()
    assert there.read_bytes() == b"\x7fELF" + bytes(1000)


def test_the_machine_names_the_cpu_and_the_compiler() -> None:
    identity = native.machine()
    assert (native.compiler() or [""])[0] and os.path.realpath(
        (native.compiler() or [""])[0]) in identity
    if Path("/proc/cpuinfo").exists():
        assert "flags" in identity or "Features" in identity
        assert "MHz" not in identity  # the clock changes; the key must not


def test_concurrent_compiles_leave_one_file_per_kernel(cache: Path) -> None:
    """Twelve processes compile three kernels at once into an empty cache."""
    script = ("import sys, recur\n"
              "k = int(sys.argv[1]) % 3\n"
              "text = ('steps: 10\\noutputs:\\n  x:\\n    initial: 1.5\\n'\n"
              "        f'    step: x[t-1] * 0.5 + {k}.25\\n')\n"
              "print(float(recur.run(recur.load(text), engine='compiled')['x'][-1]))\n")
    env = {**os.environ, "RECUR_CACHE_DIR": str(cache)}
    runs = [subprocess.Popen([sys.executable, "-c", script, str(i)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in range(12)]
    for i, process in enumerate(runs):
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        x = 1.5
        for _ in range(10):
            x = x * 0.5 + (i % 3 + 0.25)
        assert float(out) == x
    names = sorted(p.name for p in cache.iterdir())
    assert len(names) == 3 and all(n.startswith("kernel_") and n.endswith(".so")
                                   for n in names)


def test_a_compiler_that_hangs_is_stopped(tmp_path: Path, cache: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pids = fake_compiler(tmp_path, monkeypatch, "sleep 100 &\necho $! >> " +
                         str(tmp_path / "pids") + "\nwait")
    monkeypatch.setattr(native, "COMPILE_FLOOR", 0.5)
    monkeypatch.setattr(native, "COMPILE_MARGIN", 0.0)
    with pytest.raises(RecurError, match=r"compiled': the C compiler did not finish within "
                                         r"0.5 s"):
        run_compiled()
    compiler_pids = [int(line) for line in pids.read_text().split()]
    assert len(compiler_pids) == 2 and not any(alive(pid) for pid in compiler_pids)
    monkeypatch.setattr(native, "is_cached", lambda source: True)  # auto takes the kernel
    with pytest.warns(native.EngineNote, match="did not finish within 0.5 s.*interpreter"):
        result = recur.run(recur.load(SPEC))
    assert result.engine == "interp" and result["x"].tolist() == expected()
    assert not any(cache.iterdir()) and not any((tmp_path / "tmp").iterdir())


def test_the_time_limit_grows_with_the_source() -> None:
    assert c_engine.compile_limit("x") == native.COMPILE_FLOOR
    big = "x" * 10_000_000
    assert c_engine.compile_limit(big) == pytest.approx(
        native.COMPILE_MARGIN * 10_000_000 * c_engine.COMPILE_BYTE)


def test_a_compiler_that_fails(tmp_path: Path, cache: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    fake_compiler(tmp_path, monkeypatch, "echo 'kernel.c:1:1: error: no good' >&2\nexit 1")
    with pytest.raises(RecurError, match=r"the C compiler failed: kernel\.c:1:1: error: no good"):
        run_compiled()
    monkeypatch.setattr(native, "is_cached", lambda source: True)
    with pytest.warns(native.EngineNote, match="compiled engine failed"):
        assert run_compiled("auto") == expected()
    assert not any(cache.iterdir()) and not any((tmp_path / "tmp").iterdir())


def test_sigterm_during_a_compile_leaves_nothing(tmp_path: Path, cache: Path) -> None:
    pids = tmp_path / "pids"
    script = tmp_path / "fake-cc"
    script.write_text(f"#!/bin/sh\necho $$ >> {pids}.tmp\nsleep 100 &\necho $! >> {pids}.tmp\n"
                      f"mv {pids}.tmp {pids}\nwait\n")
    script.chmod(0o755)
    (tmp_path / "spec.yaml").write_text(SPEC)
    env = {**os.environ, "CC": str(script), "RECUR_CACHE_DIR": str(cache)}
    run = subprocess.Popen([sys.executable, "-m", "recur", "run", "spec.yaml", "--engine",
                            "compiled"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
    while not pids.exists() and run.poll() is None:  # until the compiler runs
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    run.communicate(timeout=60)
    assert run.returncode in (-signal.SIGTERM, 128 + signal.SIGTERM)  # the shell's 143
    assert not any(alive(int(pid)) for pid in pids.read_text().split())
    assert not any(cache.iterdir())


def in_a_small_mount(tmp_path: Path, options: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run recur with a cache on a tmpfs mounted with `options`, in a user and mount
    namespace of its own (skipped where the system does not allow one)."""
    folder = tmp_path / "mount"
    folder.mkdir()
    probe = subprocess.run(["unshare", "-r", "-m", "sh", "-c",
                            f"mount -t tmpfs -o size=16k tmpfs {folder}"],
                           capture_output=True, check=False) if shutil.which("unshare") else None
    if probe is None or probe.returncode != 0:
        pytest.skip("needs a mount namespace (unshare -r -m)")
    (tmp_path / "spec.yaml").write_text(SPEC)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    command = " ".join([sys.executable, "-m", "recur", "run", "spec.yaml", *args])
    env = {**os.environ, "RECUR_CACHE_DIR": str(folder / "kernels"),
           "TMPDIR": str(tmp_path / "tmp")}
    return subprocess.run(["unshare", "-r", "-m", "sh", "-c",
                           f"mount -t tmpfs -o size=1m tmpfs {folder} && "
                           f"mkdir {folder}/kernels && mount -o remount,{options} {folder} && "
                           f"exec {command}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("engine", ["compiled", "auto"])
@pytest.mark.parametrize(("options", "says"), [
    ("ro", "Read-only file system"),
    ("size=16k", "its disk is full"),
])
def test_a_cache_that_cannot_hold_a_kernel(tmp_path: Path, engine: str, options: str,
                                           says: str) -> None:
    ran = in_a_small_mount(tmp_path, options, "--engine", engine, "-f", "csv", "-o", "-")
    assert ran.returncode == 0, ran.stderr
    assert [int(v) for v in ran.stdout.split()[1:]] == expected()
    if engine == "compiled":  # auto interprets 20,000 steps of a cold kernel
        assert "recur: note: cannot use the kernel cache" in ran.stderr and says in ran.stderr
        assert "compiling in a temporary folder" in ran.stderr
    assert not any((tmp_path / "tmp").iterdir())


def test_a_cache_that_is_a_file(tmp_path: Path, cache: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    cache.write_text("not a folder")
    with pytest.warns(native.EngineNote, match="kernels: it is not a folder; compiling in a "
                                               "temporary folder"):
        assert run_compiled() == expected()
    assert cache.read_text() == "not a folder"
    assert not any((tmp_path / "tmp").iterdir())


def test_a_cache_that_cannot_store_the_kernel(tmp_path: Path, cache: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A rename that fails (injected) leaves the kernel loaded and the cache clean."""
    def refuse(source: object, target: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(native.os, "replace", refuse)
    with pytest.warns(native.EngineNote, match="cannot store the kernel .*No space left"):
        assert run_compiled() == expected()
    assert not any(cache.iterdir())


def test_auto_notes_a_long_run_interpreted_for_want_of_a_compiler(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "available", lambda: False)
    spec = recur.load(SPEC)
    monkeypatch.setattr(advice, "LONG_RUN", 1e-9)
    with pytest.warns(native.EngineNote, match="no C compiler was found, so the interpreter"):
        assert recur.run(spec)["x"].tolist() == expected()
    monkeypatch.setattr(advice, "LONG_RUN", 1e9)  # a short run: no note
    with warnings.catch_warnings():
        warnings.simplefilter("error", native.EngineNote)
        assert recur.run(spec)["x"].tolist() == expected()
    explained = CliRunner().invoke(cli, ["explain", str(ROOT / "specs/fibonacci.yaml")])
    assert "because: the compiled engine cannot run it: no C compiler was found" \
        in explained.stdout
    checked = CliRunner().invoke(cli, ["check", "-v", str(ROOT / "specs/fibonacci.yaml")])
    assert checked.stdout.count("no C compiler was found") == 1


def test_a_compiler_named_by_cc_that_is_not_there_is_not_replaced_by_another(
        cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CC names the compiler the user wants: where it is missing, recur says so instead
    of compiling with cc."""
    monkeypatch.setenv("CC", "/does/not/exist -O1")
    spec = recur.load(SPEC)
    with pytest.raises(RecurError) as error:
        recur.run(spec, engine="compiled")
    assert "CC names '/does/not/exist -O1', which is not a program found here" \
        in error.value.message and error.value.exit_code == 2
    result = recur.run(spec)
    assert result.engine == "interp" and result["x"].tolist() == expected()
    explained = CliRunner().invoke(cli, ["explain", str(ROOT / "specs/fibonacci.yaml")])
    assert "cannot run it: CC names '/does/not/exist -O1'" in explained.stdout
    assert not cache.exists()


def test_a_compiler_that_cannot_run(tmp_path: Path, cache: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A compiler that is not executable is the compiler's fault, not the cache's."""
    fake_compiler(tmp_path, monkeypatch, "exit 0")
    (tmp_path / "fake-cc").chmod(0o644)
    monkeypatch.setattr(native, "compiler", lambda: [str(tmp_path / "fake-cc")])
    with pytest.raises(RecurError, match=r"cannot run the C compiler .*fake-cc: Permission"):
        run_compiled()
    assert not any(cache.iterdir())


def test_scratch_folders_of_killed_runs_are_swept(cache: Path) -> None:
    cache.mkdir()
    for name, age in (("build-old", native.STALE_SCRATCH + 60), ("build-new", 60.0)):
        (cache / name).mkdir()
        (cache / name / "kernel.c").write_text("int x;")
        when = time.time() - age
        os.utime(cache / name, (when, when))
    assert run_compiled() == expected()
    assert sorted(p.name for p in cache.iterdir()) == ["build-new", kernel_path().name]
