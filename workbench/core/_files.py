"""Files written by the model conversions: op histograms, sizes on disk, output paths, atomic writes.

Shared by ``optimize``, ``transformer`` and ``quantize``. ``OpCounts`` is the mixin for results
holding a before/after op histogram (``graph.op_histogram``: ``"Op"`` / ``"domain::Op"`` keys).
Writes are atomic: a temp file in the output directory, then ``os.replace``; a failure leaves no
file at ``out``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import onnx

from workbench.core._format import text_table
from workbench.core._io import PathLike, load_model
from workbench.core.graph import subgraphs
from workbench.errors import InvalidInputError, WorkbenchError, describe

__all__ = [
    "HISTOGRAM_HEADERS",
    "OpCounts",
    "atomic_output",
    "external_files",
    "histogram_diff",
    "histogram_rows",
    "model_bytes",
    "resolve_output",
    "save_model",
]

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


def external_files(model: onnx.ModelProto, base: Path) -> set[Path]:
    """The external-data files ``model``'s initializers (subgraphs included) reference, relative to ``base``."""
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
            graphs.extend(subgraphs(node))
    return files


def model_bytes(path: PathLike, model: onnx.ModelProto | None = None) -> int:
    """Bytes on disk of an ONNX file plus the external-data files it references."""
    p = Path(path)
    if model is None:
        model = load_model(p, load_external_data=False)
    return p.stat().st_size + sum(f.stat().st_size for f in external_files(model, p.parent) if f.is_file())


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
        weights = {f.resolve() for f in external_files(load_model(source, load_external_data=False), source.parent)}
    if target.resolve() in weights:
        raise InvalidInputError(
            f"out='{target}' is the external-data file of the input model; writing there would destroy "
            "its weights. Pass another path."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


@contextlib.contextmanager
def atomic_output(out: Path) -> Iterator[Path]:
    """Yield a temp path in ``out``'s directory; on success move it onto ``out``, on failure delete it.

    The temp name is unique per call and keeps ``out``'s suffix (writers choose a format by it).
    """
    out = Path(out)
    tmp = out.with_name(f".{out.stem}.{uuid.uuid4().hex[:8]}.tmp{out.suffix}")
    try:
        yield tmp
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise WorkbenchError(
                f"The writer reported success but left nothing at '{tmp}'; '{out}' was not written. "
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
