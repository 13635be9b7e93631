"""The package installs, imports without dolfinx, and its command answers."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

import snmech
from snmech.cli import cli

HIDE_FEM_STACK = textwrap.dedent(
    """
    import importlib.abc, sys
    BLOCKED = ("dolfinx", "dolfinx_solver", "petsc4py", "slepc4py", "ufl", "basix", "ffcx")
    class Hide(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)")
            return None
    sys.meta_path.insert(0, Hide())
    """
)


@pytest.mark.parametrize("module", ["snmech", "snmech.spectral", "snmech.material"])
def test_core_imports_without_dolfinx(module):
    code = HIDE_FEM_STACK + f"import {module}\nimport sys\n"
    code += "assert not any(m.split('.')[0] in BLOCKED for m in sys.modules), sorted(sys.modules)\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_fem_import_fails_clearly_without_dolfinx():
    code = HIDE_FEM_STACK + "import snmech.fem\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "dolfinx" in proc.stderr


def test_info_without_dolfinx_reports_it_missing():
    code = HIDE_FEM_STACK + (
        "import importlib.util\n"
        "importlib.util.find_spec = lambda n, *a: None if n.split('.')[0] in BLOCKED else "
        "__import__('importlib.machinery').machinery.PathFinder.find_spec(n)\n"
        "from snmech._info import environment_info\n"
        "print(environment_info()['dolfinx'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "not installed" in proc.stdout


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert snmech.__version__ in result.output


@pytest.mark.fem
def test_info_lists_the_stack():
    result = CliRunner().invoke(cli, ["info"])
    assert result.exit_code == 0, result.output
    for key in ("snmech", "torch", "dolfinx", "PETSc", "MPI", "cuda", "torch threads"):
        assert key in result.output


def test_cli_device_choices_are_the_resolvers():
    from snmech import cli
    from snmech._device import DEVICE_NAMES, resolve_device

    assert tuple(cli.DEVICES.choices) == DEVICE_NAMES
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        resolve_device("gpu")
