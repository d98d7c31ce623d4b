"""The command line: exit codes in-process via main([...]), and one real `python -m workbench tour`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from plotly.offline import get_plotlyjs

from workbench.cli import (
    COMMANDS,
    EXIT_CHECK_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Command,
    main,
    register,
)

ROOT = Path(__file__).resolve().parents[2]

FACTORIES = '''
import torch
from workbench import zoo

def shifted():
    z = zoo.get("mlp", smoke=True)
    with torch.no_grad():
        z.model.fc2.bias += 1.0  # a different model: the comparison with mlp.onnx must fail
    return z.model, z.example_inputs, z.spec

def not_a_model():
    return 42

def raises():
    raise RuntimeError("factory broke")
'''


@pytest.fixture(scope="module")
def tour(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.getbasetemp() / "mlp-tour"  # shared with tests/core/test_pipeline.py (export cache)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "workbench", "tour", "--quick", "--model", "mlp", "--work-dir", str(out)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    return proc, out


@pytest.fixture(scope="module")
def factories(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("factories") / "my_models.py"
    path.write_text(FACTORIES)
    return path


def test_tour_writes_a_report_with_plotly(tour: tuple[subprocess.CompletedProcess[str], Path]):
    proc, out = tour
    assert proc.returncode == EXIT_OK, proc.stdout + proc.stderr
    report = out / "report.html"
    assert report.is_file() and f"report: {report.resolve()}" in proc.stdout
    text = report.read_text(encoding="utf-8")
    assert text.count(get_plotlyjs()[:40]) == 1 and "Plotly.newPlot(" in text
    assert report.stat().st_size < 8 * 2**20
    assert "PipelineRun 'mlp' PASS" in proc.stdout and "sweep" in proc.stdout
    assert "export: started" in proc.stderr and "sweep: 1/" in proc.stderr  # progress goes to stderr
    assert (out / "mlp.onnx").is_file() and (out / "mlp.int8.onnx").is_file()


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]):
    assert main([]) == EXIT_USAGE
    assert main(["frobnicate"]) == EXIT_USAGE
    assert main(["export", "zoo:mlp"]) == EXIT_USAGE  # --out is required
    assert main(["bench", "x.onnx", "--opt-level", "max"]) == EXIT_USAGE
    assert main(["tour", "--skip", "export"]) == EXIT_USAGE
    assert "invalid choice" in capsys.readouterr().err
    assert main(["--help"]) == EXIT_OK
    assert "tour" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["compare", "zoo:nope", "m.onnx"], "No zoo model named 'nope'"),
    (["compare", "not_a_module_xyz:build", "m.onnx"], "No module named 'not_a_module_xyz'"),
    (["compare", "m.onnx", "m.onnx"], "is an ONNX file, but this command needs the PyTorch model"),
    (["compare", "gibberish", "m.onnx"], "Cannot load the model 'gibberish'"),
    (["compare", "zoo:mlp", "m.onnx", "--tolerance", "tight"], "--tolerance must be one of"),
    (["inspect", "missing.onnx"], "No ONNX file at 'missing.onnx'"),
    (["export", "zoo:mlp", "--out", "m.onnx", "--dynamic", "x:batch"], "NAME:DIM:SYMBOL"),
    (["export", "zoo:mlp", "--out", "m.onnx", "--opset", "6"], "opset must be an int between 7 and 26"),
    (["tour", "--model", "nope"], "Cannot load the model 'nope'"),
])
def test_bad_input_exits_2_with_the_message_and_no_traceback(argv: list[str], message: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.startswith("onnx-workbench ")


def test_factories_from_a_file(factories: Path, tour: tuple[subprocess.CompletedProcess[str], Path],
                               capsys: pytest.CaptureFixture[str]):
    onnx_path = tour[1] / "mlp.onnx"
    assert main(["compare", f"{factories}:shifted", str(onnx_path)]) == EXIT_CHECK_FAILED
    assert "Comparison FAIL" in capsys.readouterr().out
    assert main(["compare", f"{factories}:not_a_model", str(onnx_path)]) == EXIT_USAGE
    assert "returned int 42" in capsys.readouterr().err
    assert main(["compare", f"{factories}:raises", str(onnx_path)]) == EXIT_USAGE
    assert "RuntimeError: factory broke" in capsys.readouterr().err
    assert main(["compare", f"{factories}:missing", str(onnx_path)]) == EXIT_USAGE
    assert "has no attribute 'missing'" in capsys.readouterr().err


def test_inspect_compare_and_bench_the_tour_model(tour: tuple[subprocess.CompletedProcess[str], Path],
                                                  capsys: pytest.CaptureFixture[str]):
    out = tour[1]
    assert main(["inspect", str(out / "mlp.onnx")]) == EXIT_OK
    assert "ModelSummary" in capsys.readouterr().out
    assert main(["compare", "zoo:mlp", str(out / "mlp.onnx"), "--batch", "5", "--tolerance", "1e-3,1e-4"]) == EXIT_OK
    assert "Comparison PASS" in capsys.readouterr().out
    assert main(["bench", str(out / "mlp.onnx"), "--runs", "3", "--warmup", "1", "--batch", "4"]) == EXIT_OK
    assert "<Measurement 'mlp.onnx': 3 runs" in capsys.readouterr().out
    # A MODEL is exported to --work-dir first: the tour's export of the same model is reused.
    assert main(["bench", "mlp", "--runs", "3", "--warmup", "1", "--work-dir", str(out)]) == EXIT_OK
    text = capsys.readouterr().out
    assert "eager" in text and "CPU/all" in text


def test_export_with_torchscript_and_dynamic_axes(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "mlp-ts.onnx"
    argv = ["export", "zoo:mlp", "--out", str(path), "--exporter", "torchscript", "--opset", "17",
            "--dynamic", "x:0:batch", "y:0:batch"]
    assert main(argv) == EXIT_OK and path.is_file()
    text = capsys.readouterr().out
    assert "exporter='torchscript', opset=17" in text and "x float32[batch, 16]" in text


def test_the_command_registry_takes_new_subcommands(capsys: pytest.CaptureFixture[str]):
    seen: list[str] = []
    register(Command("hello", "say hello", lambda p: p.add_argument("name"),
                     lambda args: seen.append(args.name) or 0))
    try:
        assert main(["hello", "doctor"]) == EXIT_OK and seen == ["doctor"]
    finally:
        COMMANDS.pop("hello")


def test_doctor_is_a_subcommand(capsys: pytest.CaptureFixture[str]):
    assert main(["doctor", "--help"]) == EXIT_OK
    assert "doctor" in capsys.readouterr().out
