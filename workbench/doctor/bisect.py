"""Which ONNX Runtime graph optimization breaks accuracy: bisect the level, then the optimizers.

Levels are tried in order (disable -> basic -> extended -> all) up to the requested one; the
first level that drifts beyond tolerance names the candidates: the optimizers that level adds
(names as ONNX Runtime registers them, for ``SessionConfig(disabled_optimizers=...)``). Each is
disabled alone at the requested level; the ones that restore accuracy are the fixers, and the
culprit is the fixer whose disabling changes the optimized graph least (the most specific one).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from workbench.core._format import esc, fmt_num, html_table
from workbench.core._io import OnnxModel, is_path
from workbench.core.capture import captured_output
from workbench.core.compare import compare_arrays
from workbench.core.graph import op_histogram
from workbench.core.session import OPT_LEVELS, SessionConfig, open_session
from workbench.core.tolerance import Tolerance
from workbench.errors import brief

__all__ = ["LEVELS", "OPTIMIZERS", "REWRITE_RULES", "TRANSFORMERS", "Bisection", "LevelCheck", "bisect_optimizations"]

# ONNX Runtime's optimizers as it registers them (onnxruntime/core/optimizer/graph_transformer_utils.cc,
# checked against the installed version by tests/doctor/test_bisect.py), per level, in pipeline order.
# Rewrite rules run inside the level's ``LevelN_RuleBasedTransformer``; "all" holds ORT's levels 3 and 4.
#: Rewrite rules per level.
REWRITE_RULES: dict[str, tuple[str, ...]] = {
    "basic": (
        "EliminateIdentity", "EliminateSlice", "UnsqueezeElimination", "EliminateDropout", "ExpandElimination",
        "CastElimination", "CastChainElimination", "PreShapeNodeElimination", "NoopElimination", "DivMulFusion",
        "FuseReluClip", "GemmSumFusion", "GemmTransposeFusion", "NotWhereFusion", "ConvAddFusion", "ConvMulFusion",
        "ConvBNFusion", "Pad_Fusion", "MatMul_BatchNormalization_Fusion", "LabelEncoderFusion",
    ),
    "extended": ("ClipQuantRewrite", "ReluQuantRewrite", "GemmTransposeFusion"),
    "all": (),
}
#: Graph transformers per level.
TRANSFORMERS: dict[str, tuple[str, ...]] = {
    "basic": (
        "DoubleQDQPairsRemover", "ConstantSharing", "CommonSubexpressionElimination", "ConstantFolding",
        "MatMulAddFusion", "ReshapeFusion", "FreeDimensionOverrideTransformer", "SliceConcatToSpaceToDepthFusion",
        "GeluFusionL1", "LayerNormFusionL1", "QDQPropagationTransformer", "WeightBiasQuantization",
        "EnsureUniqueDQForNodeUnit", "WhereDummyDq", "TransposeOptimizer",
    ),
    "extended": (
        "TransposeOptimizer_CPUExecutionProvider", "QDQS8ToU8Transformer", "QDQSelectorActionTransformer",
        "GemmActivationFusion", "MatMulIntegerToFloatFusion", "DynamicQuantizeMatMulFusion", "ConvActivationFusion",
        "GeluFusionL2", "LayerNormFusionL2", "SimplifiedLayerNormFusion", "AttentionFusion", "EmbedLayerNormFusion",
        "GatherSliceToSplitFusion", "GatherToSliceFusion", "MatmulTransposeFusion", "BiasGeluFusion",
        "GroupQueryAttentionFusion", "MatMulAddFusion", "SkipLayerNormFusion", "BiasSkipLayerNormFusion",
        "FastGeluFusion", "QuickGeluFusion", "SwiGluFusion", "GeluApproximation", "BiasSoftmaxFusion",
        "BiasDropoutFusion", "MatMulScaleFusion", "MatMulActivationFusion", "Avx2WeightS8ToU8Transformer",
        "MatMulNBitsFusion", "GroupQueryAttentionPreNormFusion", "QDQFinalCleanupTransformer",
    ),
    "all": ("NchwcTransformer", "NhwcTransformer", "ConvAddActivationFusion",
            "FuseFp16InitializerToFp32NodeTransformer"),
}
#: Every optimizer a level adds (rules first, as ONNX Runtime runs them), the bisection's candidates.
OPTIMIZERS: dict[str, tuple[str, ...]] = {level: REWRITE_RULES[level] + TRANSFORMERS[level] for level in TRANSFORMERS}
LEVELS: tuple[str, ...] = tuple(OPT_LEVELS)


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
    optimized_out: Path | None = None

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
        return (f"<div><b>{esc(self._headline())}</b>"
                + html_table(["level", "verdict", "max abs", "error"], rows) + "</div>")


def _check(onnx_model: OnnxModel, config: SessionConfig, inputs: Sequence[Mapping[str, np.ndarray]],
           expected: Sequence[Sequence[np.ndarray]], tolerance: Tolerance,
           save: Path | None = None) -> tuple[bool, float | None, str, Counter[str]]:
    """Run ``onnx_model`` under ``config`` on every feed of ``inputs``; (ok, worst max abs, error, ops)
    where ops is the op histogram of the optimized graph written to ``save``."""
    if save is not None:
        config = config.replace(optimized_model_path=str(save))
    try:
        with captured_output():  # ONNX Runtime's own log while it optimizes and runs
            session = open_session(onnx_model, config)
            outputs = [session.run(None, dict(feed)) for feed in inputs]
        worst = 0.0
        ok = True
        for exp, actual in zip(expected, outputs):
            comparison = compare_arrays(list(exp), actual, tolerance=tolerance)
            ok = ok and comparison.ok
            worst = max(worst, comparison.max_abs)
    except Exception as exc:
        return False, None, brief(exc, 200), Counter()
    ops = op_histogram(save) if save is not None and save.exists() else Counter()
    return ok, worst, "", ops


def _levels(onnx_model: OnnxModel, inputs: Sequence[Mapping[str, np.ndarray]], expected: Sequence[Sequence[np.ndarray]],
            config: SessionConfig, tolerance: Tolerance, saved: Any) -> list[LevelCheck]:
    """Check each level up to the requested one; stop at the first that drifts."""
    checks: list[LevelCheck] = []
    for level in LEVELS[: LEVELS.index(config.opt_level) + 1]:
        ok, worst, error, ops = _check(onnx_model, config.replace(opt_level=level), inputs, expected, tolerance,
                                       saved(level))
        checks.append(LevelCheck(level, ok, worst, error, ops))
        if not ok:
            break
    return checks


def bisect_optimizations(
    onnx_model: OnnxModel,
    inputs: Sequence[Mapping[str, np.ndarray]],
    expected: Sequence[Sequence[np.ndarray]],
    work_dir: Path,
    *,
    tolerance: Tolerance = "fp32",
    config: SessionConfig | None = None,
) -> Bisection:
    """Find the level and the optimizer that move ONNX Runtime's outputs on ``inputs`` (feed dicts)
    away from ``expected`` (one list of arrays per feed). Optimized graphs go to ``work_dir``."""
    config = config or SessionConfig()
    stem = Path(onnx_model).stem if is_path(onnx_model) else "model"
    work_dir = Path(work_dir)

    def saved(name: str) -> Path:
        return work_dir / f"{stem}.bisect-{name}.onnx"

    result = Bisection(config.opt_level, _levels(onnx_model, inputs, expected, config, tolerance, saved))
    bad = next((c for c in result.levels if not c.ok), None)
    if bad is None:
        return result
    result.first_bad_level = bad.level
    if bad.level == "disable":
        return result
    result.optimized_out = saved(bad.level)
    target_ops = bad.ops
    if bad.level != config.opt_level:  # the requested level's graph is the one to stay close to
        target_ops = _check(onnx_model, config, inputs, expected, tolerance, saved("req"))[3]
        saved("req").unlink(missing_ok=True)
    distances: dict[str, int] = {}
    for name in OPTIMIZERS.get(bad.level, ()):
        if name in config.disabled_optimizers:
            continue
        trial = config.replace(disabled_optimizers=tuple(config.disabled_optimizers) + (name,))
        ok, _, _, ops = _check(onnx_model, trial, inputs, expected, tolerance, saved(f"without-{name}"))
        saved(f"without-{name}").unlink(missing_ok=True)
        result.tried[name] = ok
        if ok:
            result.fixers.append(name)
            distances[name] = sum(abs(ops[k] - target_ops[k]) for k in set(ops) | set(target_ops))
    if result.fixers:
        order = {n: i for i, n in enumerate(OPTIMIZERS[bad.level])}
        result.culprit = min(result.fixers, key=lambda n: (distances[n], -order[n]))
    return result
