"""The core's layers hold: import-linter checks the contracts in pyproject.toml ([tool.importlinter]) on the
package as it is installed, and fails, naming both modules, on an import against the direction."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def installed_layout(target: Path) -> Path:
    """The deepwater package as a wheel installs it (pyproject's package-dir mapping: backends/ becomes
    deepwater/backends/ ...), copied under `target`; import-linter reads imports from one folder tree."""
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for package, folder in sorted(mapping.items()):  # "deepwater" first, then its subpackages from other folders
        shutil.copytree(ROOT / folder, target / package.replace(".", "/"), dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return target


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    """Run import-linter with the project's contracts on the package in `tree`."""
    code = ("import sys; from importlinter.cli import lint_imports; "
            f"sys.exit(lint_imports(config_filename={str(ROOT / 'pyproject.toml')!r}, no_cache=True))")
    return subprocess.run([sys.executable, "-c", code], cwd=tree, env={"PYTHONPATH": str(tree), "PATH": ""},
                          capture_output=True, text=True)


def test_the_package_keeps_its_import_contracts(tmp_path):
    done = lint_imports(installed_layout(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 3 kept, 0 broken." in done.stdout


@pytest.mark.parametrize("module, wrong_import, broken", [
    # a lower layer importing a higher one, at the top of the module
    ("deepwater/data/frames.py", "from deepwater.model import estimator", "deepwater.data.frames -> deepwater.model"),
    # the core reaching a backend's own module, from inside a function (imports in functions count too)
    ("deepwater/runtime/devices.py", "def _torch():\n    from deepwater.backends.torch import backend",
     "deepwater.runtime.devices -> deepwater.backends.torch.backend"),
    # a backend leaning on the layers above the runtime
    ("deepwater/backends/mxnet/net.py", "from deepwater.training import trainer",
     "deepwater.backends.mxnet.net -> deepwater.training.trainer"),
])
def test_an_import_against_the_direction_fails_naming_both_modules(tmp_path, module, wrong_import, broken):
    tree = installed_layout(tmp_path)
    with open(tree / module, "a") as source:
        source.write(f"\n\n{wrong_import}\n")
    done = lint_imports(tree)
    assert done.returncode != 0
    assert "BROKEN" in done.stdout and broken in done.stdout, done.stdout
