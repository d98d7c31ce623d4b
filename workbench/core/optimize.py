"""ONNX Runtime graph optimization levels and the saved optimized graph.

``optimize`` lets ONNX Runtime optimize a model at one level and save the graph it will run;
the result reports the op-type histogram before and after, so what was fused away and what was
added is visible. Writes are atomic: a temp file in the output directory, then ``os.replace``;
a failure leaves no file at ``out``.

The transformer optimizer lives in ``workbench.core.transformer``, the shared file helpers in
``workbench.core._files``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import onnx

from workbench.core._files import HISTOGRAM_HEADERS, OpCounts, atomic_output, external_files, histogram_rows, \
    model_bytes, resolve_output
from workbench.core._format import esc, fmt_bytes, html_table
from workbench.core._io import OnnxModel, PathLike, check_onnx_path, load_model
from workbench.core.graph import op_histogram
from workbench.core.session import ALL_OPT_LEVELS, OPT_LEVELS, OptLevel, SessionConfig, open_session
from workbench.errors import InvalidInputError, WorkbenchError

__all__ = ["OptimizeResult", "check_level", "optimize", "optimize_levels"]

_NCHWC_DOMAIN = "com.microsoft.nchwc"
_PROTOBUF_LIMIT = 2**31 - 2**20  # a serialized ModelProto must stay under 2 GiB

HARDWARE_NOTE = (
    "levels 'layout' and 'all' add layout optimizations (NCHWc) chosen for this CPU's vector width; the "
    "saved graph may hold com.microsoft.nchwc ops and is meant to run only on the same kind of hardware. "
    "'extended' writes com.microsoft fused ops for the session's provider; save at 'basic' for a portable graph."
)


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
        return sum(n for op, n in self.after.items() if op.startswith(_NCHWC_DOMAIN + "::"))

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
        notes = "".join(f"<p><i>{esc(n)}</i></p>" for n in self._notes())
        table = html_table(HISTOGRAM_HEADERS, histogram_rows(self.before, self.after))
        return f"<div><b>{esc(self._title())}</b>{notes}{table}</div>"


def check_level(opt_level: Any) -> OptLevel:
    """Raise ``InvalidInputError`` unless ``opt_level`` is one of ``ALL_OPT_LEVELS``."""
    if not isinstance(opt_level, str) or opt_level not in ALL_OPT_LEVELS:
        raise InvalidInputError(
            f"Unknown opt_level {opt_level!r}. Use one of {list(ALL_OPT_LEVELS)} "
            "('all' is ONNX Runtime's default; 'basic' is the level whose saved file any ONNX runtime can run)."
        )
    return opt_level  # type: ignore[return-value]


def optimize(
    onnx_model: OnnxModel,
    out: PathLike | None = None,
    *,
    opt_level: OptLevel = "all",
    providers: Sequence[str] | None = None,
) -> OptimizeResult:
    """Let ONNX Runtime optimize ``onnx_model`` (a path) at ``opt_level`` and save the graph it would run.

    ``opt_level`` is one of 'disable', 'basic', 'extended', 'layout', 'all'. The graph is saved through
    ``SessionOptions.optimized_model_filepath`` to ``out`` (default ``<stem>.opt-<opt_level>.onnx``
    beside the input). 'extended' writes com.microsoft fused ops chosen for the session's provider and
    'layout'/'all' may add NCHWc layout ops specific to this CPU: use 'basic' for a portable file.
    Optimizations depend on the providers too; the default is the CPU provider.
    """
    level = check_level(opt_level)
    providers = tuple(providers) if providers is not None else ("CPUExecutionProvider",)
    source = check_onnx_path(onnx_model)
    model = load_model(source, load_external_data=False)
    target = resolve_output(source, out, f".opt-{level}.onnx")
    bytes_before = model_bytes(source, model)
    # ONNX Runtime's saved graph would point at the input's external-data file by a relative path,
    # which breaks once saved elsewhere; feeding it the model with weights inline saves one file.
    feed: PathLike | onnx.ModelProto = source
    if external_files(model, source.parent):
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
    onnx_model: OnnxModel, work_dir: PathLike | None = None, *, opt_levels: Sequence[OptLevel] = OPT_LEVELS,
) -> dict[str, OptimizeResult]:
    """``optimize`` at each level, saved as ``<stem>.opt-<level>.onnx`` in ``work_dir`` (default: beside the input)."""
    source = check_onnx_path(onnx_model)
    for level in opt_levels:
        check_level(level)
    folder = Path(work_dir) if work_dir is not None else source.parent
    return {lv: optimize(source, folder / f"{source.stem}.opt-{lv}.onnx", opt_level=lv) for lv in opt_levels}
