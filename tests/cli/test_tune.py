"""``onnx-workbench tune``: a bare ONNX file is refused with what tune needs; a real short tune prints
the table and the chosen config and writes JSON that SessionConfig.from_json reads; the tour's tune
stage runs after the pipeline (and ``--skip tune`` leaves it out)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import workbench as wb
from workbench.cli import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE, main

#: A short search: the command's plumbing, not the search's quality.
BUDGET = "15"


@pytest.mark.parametrize("argv, message", [
    (["tune", "model.onnx"], "tune needs the PyTorch model"),
    (["tune", "zoo:mlp", "--budget", "0"], "--budget must be seconds > 0"),
    (["tune", "zoo:mlp", "--onnx", "missing.onnx"], "--onnx: no ONNX file at 'missing.onnx'"),
    (["tune", "zoo:mlp", "--batch-sizes", "0"], "--batch-sizes must be"),
    (["tune", "zoo:mlp", "--tolerance", "tight"], "--tolerance must be one of"),
    (["tune", "zoo:nope"], "No zoo model named 'nope'"),
    (["tune", "zoo:nope", "--out", "tuned.txt"], "--out is where the chosen config is written as JSON"),  # first
])
def test_bad_input_exits_2_with_the_message(argv: list[str], message: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--work-dir", str(tmp_path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_refusal_says_what_to_do_instead(capsys: pytest.CaptureFixture[str]):
    assert main(["tune", "exported.onnx"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "accuracy gate" in err and "--onnx exported.onnx" in err and "onnx-workbench bench exported.onnx" in err


@pytest.mark.slow
def test_a_short_tune_prints_the_table_and_writes_the_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "tuned.json"
    code = main(["tune", "zoo:text_classifier", "--smoke", "--batch-sizes", "1", "--budget", BUDGET,
                 "--out", str(out), "--work-dir", str(tmp_path / "work")])
    captured = capsys.readouterr()
    assert "TuneResult" in captured.out and "verdict:" in captured.out, captured.out + captured.err
    assert "tune prepare: " in captured.err and "exporting text_classifier" in captured.err  # progress on stderr
    if code == EXIT_OK:
        config = wb.SessionConfig.from_json(out)
        saved = json.loads(out.read_text())
        assert Path(saved["onnx_model"]).is_file() and saved["verdict"]
        assert f"config: {config.to_json()}" in captured.out and f"written: {out.resolve()}" in captured.out
    else:  # nothing beat eager clearly in 4 s: said, and no file
        assert code == EXIT_CHECK_FAILED and "no config written" in captured.out and not out.exists()


@pytest.mark.slow
def test_the_tour_ends_with_a_tune_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    skip = ["summarize", "compare", "probe", "optimize", "int8", "fp16", "sweep"]
    code = main(["tour", "--quick", "--model", "mlp", "--work-dir", str(tmp_path), "--skip", *skip])
    captured = capsys.readouterr()
    assert code == EXIT_OK, captured.out + captured.err
    assert "tune: started" in captured.err and "TuneResult" in captured.out
    assert (tmp_path / "tune.json").is_file() == ("tune: " + str(tmp_path / "tune.json") in captured.out)
    assert main(["tour", "--quick", "--model", "mlp", "--work-dir", str(tmp_path), "--skip", *skip, "tune"]) == EXIT_OK
    captured = capsys.readouterr()
    assert "tune: started" not in captured.err and "TuneResult" not in captured.out


def test_each_model_gets_its_own_files_in_a_shared_work_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]):
    """Tuning model B in the work dir of model A must not overwrite the chosen file A's JSON points at."""
    from types import SimpleNamespace

    import workbench.cli.tune as cli_tune

    seen: dict[str, dict] = {}

    def fake_tune_case(case, onnx_model, **options):
        seen[case.name] = options
        return SimpleNamespace(chosen=None, verdict="keep PyTorch")

    monkeypatch.setattr(cli_tune, "tune_case", fake_tune_case)
    onnx_file = tmp_path / "given.onnx"
    onnx_file.write_bytes(b"")
    for model in ("zoo:mlp", "zoo:text_classifier"):
        assert main(["tune", model, "--smoke", "--onnx", str(onnx_file), "--batch-sizes", "1",
                     "--work-dir", str(tmp_path)]) == EXIT_CHECK_FAILED
    capsys.readouterr()
    a, b = seen["mlp"], seen["text_classifier"]
    assert a["out"] == tmp_path / "mlp-smoke.tuned.onnx" and b["out"] == tmp_path / "text_classifier-smoke.tuned.onnx"
    assert a["work_dir"] != b["work_dir"] and a["work_dir"].parent == b["work_dir"].parent == tmp_path
