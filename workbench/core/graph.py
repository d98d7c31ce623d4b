"""``summarize``: what an ONNX file holds, without running it; ``op_histogram``: the one op count.

``op_histogram`` keys: ``"Op"`` for the default ONNX domain (``""`` / ``"ai.onnx"``) and
``"domain::Op"`` for every other domain (``"com.microsoft::FusedMatMul"``); nodes inside
subgraphs (If/Loop/Scan bodies) are counted, functions are not expanded.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import onnx
from onnx import external_data_helper, helper, shape_inference

from workbench.core._format import badge, esc, fmt_bytes, html_table, text_table
from workbench.core._io import OnnxModel, check_onnx_path, is_path, load_model
from workbench.core._parameters import count_parameters
from workbench.errors import strip_ansi

__all__ = ["ModelSummary", "TensorInfo", "graph_inputs", "graph_nodes", "op_histogram", "op_key", "subgraphs",
           "summarize"]

Dim = int | str | None
_DEFAULT_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class TensorInfo:
    """Name, element type and dims of a graph value (a str dim is symbolic, None unknown)."""

    name: str
    dtype: str
    dims: tuple[Dim, ...] | None

    @property
    def shape_text(self) -> str:
        if self.dims is None:
            return "?"
        return "[" + ", ".join("?" if d is None else str(d) for d in self.dims) + "]"

    @property
    def symbolic(self) -> list[str]:
        return [d for d in (self.dims or ()) if isinstance(d, str)]


def dtype_name(elem_type: int) -> str:
    """A short name of an ONNX element type: numpy's ('float32', 'bfloat16' from ml_dtypes), 'string',
    'unknown' when unset, 'unknown(N)' for a number ONNX does not define (a damaged file)."""
    if not elem_type:
        return "unknown"
    if elem_type == onnx.TensorProto.STRING:
        return "string"
    try:
        return helper.tensor_dtype_to_np_dtype(elem_type).name
    except (KeyError, ValueError, TypeError):
        return f"unknown({elem_type})"


def _tensor_info(value: onnx.ValueInfoProto) -> TensorInfo:
    t = value.type.tensor_type
    dtype = dtype_name(t.elem_type)
    if not t.HasField("shape"):
        return TensorInfo(value.name, dtype, None)
    dims: list[Dim] = []
    for d in t.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return TensorInfo(value.name, dtype, tuple(dims))


@dataclass
class ModelSummary:
    """What an ONNX model holds: checker verdict, opsets, IO, ops, parameters and shapes.

    Parameters are counted wherever the graph holds them (initializers, ``Constant`` nodes,
    subgraphs, functions; ``parameter_locations`` says where), each distinct tensor once: floating
    point and 8-bit-or-narrower integer tensors with more than one element (see
    ``workbench.core._parameters``). So the same model counts the same with either exporter.
    ``repeated_parameters`` is how many values the file stores again in identical copies.
    """

    path: Path | None
    checker_ok: bool | None
    checker_message: str
    ir_version: int
    opsets: dict[str, int]
    producer: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    node_count: int
    ops: Counter[str]
    parameter_count: int
    parameter_bytes: dict[str, int]
    parameter_count_by_dtype: dict[str, int]
    external_data: dict[str, int]
    intermediate: dict[str, TensorInfo] = field(repr=False)
    functions: int = 0
    file_bytes: int = 0
    parameter_locations: dict[str, int] = field(default_factory=dict)
    repeated_parameters: int = 0
    graph_name: str = ""
    doc_string: str = field(default="", repr=False)
    metadata: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.checker_ok)

    @property
    def total_parameter_bytes(self) -> int:
        return sum(self.parameter_bytes.values())

    @property
    def parameters_in_initializers(self) -> int:
        return self.parameter_locations.get("initializers", 0)

    @property
    def parameters_in_constants(self) -> int:
        return self.parameter_locations.get("constants", 0)

    @property
    def parameters_in_subgraphs(self) -> int:
        return self.parameter_locations.get("subgraphs", 0) + self.parameter_locations.get("functions", 0)

    def _where(self) -> str:
        where = ", ".join(f"{n:,} in {k}" for k, n in self.parameter_locations.items()) or "none"
        if self.repeated_parameters:
            where += f"; {self.repeated_parameters:,} more stored in identical copies, counted once"
        return where

    @property
    def custom_domains(self) -> list[str]:
        return [d for d in self.opsets if d not in ("", "ai.onnx", "ai.onnx.ml")]

    @property
    def dynamic_inputs(self) -> dict[str, list[str]]:
        return {i.name: i.symbolic for i in self.inputs if i.symbolic}

    def ops_to_pandas(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.ops.most_common(), columns=["op_type", "count"])

    def io_to_pandas(self) -> Any:
        import pandas as pd

        rows = [("input", i.name, i.dtype, i.shape_text) for i in self.inputs]
        rows += [("output", o.name, o.dtype, o.shape_text) for o in self.outputs]
        return pd.DataFrame(rows, columns=["kind", "name", "dtype", "shape"])

    def to_pandas(self) -> Any:
        """The op histogram as a DataFrame (the tabular part of the summary)."""
        return self.ops_to_pandas()

    def __repr__(self) -> str:
        where = str(self.path) if self.path else "<ModelProto>"
        check = {True: "ok", False: "FAILED", None: "not run"}[self.checker_ok]
        opsets = ", ".join(f"{d or 'ai.onnx'}={v}" for d, v in sorted(self.opsets.items()))
        lines = [
            f"ModelSummary of {where}",
            f"  checker: {check}" + (f" ({self.checker_message})" if self.checker_message else ""),
            f"  ir_version {self.ir_version}, opsets {opsets}, producer {self.producer or '?'}, graph {self.graph_name!r}",
            "  inputs:  " + "; ".join(f"{i.name} {i.dtype}{i.shape_text}" for i in self.inputs),
            "  outputs: " + "; ".join(f"{o.name} {o.dtype}{o.shape_text}" for o in self.outputs),
            f"  {self.node_count} nodes; top ops: "
            + ", ".join(f"{k}x{v}" for k, v in self.ops.most_common(6)),
            f"  {self.parameter_count:,} parameters, {fmt_bytes(self.total_parameter_bytes)} ("
            + ", ".join(f"{k}: {fmt_bytes(v)}" for k, v in self.parameter_bytes.items()) + f"): {self._where()}",
        ]
        if self.metadata:
            lines.append("  metadata: " + ", ".join(f"{k}={_short(v)!r}" for k, v in self.metadata.items()))
        if self.external_data:
            lines.append("  external data: " + ", ".join(f"{k} ({fmt_bytes(v)})" for k, v in self.external_data.items()))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        io_rows = [["input", i.name, i.dtype, i.shape_text] for i in self.inputs]
        io_rows += [["output", o.name, o.dtype, o.shape_text] for o in self.outputs]
        params = [[k, self.parameter_count_by_dtype.get(k, 0), fmt_bytes(v)] for k, v in self.parameter_bytes.items()]
        meta = [["opsets", ", ".join(f"{d or 'ai.onnx'}={v}" for d, v in sorted(self.opsets.items()))],
                ["ir_version", self.ir_version], ["producer", self.producer], ["graph", self.graph_name],
                ["nodes", self.node_count], ["parameters", f"{self.parameter_count:,} ({self._where()})"]]
        meta += [[f"metadata {k}", _short(v)] for k, v in self.metadata.items()]
        checker = f"<tr><td>checker</td><td>{badge(self.checker_ok, 'VALID' if self.checker_ok else None)}</td></tr>"
        meta_html = checker + "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in meta)
        return (
            f"<div><b>ONNX model</b> {esc(self.path or '')}<table class='wb-table'>{meta_html}</table>"
            + (f"<pre>{esc(self.checker_message)}</pre>" if self.checker_message else "")
            + html_table(["", "name", "dtype", "shape"], io_rows, caption="Inputs and outputs")
            + html_table(["op_type", "count"], self.ops.most_common(), caption="Operators")
            + html_table(["dtype", "count", "bytes"], params, caption="Parameters")
            + "</div>"
        )

    def text_report(self) -> str:
        return repr(self) + "\n\n" + text_table(["op_type", "count"], self.ops.most_common())


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def graph_inputs(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    """The graph's real inputs: its inputs that are not initializers (old exporters list both)."""
    initializers = {t.name for t in graph.initializer}
    return [v for v in graph.input if v.name not in initializers]


def op_key(node: onnx.NodeProto) -> str:
    """``"Op"`` for the default ONNX domain, ``"domain::Op"`` for any other."""
    return node.op_type if node.domain in _DEFAULT_DOMAINS else f"{node.domain}::{node.op_type}"


def subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    """The graphs held by ``node``'s attributes (If branches, Loop/Scan bodies)."""
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            yield from attr.graphs


def graph_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node of ``graph``, including the nodes inside If/Loop/Scan subgraphs."""
    for node in graph.node:
        yield node
        for sub in subgraphs(node):
            yield from graph_nodes(sub)


def op_histogram(onnx_model: OnnxModel | onnx.GraphProto) -> Counter[str]:
    """Op -> node count over the graph and its subgraphs (keys: ``"Op"`` or ``"domain::Op"``).

    ``onnx_model`` is a path, a ``ModelProto`` or a ``GraphProto``; external weights are not loaded."""
    graph = onnx_model if isinstance(onnx_model, onnx.GraphProto) else \
        load_model(onnx_model, load_external_data=False).graph
    return Counter(op_key(n) for n in graph_nodes(graph))


def _external(model: onnx.ModelProto, base: Path | None) -> dict[str, int]:
    files: dict[str, int] = {}
    for tensor in external_data_helper._get_all_tensors(model):
        if external_data_helper.uses_external_data(tensor):
            info = external_data_helper.ExternalDataInfo(tensor)
            size = info.length or 0
            if not size and base is not None and (base / info.location).exists():
                size = (base / info.location).stat().st_size
            files[info.location] = files.get(info.location, 0) + int(size)
    return files


def _check(model: onnx.ModelProto, path: Path | None) -> tuple[bool, str]:
    try:
        if path is not None:
            onnx.checker.check_model(str(path), full_check=False)
        else:
            onnx.checker.check_model(model, full_check=False)
        return True, ""
    except Exception as exc:  # ValidationError and friends
        text = strip_ansi(str(exc)).strip()
        return False, f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def summarize(onnx_model: OnnxModel, *, check: bool = True, infer_shapes: bool = True) -> ModelSummary:
    """Summarize an ONNX model from a path or a ``ModelProto``.

    Weights held in external data are not loaded: parameter counts and bytes come from the
    initializers' dims, so a model over 2 GB is summarized quickly.
    """
    path = check_onnx_path(onnx_model) if is_path(onnx_model) else None
    proto = load_model(path if path is not None else onnx_model, load_external_data=False)
    checker_ok, message = _check(proto, path) if check else (None, "")
    inferred: dict[str, TensorInfo] = {}
    if infer_shapes:
        try:
            inferred_model = shape_inference.infer_shapes(proto, check_type=False, strict_mode=False)
            inferred = {v.name: _tensor_info(v) for v in inferred_model.graph.value_info}
        except Exception as exc:
            message = (message + "; " if message else "") + f"shape inference failed: {strip_ansi(str(exc))}"
    ops = op_histogram(proto.graph)
    params = count_parameters(proto)
    return ModelSummary(
        path=path,
        checker_ok=checker_ok,
        checker_message=message,
        ir_version=int(proto.ir_version),
        opsets={o.domain: int(o.version) for o in proto.opset_import},
        producer=f"{proto.producer_name} {proto.producer_version}".strip(),
        inputs=[_tensor_info(i) for i in graph_inputs(proto.graph)],
        outputs=[_tensor_info(o) for o in proto.graph.output],
        node_count=sum(ops.values()),
        ops=ops,
        parameter_count=params.total,
        parameter_bytes=params.bytes_by_dtype,
        parameter_count_by_dtype=params.by_dtype,
        external_data=_external(proto, path.parent if path else None),
        intermediate=inferred,
        functions=len(proto.functions),
        file_bytes=path.stat().st_size if path else proto.ByteSize(),
        parameter_locations=params.by_location,
        repeated_parameters=params.repeated,
        graph_name=proto.graph.name,
        doc_string=proto.doc_string,
        metadata={p.key: p.value for p in proto.metadata_props},
    )
