"""Every notebook runs top to bottom in a fresh kernel, in smoke mode, with the exercises' solutions.

The kernel gets ``CI=1`` (smoke mode: small models, few repetitions), ``WB_SOLUTIONS=1`` (each
exercise cell takes the reference answer) and ``WB_ARTIFACTS`` (one folder shared by the notebooks
of this test session, empty at its start, so exports are shared through ``wb.export``'s cache the
way they are for a learner who runs the notebooks in order). A notebook passes when no cell has an
error output, no cell shows what its author did not mean to show (any stderr output, a torch IR dump,
a traceback, a C++ warning from torch's shape inference: ``noise``) and the cell tagged ``check``
printed ``Correct!``.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from _notebook_paths import NOTEBOOKS
from nbclient import NotebookClient

CELL_TIMEOUT_S = 300
NOTEBOOK_BUDGET_S = 600  # the whole set must run within 10 minutes on a 2-core machine


@pytest.fixture(scope="session")
def shared_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("notebook-artifacts")


def _text(output: nbformat.NotebookNode) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    data = output.get("data", {})
    return str(data.get("text/plain", "")) + str(data.get("text/html", ""))


#: Text that never belongs in a notebook's output: torch's and ONNX Runtime's own chatter, raw tracebacks.
NOISE = ("Torch IR graph", "Traceback", "shape_type_inference")


def noise(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """(cell id, what) for every output the author did not mean: a stderr stream, or ``NOISE`` text in
    printed output or a result's plain text (not in HTML, whose highlighting CSS names "Generic.Traceback")."""
    found = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            text = out.get("text", "") if out.get("output_type") == "stream" else \
                str(out.get("data", {}).get("text/plain", ""))
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                found.append((cell.get("id"), f"stderr: {text[:300]!r}"))
            elif any(marker in text for marker in NOISE):
                found.append((cell.get("id"), f"{out.get('output_type')}: {text[:300]!r}"))
    return found


def test_noise_finds_stderr_and_torch_dumps_in_outputs():
    nb = nbformat.v4.new_notebook()
    quiet = nbformat.v4.new_code_cell("1")
    quiet.outputs = [nbformat.v4.new_output("stream", name="stdout", text="fine\n")]
    loud = nbformat.v4.new_code_cell("2")
    loud.outputs = [nbformat.v4.new_output("stream", name="stderr", text="[W shape_type_inference.cpp] x\n"),
                    nbformat.v4.new_output("stream", name="stdout", text="Torch IR graph at exception: graph(\n")]
    styled = nbformat.v4.new_code_cell("3")  # highlighted source: its CSS names Generic.Traceback
    styled.outputs = [nbformat.v4.new_output("display_data", data={"text/html": ".gt { /* Generic.Traceback */ }",
                                                                    "text/plain": "<IPython.core.display.Code>"})]
    nb.cells = [quiet, loud, styled]
    assert [what.split(":")[0] for _, what in noise(nb)] == ["stderr", "stream"]


@pytest.mark.slow
@pytest.mark.timeout(NOTEBOOK_BUDGET_S)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path: Path, shared_artifacts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           notebook_times: dict[str, float]) -> None:
    monkeypatch.setenv("CI", "1")
    monkeypatch.setenv("WB_SOLUTIONS", "1")
    monkeypatch.setenv("WB_ARTIFACTS", str(shared_artifacts))
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(tmp_path)}})
    start = time.perf_counter()
    client.execute()
    notebook_times[path.stem] = round(time.perf_counter() - start, 1)

    errors = [(cell.get("id"), out.get("ename"), out.get("evalue"))
              for cell in nb.cells if cell.cell_type == "code"
              for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert not errors, f"{path.name}: cells raised {errors}"
    noisy = noise(nb)
    assert not noisy, f"{path.name}: outputs the notebook does not mean to show: {noisy}"
    unexecuted = [cell.get("id") for cell in nb.cells if cell.cell_type == "code" and cell.execution_count is None]
    assert not unexecuted, f"{path.name}: cells not executed: {unexecuted}"

    checks = [cell for cell in nb.cells if "check" in cell.get("metadata", {}).get("tags", [])]
    for cell in checks:
        text = "".join(_text(out) for out in cell.outputs)
        assert "Correct!" in text, f"{path.name}: the exercise check did not pass against the solution: {text[:600]}"
