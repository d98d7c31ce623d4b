"""Export a PyTorch model to ONNX with checked dynamic axes, a cache and an atomic write."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import onnx
import torch
from torch import nn

from workbench.core._format import badge, esc, fmt_time, html_table
from workbench.core.feeds import flatten_outputs
from workbench.core.fingerprint import fingerprint
from workbench.core.graph import ModelSummary, summarize
from workbench.core.inputs import as_input_tuple, check_inputs_fit, check_module, forward_arity
from workbench.core.spec import ExportSpec
from workbench.errors import ExportError, InvalidInputError, SpecError

_SIDECAR_SUFFIX = ".wbexport.json"
# Warnings torch raises about its own internals, not about the user's model.
_INTERNAL_NOISE = ("torchvision", "LeafSpec", "legacy TorchScript-based ONNX export",
                   "The feature will be removed. Please remove usage of this function")


@dataclass
class ExportResult:
    """What an export wrote and how it went. ``summary`` is computed on first use."""

    out: Path
    spec: ExportSpec
    duration_s: float
    warnings: list[str] = field(default_factory=list)
    torch_version: str = torch.__version__
    onnx_version: str = onnx.__version__
    fingerprint: str = ""
    cached: bool = False

    @property
    def exporter(self) -> str:
        return self.spec.exporter

    @property
    def opset(self) -> int:
        return self.spec.opset

    @cached_property
    def summary(self) -> ModelSummary:
        return summarize(self.out)

    def __repr__(self) -> str:
        how = "cached" if self.cached else f"in {fmt_time(self.duration_s)}"
        text = f"ExportResult({str(self.out)!r}, exporter={self.exporter!r}, opset={self.opset}, {how}"
        if self.warnings:
            text += f", {len(self.warnings)} warning(s)"
        return text + ")"

    def _repr_html_(self) -> str:
        rows = [["out", str(self.out)], ["exporter", self.exporter], ["opset", self.opset],
                ["duration", "cached" if self.cached else fmt_time(self.duration_s)],
                ["torch / onnx", f"{self.torch_version} / {self.onnx_version}"]]
        warn = "".join(f"<li>{esc(w)}</li>" for w in self.warnings)
        return (f"<div><b>Export</b> {badge(True, 'EXPORTED')}{html_table(['', ''], rows)}"
                + (f"<details><summary>{len(self.warnings)} warning(s)</summary><ul>{warn}</ul></details>" if warn else "")
                + "</div>")


def _default_spec(model: nn.Module, n_inputs: int, n_outputs: int) -> ExportSpec:
    _, _, names = forward_arity(model)
    input_names = tuple(names[:n_inputs]) if len(names) >= n_inputs else tuple(f"input_{i}" for i in range(n_inputs))
    output_names = ("output",) if n_outputs == 1 else tuple(f"output_{i}" for i in range(n_outputs))
    return ExportSpec(input_names=input_names, output_names=output_names)


def _count_outputs(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    try:
        with torch.inference_mode():
            return flatten_outputs(model(*inputs))
    except Exception as exc:
        shapes = [f"{tuple(t.shape)} {t.dtype}" for t in inputs]
        raise InvalidInputError(
            f"{type(model).__name__} failed on the example inputs {shapes}: {type(exc).__name__}: {exc}. "
            "Pass example inputs that the model's forward accepts (shapes, dtypes, device)."
        ) from exc


def check_spec(model: nn.Module, example_inputs: Any, spec: ExportSpec | None = None) -> ExportSpec:
    """Check a spec against the model before anything is exported; fill in defaults.

    Raises ``SpecError`` for a model in training mode, names that do not match the
    forward's arity or the outputs, and ``dynamic_axes`` keys or dimensions that name nothing.
    """
    check_module(model)
    inputs = as_input_tuple(example_inputs)
    if model.training:
        raise SpecError(
            f"{type(model).__name__} is in training mode: dropout and batch-norm would be exported "
            "as in training and the outputs would differ from inference. Call model.eval() before exporting."
        )
    check_inputs_fit(model, inputs)
    outputs = _count_outputs(model, inputs)
    if spec is None:
        return _default_spec(model, len(inputs), len(outputs))
    if not isinstance(spec, ExportSpec):
        raise SpecError(f"spec must be a wb.ExportSpec, received {type(spec).__name__}. Build one with wb.ExportSpec(...).")
    if not spec.input_names or not spec.output_names:
        default = _default_spec(model, len(inputs), len(outputs))
        spec = spec.replace(input_names=spec.input_names or default.input_names,
                            output_names=spec.output_names or default.output_names)
    _, _, params = forward_arity(model)
    if len(spec.input_names) != len(inputs):
        raise SpecError(
            f"input_names has {len(spec.input_names)} name(s) {list(spec.input_names)} but the example has "
            f"{len(inputs)} input(s) for {type(model).__name__}.forward({', '.join(params)}). "
            "Give one name per example input, in order."
        )
    if len(spec.output_names) != len(outputs):
        raise SpecError(
            f"output_names has {len(spec.output_names)} name(s) {list(spec.output_names)} but the model returns "
            f"{len(outputs)} tensor(s) with shapes {[tuple(o.shape) for o in outputs]}. Give one name per output."
        )
    shapes = {n: tuple(t.shape) for n, t in zip(spec.input_names, inputs)}
    shapes.update({n: tuple(t.shape) for n, t in zip(spec.output_names, outputs)})
    for key, axes in spec.dynamic_axes.items():
        if key not in shapes:
            import difflib

            lower = {n.lower(): n for n in shapes}
            close = [lower[key.lower()]] if key.lower() in lower else difflib.get_close_matches(key, list(shapes), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise SpecError(
                f"dynamic_axes names {key!r}, which is neither an input {list(spec.input_names)} nor an output "
                f"{list(spec.output_names)}: the model would be exported with static shapes.{hint} "
                "Nothing was written."
            )
        for dim in axes:
            if dim >= len(shapes[key]):
                raise SpecError(
                    f"dynamic_axes[{key!r}] marks dimension {dim}, but {key!r} has rank {len(shapes[key])} "
                    f"(shape {shapes[key]}). Dimensions count from 0. Nothing was written."
                )
    return spec


def dynamic_shapes_for(spec: ExportSpec, inputs: Sequence[torch.Tensor]) -> tuple[Any, ...] | None:
    """Translate ``dynamic_axes`` into torch.export ``dynamic_shapes`` (one entry per positional input).

    The same symbolic name on several inputs becomes one ``Dim``, so torch.export knows the sizes are equal.
    """
    if not any(name in spec.dynamic_axes for name in spec.input_names):
        return None
    dims: dict[str, torch.export.Dim] = {}
    shapes: list[Any] = []
    for name, _ in zip(spec.input_names, inputs):
        axes = spec.dynamic_axes.get(name)
        if not axes:
            shapes.append(None)
            continue
        shapes.append({d: dims.setdefault(sym, torch.export.Dim(sym)) for d, sym in axes.items()})
    return tuple(shapes)


def size_one_warnings(spec: ExportSpec, inputs: Sequence[torch.Tensor]) -> list[str]:
    """Dynamic axes whose example size is 0 or 1: the dynamo exporter specializes them."""
    out = []
    for name, tensor in zip(spec.input_names, inputs):
        for dim, sym in spec.dynamic_axes.get(name, {}).items():
            if dim < tensor.dim() and tensor.shape[dim] in (0, 1):
                out.append(
                    f"{name} dimension {dim} ({sym!r}) is {tensor.shape[dim]} in the example: exporters specialize "
                    "sizes 0 and 1, so the graph may only run at that size. Export from an example with size >= 2."
                )
    return out


def _stage_of(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "TorchExportError":
        return "capture"
    if name in ("ConversionError", "DispatchError", "GraphConstructionError", "UnsupportedOperatorError",
                "SymbolicValueError"):
        return "translate"
    return "export"


def _run_exporter(model: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path, spec: ExportSpec,
                  extra: dict[str, Any]) -> None:
    common: dict[str, Any] = dict(
        input_names=list(spec.input_names), output_names=list(spec.output_names),
        opset_version=spec.opset, verbose=False,
    )
    if spec.exporter == "dynamo":
        torch.onnx.export(model, inputs, str(path), dynamo=True, external_data=spec.external_data,
                          dynamic_shapes=dynamic_shapes_for(spec, inputs), optimize=True, **common, **extra)
    else:
        torch.onnx.export(model, inputs, str(path), dynamo=False, dynamic_axes=spec.dynamic_axes or None,
                          do_constant_folding=spec.do_constant_folding, **common, **extra)


def _extra_arguments(spec: ExportSpec | None, custom_translation_table: Any, custom_opsets: Any) -> dict[str, Any]:
    exporter = spec.exporter if spec is not None else "dynamo"
    extra: dict[str, Any] = {}
    if custom_translation_table:
        if exporter != "dynamo":
            raise SpecError(
                "custom_translation_table (onnxscript functions per torch op) is for the dynamo exporter, "
                f"received it with exporter={exporter!r}. Use exporter='dynamo', or register a symbolic "
                "function (torch.onnx.register_custom_op_symbolic) for the TorchScript exporter."
            )
        extra["custom_translation_table"] = dict(custom_translation_table)
    if custom_opsets:
        if exporter != "torchscript":
            raise SpecError(
                f"custom_opsets is for the TorchScript exporter, received it with exporter={exporter!r}. "
                "With the dynamo exporter the custom domain's opset comes from the onnxscript functions "
                "in custom_translation_table."
            )
        extra["custom_opsets"] = dict(custom_opsets)
    return extra


def _finish_model(path: Path, spec: ExportSpec) -> None:
    """Name the symbolic output dims as the spec asks; move weights to external data if asked."""
    model = onnx.load(str(path), load_external_data=True)
    changed = False
    for out in model.graph.output:
        for dim, sym in spec.dynamic_axes.get(out.name, {}).items():
            dims = out.type.tensor_type.shape.dim
            if dim < len(dims) and dims[dim].dim_param and dims[dim].dim_param != sym:
                dims[dim].dim_param = sym
                changed = True
    has_external = any(f.name.startswith(path.name) and f != path for f in path.parent.iterdir())
    if spec.external_data and not has_external:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=path.name + ".data", size_threshold=1024)
    elif changed:
        onnx.save_model(model, str(path), save_as_external_data=has_external,
                        all_tensors_to_one_file=True, location=path.name + ".data")


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    side = path.with_name(path.name + _SIDECAR_SUFFIX)
    try:
        data = json.loads(side.read_text())
        stat = path.stat()
        if data.get("size") != stat.st_size or data.get("mtime_ns") != stat.st_mtime_ns:
            return None
        return data
    except (OSError, ValueError):
        return None


def _write_sidecar(result: ExportResult) -> None:
    stat = result.out.stat()
    data = {"fingerprint": result.fingerprint, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "duration_s": result.duration_s, "warnings": result.warnings, "spec": result.spec.to_dict(),
            "torch_version": result.torch_version, "onnx_version": result.onnx_version}
    side = result.out.with_name(result.out.name + _SIDECAR_SUFFIX)
    tmp = side.with_name(side.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, side)


def export(
    model: nn.Module,
    example_inputs: Any,
    out: str | os.PathLike[str],
    *,
    spec: ExportSpec | None = None,
    use_cache: bool = True,
    custom_translation_table: dict[Any, Any] | None = None,
    custom_opsets: dict[str, int] | None = None,
) -> ExportResult:
    """Export ``model`` to ONNX at ``out`` following ``spec``.

    The spec is checked against the model first (see ``check_spec``). The file appears at
    ``out`` only when the export succeeded; a failure raises ``ExportError`` with the stage,
    the exception and the captured warnings, and leaves no file behind. Re-exporting an
    unchanged model (weights and code) with an unchanged spec and example returns the
    cached result. ``custom_translation_table`` (dynamo) and ``custom_opsets`` (TorchScript)
    pass through to ``torch.onnx.export``; exports that use them, and exports that rely on
    symbolics registered with ``torch.onnx.register_custom_op_symbolic``, should bypass the
    cache (``use_cache=False``), which cannot see those functions. Calls with either argument
    never read the cache.
    """
    check_module(model)
    inputs = as_input_tuple(example_inputs)
    target = _check_out(out)
    if spec is not None and not isinstance(spec, ExportSpec):
        raise SpecError(f"spec must be a wb.ExportSpec, received {type(spec).__name__}. Build one with wb.ExportSpec(...).")
    extra = _extra_arguments(spec, custom_translation_table, custom_opsets)
    # The key covers the spec as given: a hit means this exact call succeeded and was checked before.
    key = fingerprint(model, inputs, spec)
    cached = _cached(target, key) if use_cache and not extra else None
    if cached is not None:
        return cached
    spec = check_spec(model, inputs, spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    duration, captured = _export_atomically(model, inputs, target, spec, extra)
    result = ExportResult(target, spec, duration, captured, fingerprint=key)
    _write_sidecar(result)
    return result


def _check_out(out: Any) -> Path:
    if not isinstance(out, (str, os.PathLike)):
        raise InvalidInputError(f"out must be a str or Path ending in .onnx, received {type(out).__name__}.")
    target = Path(out)
    if target.suffix != ".onnx":
        raise InvalidInputError(f"out should end in .onnx, received {str(target)!r}. Try {str(target)!r} + '.onnx'.")
    return target


def _cached(target: Path, key: str) -> ExportResult | None:
    """The result of an earlier export to ``target`` with the same fingerprint, if the file is unchanged."""
    side = _read_sidecar(target) if target.exists() else None
    if not side or side.get("fingerprint") != key:
        return None
    return ExportResult(target, ExportSpec.from_dict(side["spec"]), side["duration_s"], list(side.get("warnings", [])),
                        side.get("torch_version", ""), side.get("onnx_version", ""), key, cached=True)


def _run_captured(model: nn.Module, inputs: tuple[torch.Tensor, ...], staged: Path, spec: ExportSpec,
                  extra: dict[str, Any], target: Path) -> list[str]:
    """Run the exporter into ``staged``; its warnings, or ``ExportError`` with the stage that failed."""
    with warnings.catch_warnings(record=True) as caught, _quiet_torch_logs():
        warnings.simplefilter("always")
        try:
            _run_exporter(model, inputs, staged, spec, extra)
        except Exception as exc:
            stage = _stage_of(exc)
            raise ExportError(
                f"The {spec.exporter} exporter failed at the {stage} stage for {type(model).__name__}: "
                f"{type(exc).__name__}: {_first_lines(str(exc))}. Nothing was written to {str(target)!r}. "
                "Run wb.diagnose(model, example_inputs, spec=spec) for the cause and a fix, or try the other exporter.",
                stage=stage, exception=exc, warnings=size_one_warnings(spec, inputs) + _unique_warnings(caught),
            ) from exc
        return _unique_warnings(caught)


def _export_atomically(model: nn.Module, inputs: tuple[torch.Tensor, ...], target: Path, spec: ExportSpec,
                       extra: dict[str, Any]) -> tuple[float, list[str]]:
    """Export into a temp folder beside ``target``, then move the files into place: ``(seconds, warnings)``."""
    tmpdir = Path(tempfile.mkdtemp(prefix=".wb-export-", dir=target.parent))
    staged = tmpdir / target.name
    start = time.perf_counter()
    try:
        captured = size_one_warnings(spec, inputs) + _run_captured(model, inputs, staged, spec, extra, target)
        if not staged.exists():
            raise ExportError(f"The {spec.exporter} exporter returned without writing {staged.name}.",
                              stage="save", warnings=captured)
        _finish_model(staged, spec)
        duration = time.perf_counter() - start
        for written in sorted(tmpdir.iterdir()):  # external data first, the .onnx last
            if written != staged:
                os.replace(written, target.parent / written.name)
        os.replace(staged, target)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return duration, captured


def _first_lines(text: str, n: int = 6) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(lines[:n]) + (" [...]" if len(lines) > n else "")


def _unique_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    seen: list[str] = []
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if text not in seen and not any(noise in text for noise in _INTERNAL_NOISE):
            seen.append(text)
    return seen


class _quiet_torch_logs:
    """Silence torch.onnx's chatty loggers (e.g. 'torchvision is not installed') during export."""

    names = ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx.experimental.symbolic_shapes", "onnxscript")

    def __enter__(self) -> None:
        self.levels = {n: logging.getLogger(n).level for n in self.names}
        for n in self.names:
            logging.getLogger(n).setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        for n, level in self.levels.items():
            logging.getLogger(n).setLevel(level)
