"""``onnx-workbench serve``: a real server in a subprocess on a free port of 127.0.0.1 answers
/v1/health and /v1/predict with the config of --config, and Ctrl-C (SIGINT) stops it cleanly;
bad arguments are usage errors."""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import httpx
import numpy as np
import onnxruntime as ort
import pytest

import workbench as wb
from workbench.cli import EXIT_OK, EXIT_USAGE, main, register
from workbench.cli.serve import COMMAND

ROOT = Path(__file__).resolve().parents[2]
#: The command line as `onnx-workbench` runs it, with the verb registered (cli/__init__ may not list it yet).
RUNNER = ("import sys; from workbench.cli import main, register; from workbench.cli.serve import COMMAND; "
          "register(COMMAND); sys.exit(main(sys.argv[1:]))")
START_S = 90


@pytest.fixture(scope="module")
def mlp_onnx(export_zoo: Any) -> Path:
    return Path(export_zoo("mlp", "torchscript").out)


def _first_line(stream: Any, timeout: float) -> str:
    """The first line on ``stream`` within ``timeout`` seconds ('' if none came)."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return ""


@pytest.fixture
def served(mlp_onnx: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    config = tmp_path / "tuned.json"
    wb.SessionConfig(opt_level="basic", intra_op_threads=1).to_json(config)
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, "serve", str(mlp_onnx), "--config", str(config),
                             "--port", "0", "--max-batch", "4", "--max-wait-ms", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    try:
        line = _first_line(proc.stdout, START_S)
        if not line.startswith("serving at http://127.0.0.1:"):
            proc.kill()
            pytest.fail(f"no URL on stdout: {line!r}; stderr: {proc.communicate(timeout=10)[1][-3000:]}")
        yield proc, line.split()[-1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.slow
def test_serve_answers_then_stops_cleanly_on_ctrl_c(served: tuple[subprocess.Popen[str], str], mlp_onnx: Path) -> None:
    proc, url = served
    assert httpx.get(f"{url}/v1/health", timeout=10).status_code == 200
    x = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    reply = httpx.post(f"{url}/v1/predict", json={"inputs": {"x": x.tolist()}}, timeout=10)
    assert reply.status_code == 200, reply.text
    expected = ort.InferenceSession(str(mlp_onnx)).run(None, {"x": x})[0]
    np.testing.assert_allclose(np.asarray(reply.json()["outputs"]["y"], dtype=np.float32), expected, rtol=1e-4, atol=1e-5)
    metadata = httpx.get(f"{url}/v1/metadata", timeout=10).text
    assert "basic" in metadata  # the config of --config is the one served
    assert httpx.post(f"{url}/v1/predict", json={"inputs": {"x": [[1.0, 2.0]]}}, timeout=10).status_code == 422

    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_OK, err[-3000:]
    assert "stopped" in err and "Traceback" not in err
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/v1/health", timeout=2)


@pytest.mark.parametrize(("argv", "message"), [
    (["--port", "70000"], "a port is 0-65535"),
    (["--max-batch", "0"], "must be >= 1"),
    (["--max-wait-ms", "-1"], "must be >= 0"),
])
def test_bad_flags_are_usage_errors(argv: list[str], message: str, mlp_onnx: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    register(COMMAND)
    assert main(["serve", str(mlp_onnx), *argv]) == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_a_bad_config_file_or_model_is_a_usage_error(mlp_onnx: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    register(COMMAND)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"opt_level": "all", "no_such_key": 1}))
    assert main(["serve", str(mlp_onnx), "--config", str(bad), "--port", "0"]) == EXIT_USAGE
    assert "no_such_key" in capsys.readouterr().err
    assert main(["serve", str(tmp_path / "missing.onnx"), "--port", "0"]) == EXIT_USAGE
    assert "missing.onnx" in capsys.readouterr().err


def test_a_tune_json_brings_its_config_and_flags_change_it(tmp_path: Path) -> None:
    from workbench.cli.serve import add_arguments, config_of

    tune = tmp_path / "tuned.json"
    tune.write_text(json.dumps({"onnx_model": "model.int8.onnx", "chosen": "int8",
                                "config": wb.SessionConfig(opt_level="basic", intra_op_threads=1).to_dict()}))
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_of(parser.parse_args([str(tune)])) == wb.SessionConfig(opt_level="basic", intra_op_threads=1)
    changed = config_of(parser.parse_args([str(tune), "--opt-level", "all", "--threads", "2"]))
    assert (changed.opt_level, changed.intra_op_threads) == ("all", 2)
    assert config_of(parser.parse_args(["model.onnx"])) == wb.SessionConfig(allow_spinning=False)  # the server's default
