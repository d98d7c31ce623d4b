from __future__ import annotations

import pytest
import torch

import workbench as wb
from workbench.core.probe import probe_sizes


def test_probe_sizes_cover_one_two_example_large_and_odd():
    sizes = probe_sizes(["batch", "seq"], {"batch": 2, "seq": 32})
    batches = {s["batch"] for s in sizes if s["seq"] == 32}
    assert {1, 2, 7, 8} <= batches
    assert {s["seq"] for s in sizes if s["batch"] == 2} >= {1, 2, 7, 32, 64}
    assert {"batch": 1, "seq": 1} in sizes and len(sizes) == len({tuple(s.items()) for s in sizes})


def test_batch_two_export_passes_every_probe(export_zoo, tc_smoke):
    report = wb.probe_shapes(tc_smoke.model, export_zoo("text_classifier").out, tc_smoke.example_inputs, spec=tc_smoke.spec)
    assert report, repr(report)
    assert report.symbols == ["batch", "seq"] and report.example == {"batch": 2, "seq": 32}
    assert not report.static_in_graph and len(report.to_pandas()) == len(report.cases)


def test_batch_one_export_is_caught(export_zoo, tc_smoke):
    result = export_zoo("text_classifier", batch=1)
    report = wb.probe_shapes(tc_smoke.model, result.out, tc_smoke.make_inputs(batch=1), spec=tc_smoke.spec)
    assert not report
    assert report.static_in_graph == {"input_ids": [0]}
    failing = {c.sizes["batch"] for c in report.failures}
    assert failing >= {2, 7} and all(c.status == "ort_failed" for c in report.failures)
    assert all(c.ok for c in report.cases if c.sizes["batch"] == 1)
    assert "FAIL" in repr(report) and "static size 1" in report.failures[0].message


def test_numeric_drift_at_other_shapes_is_a_mismatch(export_zoo, mlp):
    class Drifts(torch.nn.Module):
        """Agrees with the export at batch 2 only."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = mlp.model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.inner(x)
            return y if x.shape[0] == 2 else y + 1.0

    report = wb.probe_shapes(Drifts().eval(), export_zoo("mlp").out, mlp.example_inputs, spec=mlp.spec)
    assert not report
    assert {c.status for c in report.failures} == {"mismatch"}
    assert all(c.max_abs == pytest.approx(1.0, rel=1e-4) for c in report.failures)


def test_probe_needs_dynamic_axes(export_zoo, mlp):
    with pytest.raises(wb.InvalidInputError, match="declares no dynamic input axes"):
        wb.probe_shapes(mlp.model, export_zoo("mlp").out, mlp.example_inputs, spec=mlp.spec.replace(dynamic_axes={}))
    with pytest.raises(wb.SpecError, match="spec must be a wb.ExportSpec"):
        wb.probe_shapes(mlp.model, export_zoo("mlp").out, mlp.example_inputs, spec={"x": {0: "b"}})


@pytest.mark.slow
def test_seed_text_classifier_batch_two_passes_and_batch_one_is_caught(tmp_path):
    """Done-when 3 of the core issue, on the seed's full-size text classifier."""
    zm = wb.zoo.get("text_classifier")
    good = wb.export(zm.model, zm.make_inputs(batch=2), tmp_path / "b2.onnx", spec=zm.spec)
    for batch, seq in [(1, 128), (4, 64), (2, 7)]:
        result = wb.compare(zm.model, good.out, zm.make_inputs(batch=batch, seq=seq), tolerance="fp32")
        assert result, repr(result)
    bad = wb.export(zm.model, zm.make_inputs(batch=1), tmp_path / "b1.onnx", spec=zm.spec)
    report = wb.probe_shapes(zm.model, bad.out, zm.make_inputs(batch=1), spec=zm.spec)
    assert not report and report.failures
