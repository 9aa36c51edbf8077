"""Every notebook source in ``notebooks/`` (jupytext py:percent) executes without error in smoke mode.

The notebooks read ``RETRO_SMOKE=1`` and shrink their sizes so that each runs in well under a minute. The
kernel is this interpreter (a kernelspec written to a temporary ``JUPYTER_PATH``), never whatever "python3"
kernel happens to be installed elsewhere on the machine.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from optional import NOTEBOOK_NEEDS

pytestmark = pytest.mark.slow  # see pyproject.toml: CI runs it, `-m "not slow"` skips it

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.py"))
NEEDS = {"lm": ("transformers", "needs the [lm] extra: pip install 'retro-imitators[lm]'")}
"""Notebooks that need an optional extra: skipped with the reason when it is missing."""
KERNEL = "python3"  # shadows any other "python3" kernelspec: JUPYTER_PATH is searched first


@pytest.fixture
def kernel_name(tmp_path, monkeypatch) -> str:
    """A kernelspec that runs ``sys.executable``, found first through ``JUPYTER_PATH``."""
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python ({sys.prefix})",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return KERNEL


@pytest.mark.parametrize(
    "path", [pytest.param(p, id=p.stem, marks=NOTEBOOK_NEEDS.get(p.stem, ())) for p in NOTEBOOKS]
)
def test_notebook_runs(path: Path, kernel_name: str, tmp_path: Path, monkeypatch) -> None:
    if path.stem in NEEDS:
        pytest.importorskip(NEEDS[path.stem][0], reason=NEEDS[path.stem][1])
    monkeypatch.setenv("RETRO_SMOKE", "1")  # the kernel inherits this process's environment
    # One thread: two OpenMP threads on a 2-core machine that is doing anything else slow torch down by 10-50x.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend renders figures as outputs
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    nb = jupytext.read(path)
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.prefix)"))
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name=kernel_name, resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()  # raises CellExecutionError if any cell raises
    printed = "".join(out.get("text", "") for out in nb.cells[-1].outputs if out.get("name") == "stdout")
    assert printed.strip() == sys.prefix, "the notebook ran under another interpreter than the tests"


def test_the_documented_notebooks_are_all_collected():
    """The glob above runs every notebook; this names the ones the README and issues promise."""
    assert {"quickstart", "inference_strategies", "adversarial", "experiments", "g2p", "lm"} <= {
        p.stem for p in NOTEBOOKS
    }
