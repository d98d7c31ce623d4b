"""Dynamic INT8 quantization and FP16 conversion, each followed by an accuracy gate.

The gate (``workbench.core.gate``) runs the FP32 model and the converted one with ONNX Runtime on
the same inputs and compares every output at a tolerance (``compare_arrays``). A converted model
that is written but fails the gate gives a falsy ``QuantizeResult``; a converted model that ONNX
Runtime cannot load or run is captured in ``gate_error`` (also falsy). The FP32 reference runs
first: inputs the FP32 model rejects raise before anything is written.
"""

from __future__ import annotations

import platform
import tempfile
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import onnx

from workbench.core._files import HISTOGRAM_HEADERS, OpCounts, atomic_output, histogram_rows, model_bytes, \
    resolve_output, save_model
from workbench.core._format import badge, esc, fmt_bytes, fmt_num, html_table
from workbench.core._io import OnnxModel, PathLike, check_onnx_path, load_model
from workbench.core.compare import Comparison
from workbench.core.gate import GateReference, reference_run, run_gate
from workbench.core.graph import op_histogram
from workbench.core.tolerance import Tolerance, resolve_tolerance
from workbench.errors import InvalidInputError, WorkbenchError, brief

__all__ = ["QuantizeResult", "quantize_dynamic", "resolve_reduce_range", "to_fp16", "untie_gemm_weights"]

WEIGHT_TYPES: tuple[str, ...] = ("qint8", "quint8")


@dataclass
class QuantizeResult(OpCounts):
    """A converted model (dynamic INT8 or FP16), its sizes and its accuracy gate.

    ``bool()`` is True when the gate ran and passed. ``gate`` holds the ``Comparison`` of FP32 vs
    converted outputs; ``gate_error`` says why the gate could not run the converted model.
    """

    kind: str
    source: Path
    path: Path
    bytes_before: int
    bytes_after: int
    before: Counter[str]
    after: Counter[str]
    initializer_types: Counter[str]
    tolerance: str
    gate: Comparison | None
    gate_error: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        """Size after / size before (0.25 is four times smaller)."""
        return self.bytes_after / self.bytes_before if self.bytes_before else float("nan")

    @property
    def ok(self) -> bool:
        return self.gate is not None and bool(self.gate)

    def __bool__(self) -> bool:
        return self.ok

    def summary(self) -> dict[str, Any]:
        gate = self.gate
        return {"kind": self.kind, "ok": self.ok, "bytes_before": self.bytes_before, "bytes_after": self.bytes_after,
                "ratio": self.ratio, "tolerance": self.tolerance,
                "max_abs": gate.max_abs if gate else None, "max_rel": gate.max_rel if gate else None}

    def _verdict(self) -> str:
        if self.gate is None:
            return "GATE NOT RUN"
        return "PASS" if self.ok else "FAIL"

    def _lines(self) -> list[str]:
        head = (f"QuantizeResult {self.kind} {self._verdict()}: {fmt_bytes(self.bytes_before)} -> "
                f"{fmt_bytes(self.bytes_after)} ({self.ratio:.3f}x), saved to {self.path}")
        if self.gate is not None:
            gate = (f"gate at {self.tolerance} (rtol={self.gate.rtol:g}, atol={self.gate.atol:g}): max abs "
                    f"{fmt_num(self.gate.max_abs)}, max rel {fmt_num(self.gate.max_rel)}, "
                    f"{sum(o.mismatches for o in self.gate.outputs)} mismatches over {self.gate.samples} sample(s)")
        else:
            gate = f"gate not run: {self.gate_error}"
        settings = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        return [head, gate, f"settings: {settings}"] + [f"note: {n}" for n in self.notes]

    def __repr__(self) -> str:
        lines = self._lines()
        return "\n  ".join(lines)

    def _repr_html_(self) -> str:
        ok = None if self.gate is None else self.ok
        head, *rest = self._lines()
        body = "".join(f"<li>{esc(line)}</li>" for line in rest)
        ops = html_table(HISTOGRAM_HEADERS, histogram_rows(self.before, self.after), caption="op counts")
        gate = self.gate._repr_html_() if self.gate is not None else ""
        return f"<div>{badge(ok)} <b>{esc(head)}</b><ul>{body}</ul>{gate}{ops}</div>"


# ---------------------------------------------------------------- conversions


def _initializer_types(model: onnx.ModelProto) -> Counter[str]:
    return Counter(onnx.TensorProto.DataType.Name(t.data_type) for t in model.graph.initializer)


def _result(kind: str, source: Path, target: Path, before: Counter[str], reference: GateReference,
            tolerance: Tolerance, settings: dict[str, Any], notes: list[str]) -> QuantizeResult:
    saved = load_model(target, load_external_data=False)
    gate, error = run_gate(reference, target, tolerance=tolerance)
    return QuantizeResult(
        kind=kind, source=source, path=target, bytes_before=model_bytes(source),
        bytes_after=model_bytes(target, saved), before=before, after=op_histogram(saved),
        initializer_types=_initializer_types(saved), tolerance=resolve_tolerance(tolerance)[0],
        gate=gate, gate_error=error, settings=settings, notes=notes,
    )


def _cpu_has_vnni() -> bool | None:
    """True/False from /proc/cpuinfo's flags; None where they cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), None)
    if flags is None:
        return None
    return any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def resolve_reduce_range(reduce_range: bool | None, weight_type: str) -> tuple[bool, str | None]:
    """``reduce_range`` with None resolved: on for int8 weights on x86 CPUs without VNNI."""
    if reduce_range is not None:
        return bool(reduce_range), None
    x86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")
    vnni = _cpu_has_vnni()
    if weight_type != "qint8" or not x86 or vnni:
        return False, None
    cpu = "this x86 CPU lacks VNNI" if vnni is False else "this x86 CPU's VNNI support could not be read"
    return True, (f"reduce_range=True (7-bit weights) because {cpu}: ONNX Runtime's uint8 x int8 kernels without "
                  "VNNI (VPMADDUBSW) can saturate with full-range int8 weights (on the smoke BERT the max error "
                  "was ~0.2-0.3 instead of ~0.03). Pass reduce_range=False to keep 8 bits, or weight_type='quint8'.")


def _where(exc: BaseException) -> str:
    """``Type: message`` plus the innermost frame, for errors such as a bare ``AssertionError``."""
    frames = traceback.extract_tb(exc.__traceback__)
    at = f" in {frames[-1].name} ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}{at}: {brief(str(exc), 200) or 'no message'}"


def _preprocess(source: Path, folder: Path, notes: list[str]) -> tuple[Path, str]:
    """``quant_pre_process`` (shape inference + basic optimization), retried without symbolic shapes."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    attempts: list[tuple[str, dict[str, Any]]] = [
        ("full", {}),
        ("without symbolic shape inference", {"skip_symbolic_shape": True}),
    ]
    for label, kwargs in attempts:
        out = folder / f"pre-{len(notes)}-{label.split()[0]}.onnx"
        try:
            quant_pre_process(str(source), str(out), **kwargs)
            return out, label
        except Exception as exc:
            notes.append(f"quant_pre_process ({label}) failed: {_where(exc)}")
    notes.append("quantized without pre-processing: MatMuls whose weight is computed in the graph (behind "
                 "Transpose/Slice/Identity) rather than stored as an initializer stay FP32")
    return source, "failed"


def untie_gemm_weights(model: onnx.ModelProto) -> int:
    """Give each ``Gemm(transB=1)`` its own copy of a weight that other nodes use too; return the copies made.

    ``quantize_dynamic`` rewrites such a Gemm as MatMul by transposing its weight initializer in
    place, assuming no other node uses it. A shared weight ends up transposed once per user and the
    quantized model computes wrong results, or fails with a shape mismatch (onnxruntime issue
    #25890). Sharing is common: the TorchScript exporter merges equal initializers through
    ``Identity`` nodes (e.g. the identical layers of an untrained ``nn.TransformerEncoder``), and
    ``quant_pre_process`` folds those into one shared initializer.
    """
    inits = {t.name: t for t in model.graph.initializer}
    uses = Counter(name for node in model.graph.node for name in node.input)
    copies = 0
    for node in model.graph.node:
        if node.op_type != "Gemm" or len(node.input) < 2 or node.input[1] not in inits or uses[node.input[1]] < 2:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("transB", 0) != 1 or attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 \
                or attrs.get("beta", 1.0) != 1.0:
            continue
        shared = node.input[1]
        copy = onnx.TensorProto()
        copy.CopyFrom(inits[shared])
        copy.name = f"{shared}.wb_untied_{copies}"
        model.graph.initializer.append(copy)
        node.input[1] = copy.name
        uses[shared] -= 1
        copies += 1
    return copies


def _untie(src: Path, folder: Path, notes: list[str]) -> Path:
    """``src``, or a copy in ``folder`` with shared Gemm weights untied (see ``untie_gemm_weights``)."""
    model = load_model(src)
    copies = untie_gemm_weights(model)
    if not copies:
        return src
    out = folder / "untied.onnx"
    onnx.save(model, str(out))
    notes.append(f"gave {copies} Gemm node(s) a private copy of a weight shared with other nodes: onnxruntime's "
                 "quantizer transposes a shared Gemm weight once per user, which gives wrong results "
                 "(related: onnxruntime issue #25890); the INT8 file holds the copies")
    return out


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value.lower() not in choices:
        raise InvalidInputError(f"Unknown {name} {value!r}. Use one of {list(choices)}.")
    return value.lower()


def quantize_dynamic(
    onnx_model: OnnxModel,
    out: PathLike | None = None,
    *,
    inputs: Any = None,
    tolerance: Tolerance = "int8",
    weight_type: str = "qint8",
    per_channel: bool = False,
    reduce_range: bool | None = None,
    op_types: Sequence[str] | None = None,
    nodes_to_exclude: Sequence[str] | None = None,
    preprocess: bool = True,
    extra_options: Mapping[str, Any] | None = None,
    dim_sizes: Mapping[str, int] | None = None,
    seed: int = 0,
) -> QuantizeResult:
    """Dynamic INT8 quantization (``onnxruntime.quantization.quantize_dynamic``) with an accuracy gate.

    Weights of MatMul/Gemm (and Gather tables) become int8 (``weight_type`` 'qint8') or uint8
    ('quint8'); activations are quantized at run time (DynamicQuantizeLinear + MatMulInteger).
    ``preprocess`` runs ``quant_pre_process`` first (retried without symbolic shape inference, and
    skipped with a note if it fails). ``reduce_range=None`` picks 7-bit weights on x86 CPUs without
    VNNI (see ``resolve_reduce_range``). The gate compares FP32 and INT8 outputs at ``tolerance``
    on ``inputs`` (a tuple of arrays/tensors or a list of them; None generates them from the graph).
    """
    weight_type = _check_choice("weight_type", weight_type, WEIGHT_TYPES)
    resolve_tolerance(tolerance)
    source = check_onnx_path(onnx_model)
    model = load_model(source, load_external_data=False)
    target = resolve_output(source, out, ".int8.onnx")
    reference = reference_run(source, inputs, dim_sizes=dim_sizes, seed=seed)
    reduce, why = resolve_reduce_range(reduce_range, weight_type)
    notes = [why] if why else []
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    qtype = {"qint8": QuantType.QInt8, "quint8": QuantType.QUInt8}[weight_type]
    with tempfile.TemporaryDirectory(prefix="wb-quant-") as folder:
        src, pre = _preprocess(source, Path(folder), notes) if preprocess else (source, "off")
        src = _untie(src, Path(folder), notes)
        with atomic_output(target) as tmp:
            try:
                ort_quantize_dynamic(
                    str(src), str(tmp), op_types_to_quantize=list(op_types) if op_types else None,
                    per_channel=per_channel, reduce_range=reduce, weight_type=qtype,
                    nodes_to_exclude=list(nodes_to_exclude) if nodes_to_exclude else None,
                    extra_options=dict(extra_options) if extra_options else None,
                )
            except Exception as exc:
                raise WorkbenchError(
                    f"onnxruntime.quantization.quantize_dynamic failed on '{source}': {type(exc).__name__}: "
                    f"{brief(str(exc), 500)}. Try {'preprocess=False, ' if preprocess else 'preprocess=True, '}"
                    "op_types=['MatMul'], or exclude the failing node with nodes_to_exclude=[...]."
                ) from exc
    settings = {"weight_type": weight_type, "per_channel": per_channel, "reduce_range": reduce, "preprocess": pre}
    if op_types:
        settings["op_types"] = list(op_types)
    return _result("int8-dynamic", source, target, op_histogram(model), reference, tolerance, settings, notes)


def to_fp16(
    onnx_model: OnnxModel,
    out: PathLike | None = None,
    *,
    inputs: Any = None,
    tolerance: Tolerance = "fp16",
    keep_io_types: bool = True,
    op_block_list: Sequence[str] | None = None,
    dim_sizes: Mapping[str, int] | None = None,
    seed: int = 0,
) -> QuantizeResult:
    """Convert float32 weights and activations to float16, with an accuracy gate.

    Uses ``onnxruntime.transformers.float16.convert_float_to_float16`` (shipped with onnxruntime;
    ``onnxconverter_common`` is not needed). ``keep_io_types`` keeps float32 graph inputs and
    outputs (Cast nodes inside); ``op_block_list`` ops stay float32 (None: the converter's default
    list of ops without float16 kernels). FP16 halves the weights; ONNX Runtime's CPU provider lacks
    float16 kernels for many ops and runs them through Cast nodes, so measure before expecting a CPU
    speed-up.
    """
    resolve_tolerance(tolerance)
    if not isinstance(keep_io_types, bool):
        raise InvalidInputError(f"keep_io_types must be True or False, received {keep_io_types!r}.")
    if op_block_list is not None and (isinstance(op_block_list, str) or not all(isinstance(o, str) for o in op_block_list)):
        raise InvalidInputError(f"op_block_list must be a list of op types such as ['Softmax'], received {op_block_list!r}.")
    source = check_onnx_path(onnx_model)
    model = load_model(source)
    before = op_histogram(model)
    target = resolve_output(source, out, ".fp16.onnx")
    reference = reference_run(source, inputs, dim_sizes=dim_sizes, seed=seed)
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        converted = convert_float_to_float16(
            model, keep_io_types=keep_io_types,
            op_block_list=list(op_block_list) if op_block_list is not None else None,
        )
    except Exception as exc:
        raise WorkbenchError(
            f"convert_float_to_float16 failed on '{source}': {type(exc).__name__}: {exc}. "
            "Try op_block_list=[...] with the failing op type, or keep_io_types=True."
        ) from exc
    save_model(converted, target)
    settings = {"keep_io_types": keep_io_types}
    if op_block_list is not None:
        settings["op_block_list"] = list(op_block_list)
    return _result("fp16", source, target, before, reference, tolerance, settings, [])
