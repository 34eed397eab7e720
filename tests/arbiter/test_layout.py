"""The repository layout cannot shadow the standard library (docs/adr/0001).

A top-level package named like a standard library module is found first on ``sys.path`` and
breaks whatever imports the real one (``uuid`` imports ``platform`` at start-up).
"""

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLATFORM_DIR = ROOT / "platform"
ADR_DIR = ROOT / "docs" / "adr"


def _top_level_import_names() -> dict[str, Path]:
    """Every name the project makes importable from the repository root."""
    names: dict[str, Path] = {}
    for entry in ROOT.iterdir():
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and (entry / "__init__.py").exists():
            names[entry.name] = entry
        elif entry.is_file() and entry.suffix == ".py":
            names[entry.stem] = entry
    return names


def test_project_packages_are_found() -> None:
    # Guards the test below against passing on an empty list.
    assert {"arbiter", "governance", "decisions", "manage"} <= set(_top_level_import_names())


def test_no_top_level_package_or_module_shadows_the_standard_library() -> None:
    clashes = {
        name: str(path.relative_to(ROOT))
        for name, path in _top_level_import_names().items()
        if name in sys.stdlib_module_names
    }
    assert not clashes, f"named like standard library modules: {clashes}"


def test_platform_holds_deployment_files_and_is_not_a_package() -> None:
    assert PLATFORM_DIR.is_dir()
    init_files = sorted(str(p.relative_to(ROOT)) for p in PLATFORM_DIR.rglob("__init__.py"))
    assert not init_files, "platform/ must not be a Python package (docs/adr/0001)"
    python_files = sorted(
        p.relative_to(PLATFORM_DIR).as_posix() for p in PLATFORM_DIR.rglob("*.py")
    )
    assert python_files == ["gunicorn.conf.py"]


@pytest.mark.parametrize(
    ("cwd", "extra_env"),
    [
        pytest.param(ROOT, {}, id="started-from-the-repository-root"),
        # The image runs with PYTHONPATH=/app, which puts the project ahead of the stdlib.
        pytest.param(None, {"PYTHONPATH": str(ROOT)}, id="project-on-PYTHONPATH"),
    ],
)
def test_import_platform_gets_the_standard_library_module(
    cwd: Path | None, extra_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**os.environ, **extra_env}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import platform, uuid; print(platform.python_version()); print(platform.__file__)",
        ],
        cwd=cwd or tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    version, module_file = result.stdout.split()
    assert version == platform.python_version()
    assert not Path(module_file).resolve().is_relative_to(ROOT)


def test_adr_index_lists_every_record() -> None:
    records = sorted(p.name for p in ADR_DIR.glob("[0-9][0-9][0-9][0-9]-*.md"))
    index = (ADR_DIR / "README.md").read_text(encoding="utf-8")
    linked = sorted(set(re.findall(r"\]\(([0-9]{4}-[^)]+\.md)\)", index)))
    assert records, "docs/adr/ holds no records"
    assert linked == records
