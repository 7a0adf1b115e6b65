"""The tutorial notebook (examples/tutorial.py, jupytext percent format, stored without outputs) runs
top to bottom in a Jupyter kernel, at the tiny sizes it takes under ``QGEN_TUTORIAL_TINY=1``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import REPO

TUTORIAL = REPO / "examples" / "tutorial.py"


def test_tutorial_is_stored_as_percent_cells_without_outputs() -> None:
    jupytext = pytest.importorskip("jupytext")
    notebook = jupytext.read(TUTORIAL)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert len(code) >= 6 and all(not c.get("outputs") for c in code)
    assert [c for c in notebook.cells if c.cell_type == "markdown"], "the notebook explains its steps"


def test_tutorial_notebook_executes_top_to_bottom(tmp_path: Path, monkeypatch) -> None:
    jupytext = pytest.importorskip("jupytext")
    from nbclient import NotebookClient

    # the kernel inherits this environment: tiny sizes, and everything written under tmp_path
    for key, value in dict(QGEN_TUTORIAL_TINY="1", QGEN_RUNS=str(tmp_path / "runs"),
                           QGEN_CIRCUITS=str(tmp_path / "circuits"), QGEN_DATA=str(tmp_path / "data"),
                           QGEN_THREADS="1",
                           PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))).items():
        monkeypatch.setenv(key, value)
    notebook = jupytext.read(TUTORIAL)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(out.get("text", "") for cell in notebook.cells for out in cell.get("outputs", []))
    assert "same images as the run: True" in text
    assert "dry run: nothing was submitted" in text and "ibm_fez:" in text
    assert (tmp_path / "models" / "tutorial" / "circuit" / "logical.qpy").is_file()
