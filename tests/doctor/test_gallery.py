"""The acceptance tests of the doctor: every gallery case is detected, named and located, the retries
pass where expected (at least half of all cases) and say so truthfully elsewhere, and drift is
localized to its first divergent node and module."""

from __future__ import annotations

from typing import Callable

import pytest

from workbench.doctor import Diagnosis, gallery
from workbench.zoo import broken
from workbench.doctor.codes import CATEGORIES, CODES

# Cases that export with TorchScript only (no dynamo export in the diagnosis or its retries): fast.
FAST = {"dynamic_axes_typo", "channels_dynamic", "opset_too_old", "training_mode", "fp16_tolerance",
        "ort_gelu_approximation", "transformer_fastpath", "misspelled_provider", "unavailable_provider", "device_mismatch"}


def _params() -> list:
    return [pytest.param(c, id=c.name, marks=() if c.name in FAST else pytest.mark.slow) for c in broken.CASES]


def test_gallery_covers_the_issue():
    cases = broken.CASES
    assert len(cases) >= 12
    assert {c.code for c in cases} <= set(CODES)
    assert {"dynamic shapes", "data-dependent", "operators", "numerics", "providers", "device"} <= {
        CODES[c.code].category for c in cases} | {"divergence"}
    assert set(CATEGORIES) >= {CODES[c.code].category for c in cases}
    assert len({c.name for c in cases}) == len(cases)


@pytest.mark.parametrize("case", _params())
def test_detected_named_and_located(case: broken.BrokenCase, diagnosed: Callable[[str], Diagnosis]):
    d = diagnosed(case.name)
    assert gallery.check(case, d) == [], d.text()
    assert "WB001" not in d.codes, d.text()
    finding = d.finding(case.code)
    assert finding is not None and finding.cause and finding.fix and finding.evidence
    if finding.severity == "error":
        assert not d.ok and not bool(d)
    assert case.code in d._repr_html_() and len(d.to_pandas()) == len(d.findings)


@pytest.mark.parametrize("case", _params())
def test_retry_verdict(case: broken.BrokenCase, diagnosed: Callable[[str], Diagnosis]):
    finding = diagnosed(case.name).finding(case.code)
    assert finding is not None
    if case.retry_passes is None:
        assert finding.retry is None
        return
    assert finding.retry is not None and finding.retry.tried, finding.text()
    assert finding.retry.ok is case.retry_passes, finding.text()
    assert finding.retry.detail  # what passed, or where it still fails
    if not case.retry_passes:
        assert "fails" in finding.retry.detail or "[" in finding.retry.detail


@pytest.mark.slow
def test_retries_fix_at_least_half(diagnosed: Callable[[str], Diagnosis]):
    verdicts = {}
    for case in broken.CASES:
        finding = diagnosed(case.name).finding(case.code)
        verdicts[case.name] = bool(finding and finding.retry and finding.retry.ok)
    assert sum(verdicts.values()) >= len(verdicts) / 2, verdicts


@pytest.mark.slow
def test_symbolic_drift_is_localized(diagnosed: Callable[[str], Diagnosis]):
    d = diagnosed("symbolic_drift")
    assert d.first_divergent_node is not None and d.first_divergent_node.startswith("/b2/act/")
    assert d.divergence is not None and d.divergence.module == "b2.act"
    assert d.divergence_onnx_model == d.out  # node names of the exported graph (for graph overlays)
    errors = d.node_errors
    assert errors["/b1/lin/Gemm"] < 1e-4 and errors[d.first_divergent_node] > 1e-4
    # nodes before the first divergent one agree with PyTorch
    names = [n.node for n in d.divergence.nodes]
    assert all(n.ok for n in d.divergence.nodes[: names.index(d.first_divergent_node)])


def test_optimizer_drift_is_bisected_and_localized(diagnosed: Callable[[str], Diagnosis]):
    d = diagnosed("ort_gelu_approximation")
    assert d.bisection is not None and d.bisection.culprit == "GeluApproximation"
    assert d.bisection.first_bad_level == "extended" and d.bisection.last_good_level == "basic"
    assert d.first_divergent_node == "FastGelu" and d.divergence is not None
    assert d.divergence.module == "b2.act" and d.divergence.first.module_type == "GELU"
    assert d.divergence_onnx_model == d.bisection.optimized_out  # 'FastGelu' lives in the optimized graph
    retry = d.finding("NUM003").retry
    assert retry is not None and retry.ok and "GeluApproximation" in retry.action


@pytest.mark.slow
def test_dynamo_metadata_maps_nodes_to_modules(diagnosed: Callable[[str], Diagnosis]):
    d = diagnosed("shape_branch")
    finding = d.finding("DYN005")
    assert finding is not None and finding.node.startswith("node_") and finding.module == "gate"
    assert finding.evidence["module_type"] == "SizeGate"


@pytest.mark.slow
def test_the_probe_catches_what_the_example_hides(diagnosed: Callable[[str], Diagnosis]):
    d = diagnosed("size_one_batch")
    assert d.stages["compare"] is True and d.stages["probe"] is False
    d = diagnosed("value_branch_traced")
    assert d.stages["compare"] is True and d.stages["values"] is False
    assert "DYN005" not in d.codes  # value mismatches are not blamed on sizes
