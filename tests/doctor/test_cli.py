"""``onnx-workbench doctor``: exit codes, the report on stdout, HTML, and the argparse hooks."""

from __future__ import annotations

import pytest

from workbench.doctor import cli as doctor_cli
from workbench.doctor.cli import main


def test_failing_model_exits_1(capsys, tmp_path):
    code = main(["gallery:opset_too_old", "--workdir", str(tmp_path / "w"), "--html", str(tmp_path / "d.html")])
    out = capsys.readouterr().out
    assert code == 1
    assert out.startswith("Diagnosis of opset_too_old") and "[OP002]" in out and "PASSES" in out
    assert "[OP002]" in (tmp_path / "d.html").read_text()


def test_healthy_model_exits_0(capsys, tmp_path):
    code = main(["zoo:mlp", "--exporter", "torchscript", "--opset", "17", "--workdir", str(tmp_path)])
    assert code == 0 and "OK, 0 findings" in capsys.readouterr().out


def test_options_reach_the_diagnosis(capsys, tmp_path):
    code = main(["zoo:mlp", "--exporter", "torchscript", "--provider", "CpuExecutionProvider", "--no-retry",
                 "--workdir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1 and "[EP001]" in out and "not run" in out


def test_factory_forms_and_usage_errors(capsys, tmp_path):
    module = tmp_path / "mymodels.py"
    module.write_text(
        "import torch\nfrom torch import nn\nimport workbench as wb\n"
        "def build():\n"
        "    return nn.Linear(4, 2).eval(), (torch.randn(2, 4),), wb.ExportSpec(exporter='torchscript', opset=17)\n"
    )
    assert main([f"{module}:build", "--workdir", str(tmp_path / "w")]) == 0
    assert main(["no_such_module_here:build"]) == 2
    assert main([f"{module}:missing"]) == 2
    assert "no callable 'missing'" in capsys.readouterr().err
    assert main(["--no-such-flag"]) == 2


def test_command_tuple_for_the_console_script():
    name, text, add_arguments, run = doctor_cli.COMMAND
    assert name == "doctor" and text == doctor_cli.HELP and add_arguments is doctor_cli.add_arguments
    assert run is doctor_cli.run


def test_console_script_when_wired(capsys, tmp_path):
    cli = pytest.importorskip("workbench.cli")
    if "doctor" not in cli.COMMANDS:
        cli.build_parser()
    if "doctor" not in cli.COMMANDS:
        pytest.skip("workbench.cli does not register the doctor command yet")
    assert cli.main(["doctor", "gallery:training_mode", "--workdir", str(tmp_path)]) == 1
    assert "[NUM001]" in capsys.readouterr().out
