"""The transformer optimizer: ``onnxruntime.transformers.optimizer`` fusions with op counts before and after.

``transformer_optimize`` fuses attention, LayerNorm, GELU and embeddings and reports the
optimizer's own fused-op statistics next to the op-type histograms of the input and the saved
graph. The write is atomic (see ``workbench.core._files``): a failure leaves no file at ``out``.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.core._checks import is_int
from workbench.core._files import HISTOGRAM_HEADERS, OpCounts, atomic_output, histogram_rows, model_bytes, \
    resolve_output
from workbench.core._format import esc, html_table
from workbench.core.capture import captured_output
from workbench.core._io import OnnxModel, PathLike, check_onnx_path, load_model
from workbench.core.graph import op_histogram
from workbench.core.session import OPT_LEVELS, OptLevel, ProviderFallbackWarning
from workbench.errors import InvalidInputError, WorkbenchError

__all__ = ["TransformerOptimizeResult", "transformer_model_types", "transformer_optimize"]

#: The level names as the numbers ``onnxruntime.transformers.optimizer`` takes.
_ORT_NUMBERS: dict[str, int] = {"disable": 0, "basic": 1, "extended": 2, "all": 99}


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
    opt_level: OptLevel | None
    use_gpu: bool
    fused: dict[str, int]
    before: Counter[str]
    after: Counter[str]
    bytes_before: int
    bytes_after: int
    fully_optimized: bool | None = None
    notes: list[str] = field(default_factory=list)
    #: what the optimizer printed (its logger and C++ output), kept out of the notebook's stderr
    log: list[str] = field(default_factory=list, repr=False)

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
        notes = "".join(f"<p><i>{esc(n)}</i></p>" for n in self.notes)
        fused = html_table(["fused op", "count"], [[k, v] for k, v in self.fused.items()])
        table = html_table(HISTOGRAM_HEADERS, histogram_rows(self.before, self.after))
        return f"<div><b>{esc(self._title())}</b>{notes}{fused}{table}</div>"


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
        if not is_int(value, 0):
            raise InvalidInputError(f"{name} must be an int >= 0 (0 detects it from the graph), received {value!r}.")
    if opt_level is not None and opt_level not in OPT_LEVELS:
        raise InvalidInputError(
            f"opt_level must be None (the model type's default) or one of {list(OPT_LEVELS)}, "
            f"received {opt_level!r}. It is ONNX Runtime's level run before the Python fusions."
        )


def _transformer_notes(model_type: str, fused: dict[str, int], use_gpu: bool, gpu_missing: bool) -> list[str]:
    notes = []
    if not any(fused.values()):
        notes.append("no fusion pattern matched this graph; the saved model is the input after ONNX Runtime's pass.")
    elif "bert" in model_type and not (fused.get("Attention") or fused.get("MultiHeadAttention")):
        notes.append("attention did not fuse: the optimizer did not recognize this graph's attention subgraph "
                     "(nn.MultiheadAttention's packed Q/K/V projection never matches its patterns, with either "
                     "exporter; export workbench.core.rewrite.fusable_attention(model) instead, which wb.tune does).")
    if use_gpu and gpu_missing:
        notes.append("use_gpu=True but this onnxruntime has no CUDA/ROCm/DirectML provider: ONNX Runtime's "
                     "pass was skipped, only the Python fusions ran.")
    return notes


def transformer_optimize(
    onnx_model: OnnxModel,
    out: PathLike | None = None,
    *,
    model_type: str = "bert",
    num_heads: int = 0,
    hidden_size: int = 0,
    opt_level: OptLevel | None = None,
    use_gpu: bool = False,
    only_onnxruntime: bool = False,
) -> TransformerOptimizeResult:
    """Fuse attention, LayerNorm, GELU and embeddings with ``onnxruntime.transformers.optimizer``.

    ``model_type`` must be one of ``transformer_model_types()``; ``num_heads``/``hidden_size`` of 0
    let the optimizer detect them. ``opt_level`` ('disable', 'basic', 'extended', 'all'; None: the
    model type's default, 'basic' for BERT) is the ONNX Runtime pass run before the Python fusions;
    above 'basic' the result is specific to CPU or GPU (``use_gpu``). The model (a path) is saved
    to ``out`` (default ``<stem>.<model_type>-opt.onnx``) as one file.
    """
    _check_transformer_args(model_type, num_heads, hidden_size, opt_level)
    source = check_onnx_path(onnx_model)
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
        with captured_output() as log:  # the optimizer's own log lines; the notes say what matters
            optimized = optimize_model(str(source), model_type=model_type, num_heads=num_heads,
                                       hidden_size=hidden_size, use_gpu=use_gpu,
                                       opt_level=_ORT_NUMBERS[opt_level] if opt_level is not None else None,
                                       only_onnxruntime=only_onnxruntime)
            fused = dict(getattr(optimized, "get_fused_operator_statistics", dict)() or {})
            fully = getattr(optimized, "is_fully_optimized", None)
            fully_optimized = bool(fully(fused)) if callable(fully) else None  # it logs what did not fuse
    except Exception as exc:
        raise WorkbenchError(
            f"onnxruntime.transformers.optimizer failed on '{source}' (model_type={model_type!r}): "
            f"{type(exc).__name__}: {exc}. Try opt_level='disable' (Python fusions only), give num_heads and "
            "hidden_size explicitly, or use wb.optimize(onnx_model, opt_level='extended') instead."
        ) from exc
    with atomic_output(target) as tmp:
        optimized.save_model_to_file(str(tmp), use_external_data_format=False)
    saved = load_model(target, load_external_data=False)
    return TransformerOptimizeResult(
        source=source, path=target, model_type=model_type, num_heads=num_heads, hidden_size=hidden_size,
        opt_level=opt_level, use_gpu=use_gpu, fused=fused, before=op_histogram(model),
        after=op_histogram(saved), bytes_before=bytes_before, bytes_after=model_bytes(target, saved),
        fully_optimized=fully_optimized,
        notes=_transformer_notes(model_type, fused, use_gpu, gpu_missing), log=log.lines(),
    )
