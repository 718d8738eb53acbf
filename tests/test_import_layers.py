"""The import-linter contracts (pyproject.toml) are checked by `make test`; these tests show
that they hold today and that they do catch the imports they forbid, on a copy of the code."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The apps, the project package and pyproject.toml in a directory of their own."""
    for package in ("apps", "streamgate"):
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def lint(where: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=where,
        env={"PYTHONPATH": str(where), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def inject(module: Path, line: str) -> None:
    module.write_text(module.read_text() + f"\n{line}\n")


def test_the_code_keeps_every_contract(copy):
    result = lint(copy)
    assert result.returncode == 0, result.stdout
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        (
            "apps/content/selectors.py",
            "from apps.access.gates import gate_validate  # noqa",
            "The core (apps.content) imports no other app BROKEN",
        ),
        (
            "apps/transcode/services/running.py",
            "from apps.access.playback import playback_grant  # noqa",
            "uploads and transcode never import access BROKEN",
        ),
        (
            "apps/chain/selectors.py",
            "from apps.uploads.models import Upload  # noqa",
            "chain never imports uploads or transcode BROKEN",
        ),
        (
            "streamgate/health.py",
            "from apps.content.storage import storage_ping  # noqa",
            "streamgate BROKEN",
        ),
        (
            "apps/uploads/services/creating.py",
            "from apps.chain.selectors import onchain_summary  # noqa",
            "streamgate BROKEN",  # the end of the layers contract's name: chain | uploads
        ),
    ],
)
def test_a_forbidden_import_fails_the_check(copy, module, line, broken):
    inject(copy / module, line)
    result = lint(copy)
    assert result.returncode == 1, result.stdout
    assert broken in result.stdout
