"""``onnx-workbench doctor``: exit codes, the report on stdout, HTML, and the options reaching the diagnosis."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.cli import COMMANDS, EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE, main


def test_failing_model_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path):
    code = main(["doctor", "workbench.zoo.broken:opset_too_old", "--work-dir", str(tmp_path / "w"),
                 "--out", str(tmp_path / "d.html")])
    out = capsys.readouterr().out
    assert code == EXIT_CHECK_FAILED
    assert out.startswith("Diagnosis of opset_too_old") and "[OP002]" in out and "PASSES" in out
    assert "[OP002]" in (tmp_path / "d.html").read_text()


def test_healthy_model_exits_0(capsys: pytest.CaptureFixture[str], tmp_path: Path):
    code = main(["doctor", "zoo:mlp", "--smoke", "--exporter", "torchscript", "--opset", "17",
                 "--work-dir", str(tmp_path)])
    assert code == EXIT_OK and "OK, 0 findings" in capsys.readouterr().out


def test_options_reach_the_diagnosis(capsys: pytest.CaptureFixture[str], tmp_path: Path):
    code = main(["doctor", "zoo:mlp", "--smoke", "--exporter", "torchscript", "--provider", "CpuExecutionProvider",
                 "--no-retry", "--work-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == EXIT_CHECK_FAILED and "[EP001]" in out and "not run" in out


def test_factory_forms_and_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path):
    module = tmp_path / "mymodels.py"
    module.write_text(
        "import torch\nfrom torch import nn\nimport workbench as wb\n"
        "def build():\n"
        "    return nn.Linear(4, 2).eval(), (torch.randn(2, 4),), wb.ExportSpec(exporter='torchscript', opset=17)\n"
    )
    assert main(["doctor", f"{module}:build", "--work-dir", str(tmp_path / "w")]) == EXIT_OK
    assert main(["doctor", "no_such_module_here:build"]) == EXIT_USAGE
    assert main(["doctor", f"{module}:missing"]) == EXIT_USAGE
    assert "has no attribute 'missing'" in capsys.readouterr().err
    assert main(["doctor", "zoo:mlp", "--no-such-flag"]) == EXIT_USAGE


def test_the_gallery_through_the_console_script(capsys: pytest.CaptureFixture[str], tmp_path: Path):
    assert "doctor" in COMMANDS
    assert main(["doctor", "workbench.zoo.broken:training_mode", "--work-dir", str(tmp_path)]) == EXIT_CHECK_FAILED
    assert "[NUM001]" in capsys.readouterr().out
