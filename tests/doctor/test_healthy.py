"""No false alarms: the doctor finds nothing wrong with the healthy zoo models, with either exporter.

One pair is not healthy and the doctor must say so: the TorchScript exporter traces
``nn.MultiheadAttention`` (inside the text classifier's ``nn.TransformerEncoder``) with the example's
batch and sequence sizes baked into a Reshape, so the graph fails at other sizes (notebook 01 shows
it; the broken zoo's ``baked_reshape`` is the same bug). There the diagnosis must name exactly that
(DYN002 at the attention's Reshape) and its retry with the dynamo exporter must pass.
"""

from __future__ import annotations

import warnings

import pytest

import workbench as wb
from workbench.doctor import Diagnosis, diagnose
from workbench.doctor.attempt import STAGE_NAMES

EXPORTERS = {"torchscript": 17, "dynamo": 18}
#: (zoo model, exporter) -> the one finding a correct diagnosis makes.
TRUE_ALARMS = {("text_classifier", "torchscript"): "DYN002"}


def _params() -> list:
    return [pytest.param(name, exporter, id=f"{name}-{exporter}",
                         marks=() if (name, exporter) == ("mlp", "torchscript") else pytest.mark.slow)
            for name in wb.zoo.names() for exporter in EXPORTERS]


def _diagnose(name: str, exporter: str, work_dir) -> Diagnosis:  # type: ignore[no-untyped-def]
    case = wb.zoo.get(name, smoke=True)
    spec = case.spec.replace(exporter=exporter, opset=EXPORTERS[exporter])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return diagnose(case.model, case.example_inputs, spec=spec, work_dir=work_dir, name=name)


@pytest.mark.parametrize(("name", "exporter"), _params())
def test_healthy_zoo_model(name: str, exporter: str, tmp_path):
    d = _diagnose(name, exporter, tmp_path)
    assert d.export is not None and d.export.exporter == exporter, d.text()
    alarms = [f for f in d.findings if f.severity in ("error", "warning")]
    expected = TRUE_ALARMS.get((name, exporter))
    if expected is None:
        assert d.ok and not alarms, d.text()
        assert all(d.stages[s] is True for s in STAGE_NAMES), d.text()
        assert d.probe is not None and d.probe.ok
        return
    assert [f.code for f in alarms] == [expected] and not d.ok, d.text()
    finding = alarms[0]
    assert finding.evidence["op_type"] == "Reshape" and finding.module.endswith("self_attn"), d.text()
    assert finding.retry is not None and finding.retry.ok and "dynamo" in finding.retry.action, d.text()
