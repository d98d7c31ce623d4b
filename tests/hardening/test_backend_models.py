"""ONNX's own backend test models, shipped in the onnx wheel, through the public API.

Every model in ``onnx/backend/test/data/{simple,pytorch-converted,pytorch-operator,light}`` is
summarized and opened with ``wb.open_session``; a model that opens runs on its reference inputs
and must match its reference outputs in ``wb.compare_arrays``; a model that is refused must be
refused with a ``WorkbenchError`` whose ``failure`` names a known reason, and an old-opset refusal
must name ``wb.convert_opset``, whose converted model must then open and match too. No other
exception may escape. ``real/*/data.json`` only point at the ``light`` models (with their
tolerances), so each light model runs once, at the tolerance its ``real`` entry gives.

``light`` models carry no inputs: like onnx's own runner, the input is ``arange(n) / n`` in the
declared shape (1 for a dynamic dim) and the expected output is ``light_<name>_output_0.pb``.
The largest light models (vgg19, zfnet512) take 1-3 s each on CPU; all are kept.
"""

from __future__ import annotations

import functools
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import workbench as wb

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
DIR_GROUPS = ("simple", "pytorch-converted", "pytorch-operator")
DEFAULT_TOLERANCE = (1e-3, 1e-7)  # onnx's backend runner: rtol=1e-3, atol=1e-7
#: Reasons a backend model may be refused here, and why that is right.
ALLOWED_REFUSALS = {
    "old_opset": "opset-6 models using AveragePool-1, BatchNormalization-6, Add/Mul/Gemm/PRelu-6, Pow-1",
    "unregistered_op": "ai.onnx.preview.training::Gradient is not an inference op",
    "locale": "StringNormalizer needs the en_US.UTF-8 locale, missing on minimal systems",
}


@dataclass(frozen=True)
class BackendCase:
    """One backend model: where it is, its data sets (input files, output files) and tolerance."""

    group: str
    name: str
    model: Path
    data_sets: tuple[tuple[tuple[Path, ...], tuple[Path, ...]], ...]
    tolerance: tuple[float, float] = DEFAULT_TOLERANCE

    @property
    def id(self) -> str:
        return f"{self.group}/{self.name}"

    @property
    def generated_inputs(self) -> bool:
        return self.group == "light"


@dataclass
class Outcome:
    """What happened to one case: opened+matched, or refused (reason), with the converted model's verdict."""

    case: BackendCase
    opened: bool
    matched: bool = False
    reason: str = ""
    message: str = ""
    converted: bool | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def _dir_cases(group: str) -> Iterator[BackendCase]:
    for folder in sorted((DATA / group).iterdir()):
        if not (folder / "model.onnx").is_file():
            continue
        sets = tuple(
            (tuple(sorted(s.glob("input_*.pb"), key=_index)), tuple(sorted(s.glob("output_*.pb"), key=_index)))
            for s in sorted(folder.glob("test_data_set_*"))
        )
        yield BackendCase(group, folder.name, folder / "model.onnx", sets)


def _index(path: Path) -> int:
    return int(path.stem.rsplit("_", 1)[1])


def _real_tolerances() -> dict[str, tuple[float, float]]:
    """``real/test_<name>/data.json`` -> {light model file name: (rtol, atol)}."""
    found: dict[str, tuple[float, float]] = {}
    for data in sorted((DATA / "real").glob("*/data.json")):
        info = json.loads(data.read_text())
        found[Path(info["url"]).name] = (float(info.get("rtol", 1e-3)), float(info.get("atol", 1e-7)))
    return found


def _light_cases() -> Iterator[BackendCase]:
    tolerances = _real_tolerances()
    for model in sorted((DATA / "light").glob("light_*.onnx")):
        outputs = tuple(sorted(model.parent.glob(f"{model.stem}_output_*.pb"), key=_index))
        yield BackendCase("light", model.stem, model, (((), outputs),), tolerances.get(model.name, DEFAULT_TOLERANCE))


CASES = [c for g in DIR_GROUPS for c in _dir_cases(g)] + list(_light_cases())


def _read_value(path: Path, value_type: onnx.TypeProto) -> Any:
    """A .pb file as numpy: a tensor, a list for a sequence, None/value for an optional."""
    kind = value_type.WhichOneof("value")
    if kind == "sequence_type":
        seq = onnx.SequenceProto()
        seq.ParseFromString(path.read_bytes())
        return numpy_helper.to_list(seq)
    if kind == "optional_type":
        opt = onnx.OptionalProto()
        opt.ParseFromString(path.read_bytes())
        return numpy_helper.to_optional(opt)
    return numpy_helper.to_array(onnx.load_tensor(str(path)))


def _light_inputs(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """onnx's runner's inputs for light models: arange(n) / n, float32, static dims (1 when dynamic)."""
    initializers = {i.name for i in model.graph.initializer}
    feed = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in value.type.tensor_type.shape.dim)
        n = int(np.prod(shape))
        feed[value.name] = (np.arange(n).reshape(shape) / n).astype(np.float32)
    return feed


def _feeds(case: BackendCase, model: onnx.ModelProto) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(feed, expected outputs by name) for each data set."""
    initializers = {i.name for i in model.graph.initializer}
    graph_inputs = [v for v in model.graph.input if v.name not in initializers]
    for inputs, outputs in case.data_sets:
        feed = (_light_inputs(model) if case.generated_inputs else
                {v.name: _read_value(p, v.type) for v, p in zip(graph_inputs, inputs)})
        expected = {v.name: _read_value(p, v.type) for v, p in zip(model.graph.output, outputs)}
        yield feed, expected


def _flatten(values: dict[str, Any]) -> tuple[list[str], list[Any]]:
    """Outputs by name, with a sequence output expanded to ``name[i]``."""
    names: list[str] = []
    arrays: list[Any] = []
    for name, value in values.items():
        items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for i, item in items:
            names.append(name if i is None else f"{name}[{i}]")
            arrays.append(item)
    return names, arrays


def _run_and_compare(session: Any, case: BackendCase, model: onnx.ModelProto) -> wb.Comparison | None:
    """Run every data set; the first failing comparison, or the last one when all pass."""
    comparison = None
    for feed, expected in _feeds(case, model):
        try:
            actual = session.run(list(expected), feed)
        except Exception as exc:  # session.run is ONNX Runtime's own call: explain it in the failure
            from workbench.core.ort_errors import explain_run_error

            pytest.fail(f"{case.id} opened but failed to run: {explain_run_error(exc, session, feed)}")
        names, exp = _flatten(expected)
        act_names, act = _flatten(dict(zip(expected, actual)))
        assert names == act_names, f"{case.id}: outputs {act_names}, expected {names}"
        comparison = wb.compare_arrays(exp, act, tolerance=case.tolerance, names=names)
        if not comparison:
            return comparison
    return comparison


def _convert_and_check(case: BackendCase, model: onnx.ModelProto, target: int, out: Path) -> tuple[bool, str]:
    """The fix an old-opset refusal names: convert, open the converted file, match the reference outputs."""
    result = wb.convert_opset(case.model, target, out)
    if not result:
        return False, f"convert_opset: {result!r}"
    session = wb.open_session(out)
    comparison = _run_and_compare(session, case, model)
    return bool(comparison), "" if comparison else f"converted model: {comparison!r}"


@functools.lru_cache(maxsize=None)
def check_case(case: BackendCase, work_dir: Path) -> Outcome:
    """Summarize, open, run and compare one case (cached: the summary test reuses the outcomes)."""
    start = time.perf_counter()
    summary = wb.summarize(case.model)
    assert isinstance(summary, wb.ModelSummary)
    model = onnx.load(str(case.model))
    try:
        session = wb.open_session(case.model)
    except wb.WorkbenchError as err:
        failure = getattr(err, "failure", None)
        outcome = Outcome(case, opened=False, reason=getattr(failure, "reason", "unexplained"), message=str(err))
        if outcome.reason == "old_opset":
            out = work_dir / f"{case.group}-{case.name}.onnx"
            outcome.converted, note = _convert_and_check(case, model, failure.target_opset, out)
            outcome.notes += [note] if note else []
        outcome.seconds = time.perf_counter() - start
        return outcome
    comparison = _run_and_compare(session, case, model)
    outcome = Outcome(case, opened=True, matched=bool(comparison), seconds=time.perf_counter() - start)
    outcome.notes += [] if comparison else [repr(comparison)]
    return outcome


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("backend")


def test_backend_data_is_shipped() -> None:
    assert len(CASES) >= 100, f"only {len(CASES)} backend models found under {DATA}"
    light = {c.model.name for c in CASES if c.group == "light"}
    for data in (DATA / "real").glob("*/data.json"):
        assert Path(json.loads(data.read_text())["url"]).name in light, f"{data} names no shipped light model"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_backend_model(case: BackendCase, work_dir: Path) -> None:
    outcome = check_case(case, work_dir)
    if outcome.opened:
        assert outcome.matched, f"{case.id} opened but does not match its reference outputs: {outcome.notes}"
        return
    assert outcome.reason in ALLOWED_REFUSALS, f"{case.id} refused for an unexpected reason: {outcome.message}"
    if outcome.reason == "old_opset":
        assert "wb.convert_opset(" in outcome.message, outcome.message
        assert outcome.converted, f"{case.id}: the fix the refusal names does not work: {outcome.notes}"
    else:
        assert "Gradient" in outcome.message or "locale" in outcome.message, outcome.message


def _summary_lines(outcomes: list[Outcome], seconds: float) -> list[str]:
    matched = sum(o.opened and o.matched for o in outcomes)
    refused = Counter(o.reason for o in outcomes if not o.opened)
    converted = sum(bool(o.converted) for o in outcomes)
    lines = [f"backend models: {len(outcomes)} in {seconds:.1f} s; opened and matched: {matched}; "
             f"refused: {sum(refused.values())}; ({len(list((DATA / 'real').glob('*/data.json')))} 'real' entries "
             "are the light models)"]
    for reason, count in refused.most_common():
        examples = ", ".join(sorted(o.case.name for o in outcomes if o.reason == reason)[:3])
        lines.append(f"  refused, {reason} ({ALLOWED_REFUSALS.get(reason, '?')}): {count}  e.g. {examples}")
    lines.append(f"  old-opset refusals whose wb.convert_opset fix opens and matches: {converted}/"
                 f"{refused['old_opset']}")
    by_group = Counter((o.case.group, o.opened and o.matched) for o in outcomes)
    lines.append("  by folder: " + ", ".join(f"{g}: {by_group[(g, True)]} matched / {by_group[(g, False)]} refused"
                                             for g in (*DIR_GROUPS, "light")))
    return lines


@pytest.mark.slow  # alone it runs every case; after the parametrized tests it reuses their outcomes
def test_backend_summary(work_dir: Path, request: pytest.FixtureRequest) -> None:
    """Counts for the closing note (printed even under capture); all cases, reusing their outcomes."""
    start = time.perf_counter()
    outcomes = [check_case(c, work_dir) for c in CASES]
    lines = _summary_lines(outcomes, sum(o.seconds for o in outcomes) or time.perf_counter() - start)
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n" + "\n".join(lines))
    assert sum(o.opened and o.matched for o in outcomes) >= 80, lines
    assert all(o.opened and o.matched or o.reason in ALLOWED_REFUSALS for o in outcomes), lines


# --- Refusals and the fix on hand-made models: each reason, its message, and convert_opset's contract ---

def _tiny(op: str = "Relu", *, opset: int = 17, domain: str = "", elem: int = onnx.TensorProto.FLOAT,
          ir: int | None = None, imports: tuple[tuple[str, int], ...] = ()) -> onnx.ModelProto:
    from onnx import helper

    x, y = (helper.make_tensor_value_info(n, elem, [2, 3]) for n in ("x", "y"))
    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"], name="n0", domain=domain)], "tiny", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]
                              + [helper.make_opsetid(d, v) for d, v in imports])
    if ir is not None:
        model.ir_version = ir
    return model


REFUSALS = {  # name: (model, reason, words the message must hold)
    "ir_version": (lambda: _tiny(ir=99), "ir_version", ["IR version 99", "pip install -U onnxruntime"]),
    "opset_too_new": (lambda: _tiny(opset=onnx.defs.onnx_opset_version() + 5), "opset_too_new", ["wb.convert_opset("]),
    "unknown_op": (lambda: _tiny("NoSuchOp"), "unknown_op", ["NoSuchOp", "opset 17"]),
    "custom_op": (lambda: _tiny("Foo", domain="my.dom", imports=(("my.dom", 1),)), "unregistered_op",
                  ["my.dom::Foo", "register_custom_ops_library"]),
    "no_kernel": (lambda: _tiny(elem=onnx.TensorProto.BFLOAT16), "no_kernel", ["Relu", "bfloat16", "'n0'"]),
    "old_opset": (lambda: _tiny("Neg", opset=1), "old_opset", ["opset 1", "Neg version 1", "wb.convert_opset(onnx_model, 13"]),
    "bad_type": (lambda: _tiny(elem=onnx.TensorProto.STRING), "invalid_graph", ["'n0'", "tensor(string)"]),
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_refusal_names_reason_and_fix(name: str, tmp_path: Path) -> None:
    build, reason, words = REFUSALS[name]
    path = tmp_path / f"{name}.onnx"
    onnx.save(build(), path)
    try:
        wb.open_session(path)
    except wb.WorkbenchError as err:
        info = pytest.ExceptionInfo.from_exc_info((type(err), err, err.__traceback__))
    else:
        if reason == "no_kernel":
            pytest.skip("this ONNX Runtime has the kernel")
        pytest.fail(f"{name}: opened, expected a refusal ({reason})")
    assert getattr(info.value, "failure", None) is not None, info.value
    assert info.value.failure.reason == reason, info.value
    for word in words:
        assert word in str(info.value), f"{word!r} not in: {info.value}"
    assert str(path) in str(info.value)


@pytest.mark.parametrize("data", [b"", b"\x08\x07garbage\xff\xff", _tiny().SerializeToString()[:20]])
def test_unreadable_file_is_a_model_file_error(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(data)
    for call in (wb.open_session, wb.summarize):
        with pytest.raises(wb.ModelFileError):
            call(path)


def _run_failure(model: onnx.ModelProto, feed: dict[str, Any]) -> wb.WorkbenchError:
    from workbench.core.ort_errors import explain_run_error

    session = wb.open_session(model)
    with pytest.raises(Exception) as info:
        session.run(None, feed)
    return explain_run_error(info.value, session, feed)


def test_run_errors_name_the_input_or_node() -> None:
    model = _tiny()
    wrong_dtype = _run_failure(model, {"x": np.zeros((2, 3), np.float64)})
    assert isinstance(wrong_dtype, wb.FeedError) and "'x'" in str(wrong_dtype) and "double" in str(wrong_dtype)
    wrong_size = _run_failure(model, {"x": np.zeros((3, 3), np.float32)})
    assert isinstance(wrong_size, wb.FeedError) and "'x'" in str(wrong_size)
    missing = _run_failure(model, {})
    assert isinstance(missing, wb.FeedError) and "missing" in str(missing)
    from onnx import helper

    reshape = helper.make_model(helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="flatten")], "r",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [helper.make_tensor("shape", onnx.TensorProto.INT64, [2], [2, -1])]), opset_imports=[helper.make_opsetid("", 17)])
    node = _run_failure(reshape, {"x": np.zeros(3, np.float32)})
    assert isinstance(node, wb.WorkbenchError) and "'flatten' (Reshape)" in str(node), node


def test_convert_opset_contract(tmp_path: Path) -> None:
    old = _tiny("Neg", opset=1)
    old.graph.output[0].name = old.graph.node[0].output[0] = "<img src=x onerror=alert(1)>"
    result = wb.convert_opset(old, 13, tmp_path / "new.onnx")
    assert result and result.verified and result.evaluator == "onnxruntime", result
    assert (result.source_opset, result.target_opset) == (1, 13) and result.max_abs == 0.0, result
    assert wb.open_session(tmp_path / "new.onnx") is not None
    assert "<img" not in result._repr_html_() and "&lt;img" in result._repr_html_()
    unverified = wb.convert_opset(old, 13, verify=False)
    assert not unverified and unverified.verified is None and "verify=False" in unverified.note
    given = wb.convert_opset(old, 13, inputs={"x": np.full((2, 3), -1.0, np.float32)})
    assert given and not given.generated_inputs
    same = wb.convert_opset(_tiny(opset=13), 13)
    assert same and "already at opset 13" in same.note


@pytest.mark.parametrize("target", [0, 999, "13", True, 13.0])
def test_convert_opset_rejects_bad_targets(target: Any) -> None:
    with pytest.raises(wb.InvalidInputError, match="target_opset"):
        wb.convert_opset(_tiny(), target)


def test_convert_opset_explains_what_it_cannot_do() -> None:
    with pytest.raises(wb.InvalidInputError, match="version converter cannot convert .* from opset 17 to 5"):
        wb.convert_opset(_tiny(), 5)
    with pytest.raises(wb.InvalidInputError, match="InferenceSession"):
        wb.convert_opset(wb.open_session(_tiny()), 13)
