"""Shared pytest configuration: the `--update-golden` option (see the README, Development)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Tests sit in folders by layer (lang, spec, compile, engine, io, report, cli) and share
# helpers across them: the support modules (the CUDA emulator, the plain-Python
# reference) and some cases (test_engine's random specs), imported by module name.
_TESTS = Path(__file__).resolve().parent
for _folder in ("support", "lang", "spec", "compile", "engine", "io", "report", "cli"):
    sys.path.insert(0, str(_TESTS / _folder))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="Rewrite tests/golden/*/expected/ where it differs or is missing, and fail "
        "those cases so that a second run must pass. Review `git diff tests/golden`.",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Regeneration writes into the source tree: never from parallel workers (mypy does
    # the same for --update-data).
    if config.getoption("--update-golden") and getattr(config.option, "numprocesses", None):
        raise pytest.UsageError("--update-golden runs serially: drop -n/--numprocesses")


@pytest.fixture(autouse=True, scope="session")
def _kernel_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Compiled kernels go to a folder of this test session, never the user's cache."""
    os.environ["RECUR_CACHE_DIR"] = str(tmp_path_factory.mktemp("kernels"))
