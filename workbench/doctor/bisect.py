"""Which ONNX Runtime graph optimization breaks accuracy: bisect the level, then the optimizers.

Levels are tried in order (disable -> basic -> extended -> all) up to the requested one; the
first level that drifts beyond tolerance names the candidates: the optimizers that level adds
(names as ONNX Runtime registers them, for ``SessionConfig(disabled_optimizers=...)``). Each is
disabled alone at the requested level; the ones that restore accuracy are the fixers, and the
culprit is the fixer whose disabling changes the optimized graph least (the most specific one).
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from workbench.core._format import fmt_num, html_table
from workbench.core._io import load_model
from workbench.core.compare import Tolerance, compare_arrays
from workbench.core.session import OPT_LEVELS, SessionConfig, open_session

# From onnxruntime/core/optimizer/graph_transformer_utils.cc (1.2x-1.3x), in pipeline order.
OPTIMIZERS: dict[str, tuple[str, ...]] = {
    "basic": (
        "EliminateIdentity", "EliminateSlice", "UnsqueezeElimination", "EliminateDropout", "ExpandElimination",
        "CastElimination", "CastChainElimination", "PreShapeNodeElimination", "NoopElimination", "DivMulFusion",
        "FuseReluClip", "GemmSumFusion", "GemmTransposeFusion", "NotWhereFusion", "ConvAddFusion", "ConvMulFusion",
        "ConvBNFusion", "PadFusion", "MatmulBNFusion", "LabelEncoderFusion", "DoubleQDQPairsRemover",
        "ConstantSharing", "CommonSubexpressionElimination", "ConstantFolding", "MatMulAddFusion", "ReshapeFusion",
        "FreeDimensionOverrideTransformer", "GeluFusionL1", "LayerNormFusionL1", "QDQPropagationTransformer",
        "WeightBiasQuantization", "EnsureUniqueDQForNodeUnit", "TransposeOptimizer",
    ),
    "extended": (
        "ClipQuantFusion", "ReluQuantFusion", "QDQS8ToU8Transformer", "QDQSelectorActionTransformer",
        "GemmActivationFusion", "MatMulIntegerToFloatFusion", "DynamicQuantizeMatMulFusion", "ConvActivationFusion",
        "GeluFusionL2", "GeluFusion", "LayerNormFusionL2", "LayerNormFusion", "SimplifiedLayerNormFusion",
        "AttentionFusion", "EmbedLayerNormFusion", "GatherSliceToSplitFusion", "GatherToSliceFusion",
        "MatmulTransposeFusion", "BiasGeluFusion", "SkipLayerNormFusion", "FastGeluFusion", "QuickGeluFusion",
        "GeluApproximation", "BiasSoftmaxFusion", "MatMulScaleFusion", "MatMulNBitsFusion",
        "Avx2WeightS8ToU8Transformer", "QDQFinalCleanupTransformer",
    ),
    "all": ("NchwcTransformer", "NhwcTransformer", "ConvAddActivationFusion"),
}
LEVELS: tuple[str, ...] = tuple(OPT_LEVELS)


def op_histogram(model: Any) -> Counter[str]:
    """Op type (``domain::op`` outside the default domain) -> node count of the main graph."""
    return Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}" for n in model.graph.node)


@dataclass
class LevelCheck:
    """One optimization level: did it match PyTorch, the largest error, the ops ORT ran."""

    level: str
    ok: bool | None
    max_abs: float | None = None
    error: str = ""
    ops: Counter[str] = field(default_factory=Counter, repr=False)


@dataclass
class Bisection:
    """Levels checked, the first level that drifts, the optimizers tried and the culprit."""

    requested: str
    levels: list[LevelCheck]
    first_bad_level: str | None = None
    culprit: str | None = None
    fixers: list[str] = field(default_factory=list)
    tried: dict[str, bool] = field(default_factory=dict)
    optimized_path: Path | None = None

    @property
    def drift_from_optimization(self) -> bool:
        """True when the unoptimized graph matches but a higher level does not."""
        return self.first_bad_level not in (None, "disable")

    @property
    def last_good_level(self) -> str | None:
        good = [c.level for c in self.levels if c.ok]
        return good[-1] if good else None

    @property
    def ops_changed(self) -> dict[str, int]:
        """Op counts the first bad level changed relative to the level before it."""
        checks = {c.level: c for c in self.levels}
        if not self.drift_from_optimization:
            return {}
        before = checks[LEVELS[LEVELS.index(self.first_bad_level) - 1]].ops
        after = checks[self.first_bad_level].ops
        keys = set(before) | set(after)
        return {k: after[k] - before[k] for k in sorted(keys) if after[k] != before[k]}

    def __bool__(self) -> bool:
        return self.culprit is not None

    def to_pandas(self) -> Any:
        import pandas as pd

        return pd.DataFrame([{"level": c.level, "ok": c.ok, "max_abs": c.max_abs, "error": c.error} for c in self.levels])

    def _headline(self) -> str:
        levels = ", ".join(f"{c.level} {'ok' if c.ok else 'FAIL'}" + (f" ({fmt_num(c.max_abs)})" if c.max_abs else "")
                           for c in self.levels)
        if not self.drift_from_optimization:
            why = "the unoptimized graph already differs" if self.first_bad_level == "disable" else "no level drifts"
            return f"Optimization bisection: {levels}; {why}"
        who = (f"culprit {self.culprit}" if self.culprit else
               f"no single optimizer restores accuracy (tried {len(self.tried)})")
        return f"Optimization bisection: {levels}; drift enters at {self.first_bad_level!r}; {who}"

    def __repr__(self) -> str:
        text = self._headline()
        if self.fixers and len(self.fixers) > 1:
            text += f"\n  disabling any of {self.fixers} restores accuracy"
        if self.ops_changed:
            text += "\n  ops changed at that level: " + ", ".join(f"{k} {v:+d}" for k, v in self.ops_changed.items())
        return text

    def _repr_html_(self) -> str:
        rows = [[c.level, "ok" if c.ok else "FAIL", c.max_abs if c.max_abs is not None else "", c.error[:120]]
                for c in self.levels]
        return (f"<div><b>{html.escape(self._headline())}</b>"
                + html_table(["level", "verdict", "max abs", "error"], rows) + "</div>")


def _check(path: Path, config: SessionConfig, feeds: Sequence[dict[str, np.ndarray]],
           expected: Sequence[Sequence[np.ndarray]], tolerance: Tolerance,
           save: Path | None = None) -> tuple[bool, float | None, str, Counter[str]]:
    if save is not None:
        config = config.replace(optimized_model_path=str(save))
    try:
        session = open_session(path, config)
        worst = 0.0
        ok = True
        for feed, exp in zip(feeds, expected):
            comparison = compare_arrays(list(exp), session.run(None, feed), tolerance)
            ok = ok and comparison.ok
            worst = max(worst, comparison.max_abs)
    except Exception as exc:
        return False, None, f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}", Counter()
    ops: Counter[str] = Counter()
    if save is not None and save.exists():
        ops = op_histogram(load_model(save, load_external_data=False))
    return ok, worst, "", ops


def bisect_optimizations(
    path: Path,
    feeds: Sequence[dict[str, np.ndarray]],
    expected: Sequence[Sequence[np.ndarray]],
    config: SessionConfig,
    tolerance: Tolerance,
    workdir: Path,
) -> Bisection:
    """Find the level and the optimizer that move ORT's outputs (``feeds``) away from ``expected``."""
    requested = config.opt_level
    levels = LEVELS[: LEVELS.index(requested) + 1]
    checks: list[LevelCheck] = []
    stem = path.stem
    for level in levels:
        save = workdir / f"{stem}.bisect-{level}.onnx"
        ok, worst, error, ops = _check(path, config.replace(opt_level=level), feeds, expected, tolerance, save)
        checks.append(LevelCheck(level, ok, worst, error, ops))
        if not ok:
            break
    result = Bisection(requested, checks)
    bad = next((c for c in checks if not c.ok), None)
    if bad is None:
        return result
    result.first_bad_level = bad.level
    if bad.level == "disable":
        return result
    result.optimized_path = workdir / f"{stem}.bisect-{bad.level}.onnx"
    if bad.level != requested:  # the requested level's graph is the one to stay close to
        requested_graph = workdir / f"{stem}.bisect-req.onnx"
        _, _, _, target_ops = _check(path, config, feeds, expected, tolerance, requested_graph)
        requested_graph.unlink(missing_ok=True)
    else:
        target_ops = bad.ops
    distances: dict[str, int] = {}
    for name in OPTIMIZERS.get(bad.level, ()):
        if name in config.disabled_optimizers:
            continue
        trial = config.replace(disabled_optimizers=tuple(config.disabled_optimizers) + (name,))
        save = workdir / f"{stem}.bisect-without-{name}.onnx"
        ok, _, _, ops = _check(path, trial, feeds, expected, tolerance, save)
        save.unlink(missing_ok=True)
        result.tried[name] = ok
        if ok:
            result.fixers.append(name)
            keys = set(ops) | set(target_ops)
            distances[name] = sum(abs(ops[k] - target_ops[k]) for k in keys)
    if result.fixers:
        order = {n: i for i, n in enumerate(OPTIMIZERS[bad.level])}
        result.culprit = min(result.fixers, key=lambda n: (distances[n], -order[n]))
    return result
