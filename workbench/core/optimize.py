"""ONNX Runtime graph optimization levels, the transformer optimizer, and the saved optimized graph.

``optimize`` lets ONNX Runtime optimize a model at one level and save the graph it will run;
``transformer_optimize`` runs ``onnxruntime.transformers.optimizer`` (attention, LayerNorm and
GELU fusions). Both report the op-type histogram before and after, so what was fused away and
what was added is visible. Writes are atomic: a temp file in the output directory, then
``os.replace``; a failure leaves no file at ``out``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import onnx

from workbench.core._format import fmt_bytes, html_table, text_table
from workbench.core._io import PathLike, check_onnx_path, load_model
from workbench.core.session import OPT_LEVELS, ProviderFallbackWarning, SessionConfig, open_session
from workbench.errors import InvalidInputError, WorkbenchError, describe

__all__ = [
    "OpCounts",
    "OptimizeResult",
    "TransformerOptimizeResult",
    "model_bytes",
    "op_histogram",
    "optimize",
    "optimize_levels",
    "transformer_model_types",
    "transformer_optimize",
]

# Domains whose ops are shown by op type alone; ops of any other domain get a domain prefix.
_PLAIN_DOMAINS = ("", "ai.onnx", "com.microsoft")
_NCHWC_DOMAIN = "com.microsoft.nchwc"
_TRANSFORMER_OPT_LEVELS = (0, 1, 2, 99)
_PROTOBUF_LIMIT = 2**31 - 2**20  # a serialized ModelProto must stay under 2 GiB

HARDWARE_NOTE = (
    "level 'all' adds layout optimizations (NCHWc) chosen for this CPU's vector width; the saved "
    "graph may hold com.microsoft.nchwc ops and is meant to run only on the same kind of hardware. "
    "Save at 'extended' for a portable optimized graph."
)


# ---------------------------------------------------------------- shared helpers (also used by quantize)


def _graph_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node of ``graph``, including nodes inside If/Loop/Scan subgraphs."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _graph_nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from _graph_nodes(sub)


def _op_key(node: onnx.NodeProto) -> str:
    return node.op_type if node.domain in _PLAIN_DOMAINS else f"{node.domain}.{node.op_type}"


def op_histogram(model: onnx.ModelProto) -> Counter[str]:
    """Op type -> node count over the graph and its subgraphs (ops of unusual domains are prefixed)."""
    return Counter(_op_key(n) for n in _graph_nodes(model.graph))


def histogram_diff(before: Counter[str], after: Counter[str]) -> dict[str, int]:
    """Op type -> (after - before) for every op whose count changed, largest change first."""
    ops = set(before) | set(after)
    delta = {op: after.get(op, 0) - before.get(op, 0) for op in ops}
    return dict(sorted(((k, v) for k, v in delta.items() if v), key=lambda kv: (-abs(kv[1]), kv[0])))


def histogram_rows(before: Counter[str], after: Counter[str]) -> list[list[Any]]:
    """Rows ``[op, before, after, delta]``: changed ops first (largest change first), then the rest."""
    ops = sorted(set(before) | set(after),
                 key=lambda op: (after.get(op, 0) == before.get(op, 0),
                                 -abs(after.get(op, 0) - before.get(op, 0)), op))
    return [[op, before.get(op, 0), after.get(op, 0), after.get(op, 0) - before.get(op, 0)] for op in ops]


HISTOGRAM_HEADERS = ["op", "before", "after", "delta"]


def _external_files(model: onnx.ModelProto, base: Path) -> set[Path]:
    files: set[Path] = set()
    graphs = [model.graph]
    while graphs:
        graph = graphs.pop()
        for tensor in graph.initializer:
            if tensor.data_location == onnx.TensorProto.EXTERNAL:
                location = next((e.value for e in tensor.external_data if e.key == "location"), None)
                if location:
                    files.add(base / location)
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    graphs.append(attr.g)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    graphs.extend(attr.graphs)
    return files


def model_bytes(path: PathLike, model: onnx.ModelProto | None = None) -> int:
    """Bytes on disk of an ONNX file plus the external-data files it references."""
    p = Path(path)
    if model is None:
        model = onnx.load(str(p), load_external_data=False)
    return p.stat().st_size + sum(f.stat().st_size for f in _external_files(model, p.parent) if f.is_file())


def resolve_output(source: Path, out: PathLike | None, suffix: str) -> Path:
    """The output path: ``out``, or ``<source stem><suffix>`` beside the source.

    Refuses ``out`` equal to the source (or one of its external-data files) and ``out`` that is a
    directory; creates a missing output directory.
    """
    if out is None:
        target = source.with_name(source.stem + suffix)
    elif isinstance(out, (str, os.PathLike)):
        target = Path(out)
    else:
        raise InvalidInputError(
            f"out must be a path (str or Path) for the new .onnx file, received {describe(out)}."
        )
    if str(target) == "" or target.name in ("", ".", ".."):
        raise InvalidInputError(f"out={str(out)!r} names no file. Pass a file path such as 'model.opt.onnx'.")
    if target.is_dir():
        raise InvalidInputError(
            f"out='{target}' is a directory. Pass a file path inside it, e.g. '{target / (source.stem + suffix)}'."
        )
    if target.resolve() == source.resolve() or (target.exists() and os.path.samefile(target, source)):
        raise InvalidInputError(
            f"out='{target}' is the input model itself; refusing to overwrite the original. "
            f"Pass another path, e.g. '{source.with_name(source.stem + suffix)}'."
        )
    weights: set[Path] = set()
    with contextlib.suppress(Exception):  # an unreadable source is reported by load_model
        weights = {f.resolve() for f in _external_files(onnx.load(str(source), load_external_data=False),
                                                         source.parent)}
    if target.resolve() in weights:
        raise InvalidInputError(
            f"out='{target}' is the external-data file of the input model; writing there would destroy "
            "its weights. Pass another path."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


@contextlib.contextmanager
def atomic_output(out: Path) -> Iterator[Path]:
    """Yield a temp path in ``out``'s directory; on success move it onto ``out``, on failure delete it."""
    tmp = out.with_name(f".{out.stem}.{uuid.uuid4().hex[:8]}.tmp.onnx")
    try:
        yield tmp
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise WorkbenchError(
                f"The writer reported success but left no model at '{tmp}'; '{out}' was not written. "
                "This is a bug in the workbench or ONNX Runtime; please report it with the model."
            )
        os.replace(tmp, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def save_model(model: onnx.ModelProto, out: Path) -> None:
    """Save ``model`` to ``out`` atomically, with weights inline (one self-contained file)."""
    with atomic_output(out) as tmp:
        try:
            onnx.save(model, str(tmp))
        except ValueError as exc:
            raise WorkbenchError(
                f"Could not save the model to '{out}': {exc}. Models over 2 GiB need external data, "
                "which these conversions do not write; convert a smaller model or save it with "
                "onnx.save(..., save_as_external_data=True) yourself."
            ) from exc


class OpCounts:
    """Mixin for results holding ``before``/``after`` op histograms (``Counter`` of op type -> nodes)."""

    before: Counter[str]
    after: Counter[str]

    @property
    def nodes_before(self) -> int:
        return sum(self.before.values())

    @property
    def nodes_after(self) -> int:
        return sum(self.after.values())

    @property
    def diff(self) -> dict[str, int]:
        """Op -> change in count (negative: fused or folded away; positive: added), largest first."""
        return histogram_diff(self.before, self.after)

    @property
    def added(self) -> dict[str, int]:
        return {op: d for op, d in self.diff.items() if d > 0}

    @property
    def removed(self) -> dict[str, int]:
        return {op: -d for op, d in self.diff.items() if d < 0}

    def to_pandas(self) -> Any:
        """One row per op type: op, before, after, delta (changed ops first)."""
        import pandas as pd

        return pd.DataFrame(histogram_rows(self.before, self.after), columns=HISTOGRAM_HEADERS)

    def text_table(self) -> str:
        return text_table(HISTOGRAM_HEADERS, histogram_rows(self.before, self.after))

    def _change_lines(self, limit: int = 8) -> list[str]:
        lines = []
        for label, ops, sign in (("added", self.added, "+"), ("removed", self.removed, "-")):
            if ops:
                items = [f"{op} {sign}{n}" for op, n in ops.items()]
                lines.append(f"  {label}: " + ", ".join(items[:limit]) + (" ..." if len(items) > limit else ""))
        return lines or ["  no op counts changed"]


# ---------------------------------------------------------------- ORT optimization levels


@dataclass
class OptimizeResult(OpCounts):
    """What ONNX Runtime did to a graph at one optimization level.

    ``before`` is the op histogram of the input file, ``after`` that of the graph ONNX Runtime
    saved to ``path``. ONNX Runtime turns ``Constant`` nodes into initializers on load, so they
    disappear at every level, 'disable' included. At level 'all' the saved graph may hold
    hardware-specific NCHWc layout ops (``hardware_specific`` is True, ``nchwc_ops`` counts them).
    """

    source: Path
    path: Path
    level: str
    before: Counter[str]
    after: Counter[str]
    bytes_before: int
    bytes_after: int
    providers: list[str] = field(default_factory=list)

    @property
    def hardware_specific(self) -> bool:
        return self.level == "all"

    @property
    def nchwc_ops(self) -> int:
        return sum(n for op, n in self.after.items() if op.startswith(_NCHWC_DOMAIN + "."))

    def _title(self) -> str:
        return (f"OptimizeResult level={self.level!r}: {self.nodes_before} -> {self.nodes_after} nodes "
                f"({self.nodes_after - self.nodes_before:+d}), {fmt_bytes(self.bytes_before)} -> "
                f"{fmt_bytes(self.bytes_after)}, saved to {self.path}")

    def _notes(self) -> list[str]:
        if not self.hardware_specific:
            return []
        found = f" ({self.nchwc_ops} NCHWc ops in this graph)" if self.nchwc_ops else ""
        return [f"note: {HARDWARE_NOTE}{found}"]

    def __repr__(self) -> str:
        lines = [self._title(), *self._change_lines()]
        return "\n".join(lines + [f"  {n}" for n in self._notes()])

    def _repr_html_(self) -> str:
        import html

        notes = "".join(f"<p><i>{html.escape(n)}</i></p>" for n in self._notes())
        table = html_table(HISTOGRAM_HEADERS, histogram_rows(self.before, self.after))
        return f"<div><b>{html.escape(self._title())}</b>{notes}{table}</div>"


def check_level(level: Any) -> str:
    """Raise ``InvalidInputError`` unless ``level`` is one of ``OPT_LEVELS``."""
    if not isinstance(level, str) or level not in OPT_LEVELS:
        raise InvalidInputError(
            f"Unknown optimization level {level!r}. Use one of {list(OPT_LEVELS)} "
            "('all' is ONNX Runtime's default; 'extended' is the highest portable level)."
        )
    return level


def optimize(
    path: PathLike,
    level: str = "all",
    out: PathLike | None = None,
    *,
    providers: Sequence[str] = ("CPUExecutionProvider",),
) -> OptimizeResult:
    """Let ONNX Runtime optimize ``path`` at ``level`` and save the graph it would run to ``out``.

    ``level`` is one of 'disable', 'basic', 'extended', 'all'. The graph is saved through
    ``SessionOptions.optimized_model_filepath`` (default ``out``: ``<stem>.opt-<level>.onnx``
    beside the input). Level 'all' may add NCHWc layout ops specific to this CPU: such a graph
    should only be run on the same kind of hardware (use 'extended' for a portable file).
    Optimizations depend on the providers too; the default is the CPU provider.
    """
    check_level(level)
    source = check_onnx_path(path)
    model = load_model(source, load_external_data=False)
    target = resolve_output(source, out, f".opt-{level}.onnx")
    bytes_before = model_bytes(source, model)
    # ONNX Runtime's saved graph would point at the input's external-data file by a relative path,
    # which breaks once saved elsewhere; feeding it the model with weights inline saves one file.
    feed: PathLike | onnx.ModelProto = source
    if _external_files(model, source.parent):
        if bytes_before >= _PROTOBUF_LIMIT:
            raise WorkbenchError(
                f"'{source}' is {fmt_bytes(bytes_before)} with external data; optimize() saves one self-contained "
                "file, which protobuf limits to 2 GiB. Set SessionOptions.optimized_model_filepath with "
                "'session.optimized_model_external_initializers_file_name' yourself for this model."
            )
        feed = load_model(source)
    with atomic_output(target) as tmp:
        config = SessionConfig(providers=tuple(providers), opt_level=level, optimized_model_path=str(tmp))
        session = open_session(feed, config)
        used = list(session.get_providers())
        del session
    saved = load_model(target, load_external_data=False)
    return OptimizeResult(
        source=source, path=target, level=level, before=op_histogram(model), after=op_histogram(saved),
        bytes_before=bytes_before, bytes_after=model_bytes(target, saved), providers=used,
    )


def optimize_levels(
    path: PathLike, out_dir: PathLike | None = None, levels: Sequence[str] = tuple(OPT_LEVELS),
) -> dict[str, OptimizeResult]:
    """``optimize`` at each level, saved as ``<stem>.opt-<level>.onnx`` in ``out_dir`` (default: beside the input)."""
    source = check_onnx_path(path)
    for level in levels:
        check_level(level)
    folder = Path(out_dir) if out_dir is not None else source.parent
    return {lv: optimize(source, lv, folder / f"{source.stem}.opt-{lv}.onnx") for lv in levels}


# ---------------------------------------------------------------- transformer optimizer


@dataclass
class TransformerOptimizeResult(OpCounts):
    """What ``onnxruntime.transformers.optimizer`` fused.

    ``fused`` is the optimizer's own ``get_fused_operator_statistics()`` (fused op -> count);
    ``before``/``after`` are op histograms of the input and the saved graph. ``fully_optimized``
    is the optimizer's verdict for BERT-family models (None where it has none).
    """

    source: Path
    path: Path
    model_type: str
    num_heads: int
    hidden_size: int
    opt_level: int | None
    use_gpu: bool
    fused: dict[str, int]
    before: Counter[str]
    after: Counter[str]
    bytes_before: int
    bytes_after: int
    fully_optimized: bool | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def fused_ops(self) -> dict[str, int]:
        """Only the fused ops that occur (count > 0)."""
        return {op: n for op, n in self.fused.items() if n}

    def _title(self) -> str:
        fused = ", ".join(f"{op} {n}" for op, n in self.fused_ops.items()) or "nothing"
        verdict = {True: "; fully optimized", False: "; not fully optimized", None: ""}[self.fully_optimized]
        return (f"TransformerOptimizeResult model_type={self.model_type!r}: {self.nodes_before} -> "
                f"{self.nodes_after} nodes, fused {fused}{verdict}; saved to {self.path}")

    def __repr__(self) -> str:
        lines = [self._title(), *self._change_lines()]
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])

    def _repr_html_(self) -> str:
        import html

        notes = "".join(f"<p><i>{html.escape(n)}</i></p>" for n in self.notes)
        fused = html_table(["fused op", "count"], [[k, v] for k, v in self.fused.items()])
        table = html_table(HISTOGRAM_HEADERS, histogram_rows(self.before, self.after))
        return f"<div><b>{html.escape(self._title())}</b>{notes}{fused}{table}</div>"


def transformer_model_types() -> list[str]:
    """The ``model_type`` values ``onnxruntime.transformers.optimizer`` knows."""
    from onnxruntime.transformers.optimizer import MODEL_TYPES

    return list(MODEL_TYPES)


def _check_transformer_args(model_type: Any, num_heads: Any, hidden_size: Any, opt_level: Any) -> None:
    known = transformer_model_types()
    if not isinstance(model_type, str) or model_type not in known:
        raise InvalidInputError(
            f"Unknown model_type {model_type!r} for the transformer optimizer. Use one of {known} "
            "('bert' fits BERT-style encoders exported from PyTorch)."
        )
    for name, value in (("num_heads", num_heads), ("hidden_size", hidden_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidInputError(f"{name} must be an int >= 0 (0 detects it from the graph), received {value!r}.")
    if opt_level is not None and opt_level not in _TRANSFORMER_OPT_LEVELS:
        raise InvalidInputError(
            f"opt_level must be None (the model type's default) or one of {list(_TRANSFORMER_OPT_LEVELS)}, "
            f"received {opt_level!r}. These are ONNX Runtime's levels run before the Python fusions."
        )


def _transformer_notes(model_type: str, fused: dict[str, int], use_gpu: bool, gpu_missing: bool) -> list[str]:
    notes = []
    if not any(fused.values()):
        notes.append("no fusion pattern matched this graph; the saved model is the input after ONNX Runtime's pass.")
    elif "bert" in model_type and not (fused.get("Attention") or fused.get("MultiHeadAttention")):
        notes.append("attention did not fuse: the optimizer did not recognize this graph's attention subgraph "
                     "(dynamo exports and nn.MultiheadAttention often do not match its patterns).")
    if use_gpu and gpu_missing:
        notes.append("use_gpu=True but this onnxruntime has no CUDA/ROCm/DirectML provider: ONNX Runtime's "
                     "pass was skipped, only the Python fusions ran.")
    return notes


def transformer_optimize(
    path: PathLike,
    model_type: str = "bert",
    num_heads: int = 0,
    hidden_size: int = 0,
    out: PathLike | None = None,
    opt_level: int | None = None,
    use_gpu: bool = False,
    *,
    only_onnxruntime: bool = False,
) -> TransformerOptimizeResult:
    """Fuse attention, LayerNorm, GELU and embeddings with ``onnxruntime.transformers.optimizer``.

    ``model_type`` must be one of ``transformer_model_types()``; ``num_heads``/``hidden_size`` of 0
    let the optimizer detect them. ``opt_level`` (None, 0, 1, 2, 99) is the ONNX Runtime pass run
    before the Python fusions; above 1 the result is specific to CPU or GPU (``use_gpu``). The
    model is saved to ``out`` (default ``<stem>.<model_type>-opt.onnx``) as one file.
    """
    _check_transformer_args(model_type, num_heads, hidden_size, opt_level)
    source = check_onnx_path(path)
    model = load_model(source, load_external_data=False)
    target = resolve_output(source, out, f".{model_type}-opt.onnx")
    bytes_before = model_bytes(source, model)
    import onnxruntime as ort
    from onnxruntime.transformers.optimizer import optimize_model

    gpu_missing = not {"CUDAExecutionProvider", "ROCMExecutionProvider", "MIGraphXExecutionProvider",
                       "DmlExecutionProvider"} & set(ort.get_available_providers())
    if use_gpu and gpu_missing:
        warnings.warn("use_gpu=True, but no GPU provider is available in this onnxruntime build; the ONNX Runtime "
                      "pass is skipped. Install onnxruntime-gpu on a GPU machine.", ProviderFallbackWarning,
                      stacklevel=2)
    try:
        optimized = optimize_model(str(source), model_type=model_type, num_heads=num_heads,
                                   hidden_size=hidden_size, opt_level=opt_level, use_gpu=use_gpu,
                                   only_onnxruntime=only_onnxruntime)
    except Exception as exc:
        raise WorkbenchError(
            f"onnxruntime.transformers.optimizer failed on '{source}' (model_type={model_type!r}): "
            f"{type(exc).__name__}: {exc}. Try opt_level=0 (Python fusions only), give num_heads and "
            "hidden_size explicitly, or use wb.optimize(path, 'extended') instead."
        ) from exc
    fused = dict(getattr(optimized, "get_fused_operator_statistics", dict)() or {})
    fully = getattr(optimized, "is_fully_optimized", None)
    with atomic_output(target) as tmp:
        optimized.save_model_to_file(str(tmp), use_external_data_format=False)
    saved = load_model(target, load_external_data=False)
    return TransformerOptimizeResult(
        source=source, path=target, model_type=model_type, num_heads=num_heads, hidden_size=hidden_size,
        opt_level=opt_level, use_gpu=use_gpu, fused=fused, before=op_histogram(model),
        after=op_histogram(saved), bytes_before=bytes_before, bytes_after=model_bytes(target, saved),
        fully_optimized=bool(fully(fused)) if callable(fully) else None,
        notes=_transformer_notes(model_type, fused, use_gpu, gpu_missing),
    )
