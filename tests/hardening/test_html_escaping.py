"""No markup from a model, a file name, an exception or a warning reaches HTML unescaped (issue 9 §1).

Models carry markup payloads in every string field ONNX has; they go through ``summarize``, export,
``compare``, ``probe_shapes``, the doctor (``Diagnosis._repr_html_`` and ``onnx-workbench doctor
--out``) and ``write_report``. Each HTML is PARSED (``html.parser``): no element or attribute from a
payload may appear (no ``<img>``/``<svg>``/``<iframe>``, no ``<script>`` the workbench did not write,
no ``on*`` attribute anywhere), and the payload text must still be there, escaped, where the field
is shown (so a test that renders nothing cannot pass).
"""

from __future__ import annotations

import warnings
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

import workbench as wb
from workbench.core._format import esc
from workbench.core.stages import StageResult

# Payloads that would create an element or an attribute if they reached HTML raw. ``wbpwn`` marks
# them, so a rendered payload is easy to recognise in the parsed text.
IMG = "<img src=x onerror=wbpwn(1)>"
SCRIPT = '"><script>wbpwn(2)</script>'
ATTR = "' onmouseover='wbpwn(3)"
SVG = '<svg onload="wbpwn(4)">'
PAYLOAD = IMG + SCRIPT + ATTR + SVG
FILE_PAYLOAD = "<img src=x onerror=wbpwn(5)>\"'"  # no "/" in a file name
ANSI_PAYLOAD = "\x1b[96m<b>blue</b>\x1b[0m"
SCRIPTS_WE_WRITE = ("window.PLOTLYENV", "/**\n* plotly.js")
FORBIDDEN_TAGS = {"img", "svg", "iframe", "object", "embed", "math", "b-payload"}


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._raw: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        if tag in ("script", "style"):
            self._raw = tag
            if tag == "script":
                self.scripts.append("")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_endtag(self, tag: str) -> None:
        self._raw = None

    def handle_data(self, data: str) -> None:
        if self._raw == "script":
            self.scripts[-1] += data
        elif self._raw is None:
            self.text.append(data)


def assert_safe(html: str, *, shows: tuple[str, ...] = (PAYLOAD,)) -> str:
    """Parse ``html``; fail on any element or attribute a payload could have made. Returns the text."""
    parser = _Collector()
    parser.feed(html)
    parser.close()
    problems = []
    for tag, attrs in parser.tags:
        if tag in FORBIDDEN_TAGS:
            problems.append(f"<{tag} {attrs}>")
        if tag == "script" and attrs not in ([], [("type", "text/javascript")]):
            problems.append(f"a <script> the workbench did not write: {attrs}")
        for name, value in attrs:
            if name.lower().startswith("on") or "wbpwn" in name:
                problems.append(f"attribute {name}={value!r} on <{tag}>")
            if value is not None and value.strip().lower().startswith("javascript:"):
                problems.append(f"a javascript: URL in {name}={value!r} on <{tag}>")
    for script in parser.scripts:  # only plotly.js and plotly's figure code, whose JSON escapes "<"
        if not script.strip().startswith(SCRIPTS_WE_WRITE):
            problems.append(f"a <script> the workbench did not write: {script[:80]!r}")
    assert not problems, "markup from the model reached the HTML:\n" + "\n".join(problems)
    text = "".join(parser.text)
    assert "\x1b" not in html, "ANSI escape codes reached the HTML"
    for payload in shows:
        assert payload in text, f"the field should be shown (escaped): {payload!r} not in the page's text"
    return text


def test_the_checker_itself_catches_raw_markup():
    """The parser check is not vacuous: the raw payload is caught, the escaped one is not."""
    for raw in (IMG, SCRIPT, ATTR.join(["<a href='", "'>x</a>"]), SVG):
        with pytest.raises(AssertionError, match="markup from the model"):
            assert_safe(f"<div>{raw}</div>", shows=())
    assert_safe(f"<div>{esc(PAYLOAD)}</div>")
    assert_safe(f"<a href='{esc(ATTR)}'>x</a>", shows=())


# ---------------------------------------------------------------- models with markup everywhere


def _names(tag: str) -> str:
    return f"{tag}{PAYLOAD}"


def _markup_graph(*, broken: bool) -> onnx.GraphProto:
    """x -> Relu -> Add(w) -> y, every name and doc string a payload; ``broken`` adds a node that
    reads a missing value (the checker quotes it) and a custom-domain op."""
    x, r, y, w = _names("x"), _names("r"), _names("y"), _names("w")
    relu = helper.make_node("Relu", [x], [r], name=_names("node"), doc_string=PAYLOAD)
    add = helper.make_node("Add", [r, w], [y], name=_names("add"), doc_string=PAYLOAD)
    nodes = [relu, add]
    if broken:
        custom = helper.make_node(_names("Op"), [_names("missing")], [_names("z")], name=_names("custom"),
                                  domain=_names("dom"), doc_string=PAYLOAD)
        custom.attribute.append(helper.make_attribute(_names("attr"), PAYLOAD, attr_type=onnx.AttributeProto.STRING))
        custom.attribute[0].doc_string = PAYLOAD
        nodes.append(custom)
    weight = numpy_helper.from_array(np.full((3,), 0.5, np.float32), name=w)
    weight.doc_string = PAYLOAD
    text = helper.make_tensor(_names("strings"), TensorProto.STRING, [2], [PAYLOAD.encode(), b"plain"])
    graph = helper.make_graph(
        nodes, _names("graph"),
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [_names("batch"), 3], doc_string=PAYLOAD)],
        [helper.make_tensor_value_info(y, TensorProto.FLOAT, [_names("batch"), 3], doc_string=PAYLOAD)],
        initializer=[weight] + ([text] if broken else []),
        value_info=[helper.make_tensor_value_info(r, TensorProto.FLOAT, [_names("batch"), 3])],
        doc_string=PAYLOAD)
    graph.input[0].type.denotation = PAYLOAD
    return graph


def markup_model(*, broken: bool = False) -> onnx.ModelProto:
    opsets = [helper.make_opsetid("", 18)]
    if broken:
        opsets.append(helper.make_opsetid(_names("dom"), 1))
    model = helper.make_model(_markup_graph(broken=broken), opset_imports=opsets, producer_name=_names("producer"),
                              producer_version=PAYLOAD, domain=PAYLOAD, doc_string=PAYLOAD, model_version=1)
    model.ir_version = 9
    helper.set_model_props(model, {_names("key"): _names("value")})
    if broken:
        func = helper.make_function(_names("fdom"), _names("func"), ["a"], ["b"],
                                    [helper.make_node("Relu", ["a"], ["b"])], [helper.make_opsetid("", 18)])
        func.doc_string = PAYLOAD
        model.functions.append(func)
    return model


class Plus(nn.Module):
    """The torch twin of ``markup_model()``: relu(x) + 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) + 0.5


class Boom(nn.Module):
    """Runs in eager mode; its export raises an exception carrying markup and ANSI colour codes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing() or torch.compiler.is_exporting() or torch.compiler.is_compiling():
            raise RuntimeError(f"{PAYLOAD} {ANSI_PAYLOAD}")
        return x + 1


class Warner(nn.Module):
    """Exports fine and warns with markup (and colour codes) whenever it runs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        warnings.warn(PAYLOAD + ANSI_PAYLOAD, UserWarning, stacklevel=1)
        return torch.relu(x) * 2


# ---------------------------------------------------------------- the results


def test_summary_of_a_model_with_markup_in_every_field(tmp_path):
    for model in (markup_model(), markup_model(broken=True)):
        summary = wb.summarize(model)
        text = assert_safe(summary._repr_html_(), shows=(_names("producer"), _names("x"), _names("y")))
        if not summary.checker_ok:
            assert _names("missing") in summary.checker_message and summary.checker_message in text
    folder = tmp_path / FILE_PAYLOAD
    folder.mkdir()
    path = folder / f"{FILE_PAYLOAD}.onnx"
    onnx.save(markup_model(broken=True), str(path))
    assert_safe(wb.summarize(path)._repr_html_(), shows=(FILE_PAYLOAD, _names("producer")))


def test_summary_shows_metadata_and_graph_names_escaped():
    html = wb.summarize(markup_model())._repr_html_()
    assert_safe(html, shows=(_names("key"), _names("value"), _names("graph")))


def test_export_result_with_markup_warnings_output_names_and_folder(tmp_path):
    folder = tmp_path / FILE_PAYLOAD
    spec = wb.ExportSpec(input_names=(_names("in"),), output_names=(_names("out"),), exporter="torchscript",
                         opset=17)
    with warnings.catch_warnings():  # the eager check run before the export warns too
        warnings.simplefilter("ignore")
        result = wb.export(Warner().eval(), torch.randn(2, 3), folder / "m.onnx", spec=spec, use_cache=False)
    assert any("wbpwn" in w for w in result.warnings), result.warnings
    assert_safe(result._repr_html_(), shows=(FILE_PAYLOAD, IMG))
    assert_safe(result.summary._repr_html_(), shows=(_names("in"), _names("out")))


@pytest.mark.parametrize("exporter,opset", [("dynamo", 18), ("torchscript", 17)])
def test_export_error_with_markup_and_ansi(tmp_path, exporter, opset):
    spec = wb.ExportSpec(input_names=("x",), output_names=("y",), exporter=exporter, opset=opset)
    with pytest.raises(wb.ExportError) as info:
        wb.export(Boom().eval(), torch.randn(2, 3), tmp_path / "boom.onnx", spec=spec)
    message = str(info.value)
    assert "\x1b" in str(info.value.exception) or "\x1b" in str(info.value.exception.__cause__), \
        "torch's own message is coloured (dynamo: 'This is step 1/3'; torchscript: ours)"
    assert "\x1b" not in message and "\x1b" not in wb.brief(info.value)
    assert PAYLOAD in message or IMG in message
    stage = StageResult("export", False, None, wb.brief(info.value, 1000), error=info.value)
    assert "\x1b" not in stage.exception and IMG in stage.exception


def test_comparison_with_markup_output_names(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(markup_model(), str(path))
    comparison = wb.compare(Plus().eval(), path, torch.randn(2, 3))
    assert comparison.ok, comparison
    assert_safe(comparison._repr_html_(), shows=(_names("y"),))
    arrays = wb.compare_arrays([np.ones(3, np.float32)], [np.zeros(3, np.float32)], names=[PAYLOAD])
    assert_safe(arrays._repr_html_())
    assert_safe(arrays.at("fp16")._repr_html_())


def test_probe_report_with_markup_names(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(markup_model(), str(path))
    x, y = _names("x"), _names("y")
    spec = wb.ExportSpec(input_names=(x,), output_names=(y,), dynamic_axes={x: {0: "batch"}, y: {0: "batch"}})
    report = wb.probe_shapes(Plus().eval(), path, (torch.randn(2, 3),), spec=spec)
    assert report.cases
    assert_safe(report._repr_html_(), shows=())


# ---------------------------------------------------------------- the doctor


def test_diagnosis_of_an_export_whose_exception_carries_markup(tmp_path):
    diagnosis = wb.diagnose(Boom().eval(), torch.randn(2, 3), name=PAYLOAD, work_dir=tmp_path / FILE_PAYLOAD)
    assert not diagnosis.ok and diagnosis.findings
    text = assert_safe(diagnosis._repr_html_(), shows=(PAYLOAD,))
    assert "\x1b" not in diagnosis.text() and "\x1b" not in repr(diagnosis)
    for finding in diagnosis.findings:
        assert "\x1b" not in finding.cause and "\x1b" not in finding.evidence_text()
        assert_safe(finding._repr_html_(), shows=())
    assert IMG in text  # the exception's message is shown, as text


MODEL_FILE = '''
import torch
from torch import nn
import workbench as wb

PAYLOAD = {payload!r}


class Boom(nn.Module):
    def forward(self, x):
        if torch.jit.is_tracing() or torch.compiler.is_exporting() or torch.compiler.is_compiling():
            raise RuntimeError(PAYLOAD + " \\x1b[96mcolour\\x1b[0m")
        return x + 1


def build():
    return wb.ModelCase(PAYLOAD, Boom().eval(), (torch.randn(2, 3),), wb.ExportSpec(input_names=("x",), output_names=("y",)))
'''


def test_doctor_command_writes_escaped_html(tmp_path, capsys):
    from workbench.cli import main

    folder = tmp_path / FILE_PAYLOAD
    folder.mkdir()
    source = folder / "markup_model.py"
    source.write_text(MODEL_FILE.format(payload=PAYLOAD), encoding="utf-8")
    out = folder / f"{FILE_PAYLOAD}.html"
    code = main(["doctor", f"{source}:build", "--no-retry", "--out", str(out), "--work-dir", str(folder / "work")])
    assert code == 1
    assert "\x1b" not in capsys.readouterr().out
    assert_safe(out.read_text(encoding="utf-8"), shows=(PAYLOAD,))


# ---------------------------------------------------------------- the report


def _markup_case() -> wb.ModelCase:
    x, y = _names("in"), _names("out")
    spec = wb.ExportSpec(input_names=(x,), output_names=(y,), dynamic_axes={x: {0: "batch"}, y: {0: "batch"}})
    return wb.ModelCase(PAYLOAD, Warner().eval(), (torch.randn(2, 3),), spec, description=PAYLOAD)


@pytest.mark.slow
def test_report_of_a_run_with_markup_names_warnings_and_folder(tmp_path):
    from workbench.report import write_report

    folder = tmp_path / FILE_PAYLOAD
    run = wb.run_pipeline(_markup_case(), folder, quick=True)
    assert run.stage("export").ok, run.stage("export")
    assert any("wbpwn" in w for s in run.stages for w in s.warnings)
    assert_safe(run._repr_html_(), shows=(FILE_PAYLOAD,))
    out = write_report(run, folder / f"{FILE_PAYLOAD}.html")
    assert_safe(out.read_text(encoding="utf-8"), shows=(PAYLOAD, FILE_PAYLOAD, _names("out")))


def test_report_of_a_failed_export_with_markup_and_ansi(tmp_path):
    from workbench.report import render_report

    case = wb.ModelCase(PAYLOAD, Boom().eval(), (torch.randn(2, 3),), wb.ExportSpec(input_names=("x",),
                                                                                     output_names=("y",)))
    run = wb.run_pipeline(case, tmp_path / FILE_PAYLOAD, quick=True)
    export = run.stage("export")
    assert export.status is False and "\x1b" not in export.exception and IMG in export.exception
    assert "\x1b" in (export.traceback or ""), "torch's coloured message is in the raw traceback"
    assert_safe(run._repr_html_(), shows=(IMG,))
    assert_safe(render_report(run), shows=(PAYLOAD, IMG))


def test_report_renders_every_result_of_a_model_with_markup(tmp_path):
    """A run whose stages hold results about the markup model (summary with its op histogram figure,
    comparison, probes) and markup in exceptions, warnings and tracebacks."""
    from workbench.core.pipeline import PipelineRun
    from workbench.report import render_report

    path = tmp_path / "m.onnx"
    onnx.save(markup_model(), str(path))
    x, y = _names("x"), _names("y")
    spec = wb.ExportSpec(input_names=(x,), output_names=(y,), dynamic_axes={x: {0: "batch"}, y: {0: "batch"}})
    comparison = wb.compare(Plus().eval(), path, torch.randn(2, 3))
    probe = wb.probe_shapes(Plus().eval(), path, (torch.randn(2, 3),), spec=spec)
    noisy = [PAYLOAD, ANSI_PAYLOAD]
    stages = [
        StageResult("export", True, None, summary=PAYLOAD, warnings=noisy),
        StageResult("summarize", False, wb.summarize(markup_model(broken=True)), summary=PAYLOAD),
        StageResult("compare", comparison.ok, comparison, summary=PAYLOAD),
        StageResult("probe", probe.ok, probe, summary=PAYLOAD),
        StageResult("optimize", False, None, exception=PAYLOAD + ANSI_PAYLOAD, traceback=PAYLOAD + ANSI_PAYLOAD),
    ]
    run = PipelineRun(PAYLOAD, tmp_path / FILE_PAYLOAD, stages, quick=True, started_at=PAYLOAD,
                      versions={PAYLOAD: PAYLOAD})
    assert_safe(render_report(run), shows=(PAYLOAD, _names("producer"), _names("y")))


def test_transform_and_measurement_results_of_the_markup_model(tmp_path):
    """optimize, quantize, fp16, placement and benchmark of the markup model: names and labels escaped."""
    folder = tmp_path / FILE_PAYLOAD
    folder.mkdir()
    path = folder / "m.onnx"
    onnx.save(markup_model(), str(path))
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    results = {
        "optimize": wb.optimize(path, folder / "opt.onnx", opt_level="basic"),
        "quantize": wb.quantize_dynamic(path, folder / "int8.onnx"),
        "fp16": wb.to_fp16(path, folder / "fp16.onnx"),
        "placement": wb.placement(path, {_names("x"): x}),
        "benchmark": wb.benchmark(path, {_names("x"): x}, runs=3, warmup=1, label=PAYLOAD),
    }
    shows = {"optimize": (FILE_PAYLOAD,), "quantize": (FILE_PAYLOAD,), "fp16": (FILE_PAYLOAD,), "placement": (),
             "benchmark": (PAYLOAD,)}
    for name, result in results.items():
        assert_safe(result._repr_html_(), shows=shows[name])
