"""The one loader of MODEL arguments: zoo names, module:factory, file.py:factory, the broken gallery."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import workbench as wb
from workbench.cli import EXIT_OK, EXIT_USAGE, main
from workbench.cli.args import parse_dynamic, parse_tolerance
from workbench.cli.loader import load_case, private_module_name
from workbench.errors import InvalidInputError

FACTORY = '''
import torch
from torch import nn
import workbench as wb

def pair():
    return nn.Linear(4, 2).eval(), (torch.randn(3, 4),)

def with_spec():
    spec = wb.ExportSpec(input_names=("x",), output_names=("y",), dynamic_axes={"x": {0: "batch"}})
    return nn.Linear(4, 2).eval(), (torch.randn(3, 4),), spec
'''


@pytest.fixture()
def factory_file(tmp_path: Path) -> Path:
    path = tmp_path / "factories.py"
    path.write_text(FACTORY)
    return path


def test_zoo_names_with_and_without_the_prefix():
    for text in ("zoo:mlp", "mlp"):
        case = load_case(text, smoke=True)
        assert isinstance(case, wb.ModelCase) and case.name == "mlp"


def test_the_broken_gallery_loads_as_module_factory():
    case = load_case("workbench.zoo.broken:size_one_batch")
    assert isinstance(case, wb.ModelCase) and case.name == "size_one_batch"


def test_a_file_factory_becomes_a_case_named_after_it(factory_file: Path):
    case = load_case(f"{factory_file}:pair")
    assert isinstance(case, wb.ModelCase) and case.name == "pair"
    assert torch.equal(case.make_inputs()[0], case.example_inputs[0])
    resized = load_case(f"{factory_file}:with_spec").make_inputs(batch=5)
    assert tuple(resized[0].shape) == (5, 4)


@pytest.mark.parametrize("text, message", [
    ("", "A model argument is needed"),
    ("m.onnx", "is an ONNX file"),
    ("nonsense", "Cannot load the model 'nonsense'"),
    ("zoo:nope", "No zoo model named 'nope'"),
    ("zoo:size_one_batch", "pass workbench.zoo.broken:size_one_batch"),
    ("pkg.mod:not-an-identifier", "Cannot read"),
    ("no_such_module_xyz:build", "No module named 'no_such_module_xyz'"),
    ("./missing/file.py:build", "No Python file at"),
])
def test_bad_model_arguments(text: str, message: str):
    with pytest.raises(InvalidInputError, match=message):
        load_case(text)


def test_argument_parsers():
    assert parse_dynamic(["x:0:batch", "x:1:seq", "y:0:batch"]) == {"x": {0: "batch", 1: "seq"}, "y": {0: "batch"}}
    assert parse_tolerance("fp16") == "fp16" and parse_tolerance("1e-3,0") == (1e-3, 0.0)
    with pytest.raises(InvalidInputError, match=">= 0"):
        parse_tolerance("-1,0")


def test_help_says_the_loader_runs_the_named_code(capsys: pytest.CaptureFixture[str]):
    for argv in (["--help"], ["compare", "--help"], ["doctor", "--help"]):
        assert main(argv) == EXIT_OK
        text = " ".join(capsys.readouterr().out.split())
        assert "import that code" in text and "name only code you trust" in text


def test_one_spelling_per_flag(capsys: pytest.CaptureFixture[str]):
    for verb in ("tour", "bench", "doctor"):
        assert main([verb, "--help"]) == EXIT_OK
        text = capsys.readouterr().out
        assert "--work-dir" in text and "--workdir" not in text
    assert main(["compare", "zoo:mlp", "m.onnx", "--batch", "0"]) == EXIT_USAGE
    assert "must be >= 1" in capsys.readouterr().err


SHADOW = '''
import torch
from torch import nn

def build():
    return nn.Linear(4, 2).eval(), (torch.randn(3, 4),)
'''


@pytest.mark.parametrize("relative", [False, True])
def test_a_file_named_like_a_module_does_not_replace_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        relative: bool):
    """0.1 registered ./onnx.py as sys.modules['onnx'], replacing the real onnx for the whole process."""
    import onnx

    (tmp_path / "onnx.py").write_text(SHADOW)
    monkeypatch.chdir(tmp_path)
    path_before = list(sys.path)
    case = load_case("./onnx.py:build" if relative else f"{tmp_path / 'onnx.py'}:build")
    assert isinstance(case, wb.ModelCase) and case.name == "build"
    assert sys.modules["onnx"] is onnx and hasattr(sys.modules["onnx"], "load_model")
    assert sys.path == path_before
    private = private_module_name(tmp_path / "onnx.py")
    assert private.startswith("_wb_user_onnx_") and sys.modules[private].__file__ == str(tmp_path / "onnx.py")
    assert private_module_name(tmp_path / "sub" / "onnx.py") != private  # one name per file


def test_module_factory_leaves_sys_path_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """0.1 left the working folder at the front of sys.path for the rest of the process."""
    (tmp_path / "wb_loader_models_xyz.py").write_text(SHADOW + "\ndef lazy():\n    import wb_loader_helper_xyz\n"
                                                      "    return wb_loader_helper_xyz.build()\n")
    (tmp_path / "wb_loader_helper_xyz.py").write_text(SHADOW)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    path_before = list(sys.path)
    try:
        assert load_case("wb_loader_models_xyz:build").name == "build"
        assert sys.path == path_before
        assert load_case("wb_loader_models_xyz:lazy").name == "lazy"  # the factory imports from the folder too
        assert sys.path == path_before
        with pytest.raises(InvalidInputError, match="No module named 'wb_loader_missing_xyz'"):
            load_case("wb_loader_missing_xyz:build")
        assert sys.path == path_before
    finally:
        for name in ("wb_loader_models_xyz", "wb_loader_helper_xyz"):
            sys.modules.pop(name, None)


def test_a_file_that_fails_to_import_is_not_left_registered(tmp_path: Path):
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('broken on purpose')\n")
    with pytest.raises(InvalidInputError, match="broken on purpose"):
        load_case(f"{bad}:build")
    assert private_module_name(bad) not in sys.modules and "bad" not in sys.modules


def test_readme_says_the_loader_runs_the_named_code():
    readme = " ".join((Path(__file__).parents[2] / "README.md").read_text().split())
    assert "imports that code and runs it" in readme and "name only code you trust" in readme
