"""The notebooks as files: committed without outputs, with a kernelspec, built from their sources,
and shaped as the guided notebooks promise (objectives at the top, one exercise with a check, smoke
mode, no logic of their own)."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import nbformat
import pytest
from _notebook_paths import NOTEBOOKS, NOTEBOOKS_DIR

from workbench.teaching import exercises

GUIDED = [p for p in NOTEBOOKS if (NOTEBOOKS_DIR / "src" / f"{p.stem}.md").exists()]
#: Statements a notebook cell may not hold: logic belongs in workbench, not in the notebooks.
FORBIDDEN = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.For, ast.AsyncFor, ast.While, ast.Try,
             ast.Lambda, ast.Global, ast.Nonlocal)
#: The only conditions a cell may test: the exercise's solution switch, the GPU guard and smoke mode.
ALLOWED_IFS = ("exercises.solution_mode()", "wb.cuda_available()", "tutorial.SMOKE")


def _builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS_DIR / "_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _number(path: Path) -> str:
    return path.stem.split("_", 1)[0]


def _tagged(nb: nbformat.NotebookNode, tag: str) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]


def test_there_are_twelve_guided_notebooks() -> None:
    assert [_number(p) for p in GUIDED] == [f"{i:02d}" for i in range(1, 13)]


def test_notebooks_are_built_from_their_sources() -> None:
    stale = _builder().stale()
    assert not stale, f"out of date: {[p.name for p in stale]}; run `python notebooks/_build.py`"


def test_builder_parses_tags_and_separators() -> None:
    cells = _builder().parse("# Title\n\ntext\n+++\nmore\n```python tags=exercise,x\na = 1\n```\n```text\nkept\n```\n")
    assert [c["kind"] for c in cells] == ["markdown", "markdown", "code", "markdown"]
    assert cells[2] == {"kind": "code", "source": "a = 1", "tags": ["exercise", "x"]}
    assert "```text" in cells[3]["source"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_without_outputs_and_with_a_kernelspec(path: Path) -> None:
    nb = _read(path)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", "metadata.kernelspec must be set"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {cell.get('id')} has outputs: strip them before committing"
            assert cell.execution_count is None, f"cell {cell.get('id')} has an execution count"


@pytest.mark.parametrize("path", GUIDED, ids=[p.stem for p in GUIDED])
def test_learning_objectives_come_first(path: Path) -> None:
    first = _read(path).cells[0]
    assert first.cell_type == "markdown" and first.source.startswith(f"# {_number(path)} ")
    assert "**Learning objectives.**" in first.source
    assert len(re.findall(r"^- ", first.source, flags=re.M)) >= 3, "list the objectives as bullets"


@pytest.mark.parametrize("path", GUIDED, ids=[p.stem for p in GUIDED])
def test_smoke_mode_through_the_tutorial_setup(path: Path) -> None:
    code = [c.source for c in _read(path).cells if c.cell_type == "code"]
    assert f'tutorial.setup("{path.stem}")' in code[0], "the first code cell calls tutorial.setup(<notebook>)"


@pytest.mark.parametrize("path", GUIDED, ids=[p.stem for p in GUIDED])
def test_one_exercise_with_its_check(path: Path) -> None:
    nb, number = _read(path), _number(path)
    exercise, check = _tagged(nb, "exercise"), _tagged(nb, "check")
    assert len(exercise) == 1 and len(check) == 1, "one cell tagged exercise, one tagged check"
    lines = exercise[0].source.splitlines()
    assert len(lines) == 2 and lines[0].startswith("answer = ")
    assert lines[1] == f'if exercises.solution_mode(): answer = exercises.solution("{number}")'
    assert check[0].source.strip() == f'exercises.check("{number}", answer)'
    assert nb.cells.index(exercise[0]) < nb.cells.index(check[0])
    assert number in exercises.EXERCISES


@pytest.mark.parametrize("path", GUIDED, ids=[p.stem for p in GUIDED])
def test_cells_hold_no_logic(path: Path) -> None:
    for cell in _read(path).cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            assert not isinstance(node, FORBIDDEN), (
                f"cell {cell.id}: {type(node).__name__} at line {node.lineno}; put logic in workbench, not the notebook")
            if isinstance(node, (ast.If, ast.IfExp)):
                assert ast.unparse(node.test) in ALLOWED_IFS, f"cell {cell.id}: condition {ast.unparse(node.test)!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebooks_use_the_public_api(path: Path) -> None:
    """Nothing from inside ``workbench.core``: what a notebook needs is public (``wb.*``); the
    notebook helpers come from ``workbench.teaching``."""
    for cell in _read(path).cells:
        if cell.cell_type != "code":
            continue
        assert "wb.core." not in cell.source, f"cell {cell.id} reaches into wb.core"
        for node in ast.walk(ast.parse(cell.source)):
            modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for module in modules:
                assert not module.startswith("workbench.core"), f"cell {cell.id} imports {module}: use the wb.* name"
                assert module not in ("workbench.tutorial", "workbench.exercises", "workbench.tutorial_ops"), (
                    f"cell {cell.id} imports {module}: the helpers live in workbench.teaching")
