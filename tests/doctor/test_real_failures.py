"""The doctor on public architectures (``workbench.zoo.public``, tiny transformers configs, random weights, no
downloads) that fail a plain dynamo export with dynamic axes: each failure found, the right code for >= 90 %,
the model's own source line named for >= 90 % of export-stage failures, a verified retry passing for >= 70 %;
no finding at all on the healthy ones. Each model is diagnosed once per session (``public_diagnosed``)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable

import pytest

pytest.importorskip("transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from workbench.doctor import Diagnosis, gallery  # noqa: E402
from workbench.doctor.codes import CODES  # noqa: E402
from workbench.zoo import public  # noqa: E402

pytestmark = pytest.mark.slow
FAILING = public.failing()
HEALTHY = public.healthy()
#: codes whose evidence comes from the export stage (the source line must be named)
EXPORT_STAGE = {"OUT001", "OUT002", "EXP001", "EXP002", "EXP003", "DATA002", "DATA003", "DATA005", "DYN007", "OP001"}


@pytest.fixture(scope="session")
def public_diagnosed(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Diagnosis]:
    root: Path = tmp_path_factory.mktemp("public")
    done: dict[str, Diagnosis] = {}

    def _run(name: str) -> Diagnosis:
        if name not in done:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                done[name] = gallery.diagnose_case(public.get(name).build(), work_dir=root / name)
        return done[name]

    return _run


def test_the_gallery_is_large_enough():
    assert len(FAILING) >= 12 and len(HEALTHY) >= 10
    assert {c.code for c in FAILING} <= set(CODES)
    assert len({c.model_class for c in FAILING}) >= 12


@pytest.mark.parametrize("case", FAILING, ids=lambda c: c.name)
def test_failure_found_and_named(case: public.PublicCase, public_diagnosed: Callable[[str], Diagnosis]):
    d = public_diagnosed(case.name)
    assert not d.ok and d.findings, d.text()
    assert "WB001" not in d.codes and "TORCH001" not in d.codes, d.text()
    finding = d.finding(case.code) or d.findings[0]
    assert finding.cause and finding.fix and "\x1b" not in finding.text() + d._repr_html_()
    if case.retry_passes is not None and finding.code == case.code:
        assert finding.retry is not None and finding.retry.outcomes, finding.text()
        assert finding.retry.ok is case.retry_passes, finding.text()


def test_aggregate_figures(public_diagnosed: Callable[[str], Diagnosis]):
    right = located = export_stage = passed = 0
    for case in FAILING:
        d = public_diagnosed(case.name)
        finding = d.finding(case.code)
        right += finding is not None
        if case.code in EXPORT_STAGE:
            export_stage += 1
            located += bool(finding and finding.evidence.get("location") and finding.evidence.get("source"))
        passed += bool(finding and finding.retry and finding.retry.ok)
    n = len(FAILING)
    assert right >= 0.9 * n and located >= 0.9 * export_stage and passed >= 0.7 * n, (right, located, passed, n)


def test_source_line_in_text_and_html(public_diagnosed: Callable[[str], Diagnosis]):
    d = public_diagnosed("swin")
    finding = d.finding("EXP002")
    assert finding is not None and finding.module == "encoder.layers.0.blocks.0.attention"
    assert "modeling_swin.py" in finding.location and "reshape" in finding.evidence["source"]
    assert "where:" in d.text() and "modeling_swin.py" in d._repr_html_()


def test_cache_output_is_not_a_pytorch_failure(public_diagnosed: Callable[[str], Diagnosis]):
    finding = public_diagnosed("gpt2").finding("OUT001")
    assert finding is not None and finding.evidence["output_type"] == "DynamicCache"
    assert finding.retry is not None and finding.retry.ok and "use_cache=False" in finding.retry.action


@pytest.mark.parametrize("case", HEALTHY, ids=lambda c: c.name)
def test_healthy_architectures_get_no_finding(case: public.PublicCase, public_diagnosed: Callable[[str], Diagnosis]):
    d = public_diagnosed(case.name)
    assert d.ok and d.findings == [], d.text()


def test_the_cli_shows_the_models_line(capsys: pytest.CaptureFixture[str], tmp_path: Path):
    from workbench.cli import EXIT_CHECK_FAILED, main

    code = main(["doctor", "zoo:public/bert_output_names", "--no-retry", "--work-dir", str(tmp_path),
                 "--out", str(tmp_path / "d.html")])
    out = capsys.readouterr().out
    assert code == EXIT_CHECK_FAILED and "[OUT002]" in out
    assert "where:" in out and "modeling_bert.py" in out and "pooler_output" in out
    assert "modeling_bert.py" in (tmp_path / "d.html").read_text()
