"""The tuner's search: stages that build, gate, time and prune candidates within the budget.

1. ``graph``: the export as given and the attention-fused graph (FP32), plus any candidates the caller
   passed, at ONNX Runtime's default level, all cores, spinning on.
2. ``int8``: dynamic INT8 (per-tensor, per-channel) of the better FP32 graph; when both fail the gate,
   MatMul-only INT8 (attention kept in FP32). FP16 of the best graph where CUDA is present.
3. ``levels``: the two best branches at the other optimization levels.
4. ``threads``: the two best at fewer threads, without spinning, with IO binding, in parallel mode.
5. ``static``: the best with its inputs fixed to the first grid shape (a per-shape candidate).
Every stage ends by keeping the best few by geometric-mean speed-up over eager and pruning the rest,
so later stages only vary knobs on branches still in the race. Each stage gets a share of the time
left before the final round's reserve; a stage that finds no time is skipped and noted.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from workbench.core.session import SessionConfig
from workbench.core.spec import ExportSpec
from workbench.core.tune_candidates import Traits, Variant, fp16_variant, fused_variant, int8_variant, \
    make_candidate, static_variant
from workbench.core.tune_measure import TuneRun
from workbench.core.tune_results import Candidate, CandidateResult, shape_text

__all__ = ["Search"]

KEEP = 2  # branches kept after each stage
DOMINATED = 0.75  # a branch under this share of the best one's speed-up is pruned even when it ranks second
MIN_STAGE_S = 1.0  # a stage with less time than this is skipped


def _rank(results: Sequence[CandidateResult]) -> list[CandidateResult]:
    timed = [r for r in results if r.passed and r.timings and math.isfinite(r.score)]
    return sorted(timed, key=lambda r: -r.score)


class Search:
    """One tune run's search (see the module docstring); ``run.results`` collects every candidate."""

    def __init__(self, run: TuneRun, traits: Traits, folder: Path, source: Path, spec: ExportSpec,
                 final_reserve_s: float) -> None:
        self.run, self.traits, self.folder, self.source, self.spec = run, traits, folder, source, spec
        self.final_reserve_s = final_reserve_s
        self.variants: dict[str, Variant] = {}
        self.stopped = "done"

    # ------------------------------------------------------------------------------ helpers

    def base(self) -> SessionConfig:
        return SessionConfig(opt_level="all", intra_op_threads=self.run.threads)

    def stage_budget(self, stages_left: int) -> float:
        return max(0.0, (self.run.time_left() - self.final_reserve_s) / max(1, stages_left))

    def alive(self) -> list[CandidateResult]:
        return _rank([r for r in self.run.results.values() if r.status == "passed"])

    def can_go(self, stage: str, budget: float) -> bool:
        if self.run.cancelled():
            self.stopped = "cancelled"
            return False
        if budget < MIN_STAGE_S:
            self.stopped = "budget"
            self.run.notes.append(f"stage '{stage}' skipped: the budget was spent ({self.run.time_left():.0f} s left)")
            return False
        return True

    def variant(self, variant: Variant) -> Variant:
        self.variants[variant.key] = variant
        if variant.error:
            self.run.notes.append(f"{variant.label}: could not be built: {variant.error}")
        return variant

    def failed_build(self, variant: Variant, stage: str) -> None:
        dummy = Candidate(f"{variant.label} · build", self.source, self.base(), variant.precision, dict(variant.recipe),
                          stage=stage)
        self.run.record(CandidateResult(dummy, "failed", error=f"could not be built: {variant.error}"))

    def gate_all(self, candidates: Sequence[Candidate], sizes: dict[str, int]) -> list[CandidateResult]:
        """Gate each new candidate (once per name); return those that passed."""
        passed = []
        for cand in candidates:
            if cand.name in self.run.results or self.run.cancelled():
                continue
            self.run.say(cand.stage, f"gate: {cand.name}")
            result = self.run.gate(cand, sizes.get(cand.name, 0))
            if result.passed:
                passed.append(result)
        return passed

    def measure(self, results: list[CandidateResult], budget: float, stage: str) -> None:
        """Time ``results`` with the current leaders in the same blocks (the leaders' timings are replaced, so
        every comparison a stage prunes by was measured side by side, not against an older round)."""
        if results:
            group = results + [r for r in self.leaders(whole=False) if r not in results]
            self.run.measure(group, budget, stage=stage)
            for r in group:
                self.run.record(r)

    def prune(self, stage: str, keep: int = KEEP) -> list[CandidateResult]:
        """Keep the ``keep`` best alive candidates covering the whole grid; prune the rest. Returns the kept."""
        ranked = [r for r in self.alive() if r.candidate.shapes is None]
        best = ranked[0] if ranked else None
        kept = [r for r in ranked[:keep] if best is not None and r.score >= DOMINATED * best.score]
        for r in ranked:
            if r in kept:
                continue
            r.status = "pruned"
            r.note = f"pruned after '{stage}': {r.score:.2f}x vs eager, best {best.score:.2f}x ({best.name})" \
                if best else f"pruned after '{stage}'"
            self.run.release(r.candidate)
            self.run.record(r)
        return kept

    def try_variants(self, variants: Sequence[Variant], stage: str, budget: float,
                     extra: Sequence[Candidate] = ()) -> list[CandidateResult]:
        """Gate each variant at the base config (and ``extra`` as given), time those that pass; return them."""
        cands, sizes = list(extra), {}
        for i, c in enumerate(extra):
            self.variant(Variant(f"extra-{i}", c.name, c.onnx_model, c.precision, dict(c.recipe), shapes=c.shapes,
                                 providers=c.config.providers))
            sizes[c.name] = c.onnx_model.stat().st_size if c.onnx_model.is_file() else 0
        for v in variants:
            if v.error:
                self.failed_build(v, stage)
                continue
            cand = make_candidate(v, self.base(), stage)
            cands.append(cand)
            sizes[cand.name] = v.size_bytes
        passed = self.gate_all(cands, sizes)
        self.measure(passed, budget, stage)
        return passed

    def leaders(self, *, whole: bool = True) -> list[CandidateResult]:
        """The best ``KEEP`` alive candidates (``whole``: only those covering the whole grid)."""
        return [r for r in self.alive() if r.candidate.shapes is None or not whole][:KEEP]

    # ------------------------------------------------------------------------------ stages

    def graph_stage(self, extra: Sequence[Candidate]) -> None:
        plain = self.variant(Variant("plain", "fp32", self.source, recipe={"graph": "as exported"}))
        variants = [plain]
        if self.traits.attention and self.stage_budget(5) < MIN_STAGE_S and not self.run.cancelled():
            self.stopped = "budget"
            self.run.notes.append(f"the attention-fused graph was skipped: the budget was spent "
                                  f"({self.run.time_left():.0f} s left)")  # the export is still timed, below
        elif self.traits.attention and not self.run.cancelled():
            self.run.say("graph", "building the attention-fused graph")
            example = self.run.inputs[self.run.grid[0]]
            variants.append(self.variant(fused_variant(self.run.case.model, self.source, self.spec, example,
                                                       self.folder, self.traits, self.run.notes)))
        if self.run.cancelled():
            self.stopped = "cancelled"
            return
        # The export itself is always gated and timed, even when a small budget leaves this stage less than
        # MIN_STAGE_S: a short tune must still answer "is ONNX Runtime faster than eager here?".
        self.try_variants(variants, "graph", max(self.stage_budget(5) * 0.6, MIN_STAGE_S), extra)

    def best_variants(self, precision: str) -> list[Variant]:
        """The whole-grid variants of ``precision`` behind the alive candidates, best first, within ``DOMINATED``
        of the best (two FP32 graphs that time alike both get quantized: their INT8 files can differ more)."""
        found: list[Variant] = []
        ranked = self.alive()
        for r in ranked:
            v = next((v for v in self.variants.values() if v.path == r.candidate.onnx_model), None)
            if v is not None and v.precision == precision and v.shapes is None and v not in found \
                    and r.score >= DOMINATED * ranked[0].score:
                found.append(v)
        return found[:KEEP]

    def int8_stage(self) -> None:
        bases = self.best_variants("fp32")
        if not bases or not self.can_go("int8", self.stage_budget(4)):
            return
        example = self.run.inputs[self.run.grid[0]]
        built = []
        for base, per_channel in [(b, False) for b in bases] + [(bases[0], True)]:
            self.run.say("int8", f"quantizing {base.label} ({'per-channel' if per_channel else 'per-tensor'})")
            built.append(self.variant(int8_variant(base, self.folder, per_channel=per_channel, inputs=example)))
        passed = self.try_variants(built, "int8", self.stage_budget(4) * 0.5)
        if not passed and self.traits.attention and self.can_go("int8", 1.0):
            self.run.say("int8", "INT8 failed the gate: trying MatMul-only INT8 (attention kept in FP32)")
            v = self.variant(int8_variant(bases[0], self.folder, per_channel=True, matmul_only=True, inputs=example))
            self.try_variants([v], "int8", self.stage_budget(4) * 0.5)
        if self.traits.cuda:
            self.try_variants([self.variant(fp16_variant(bases[0], self.folder, example))], "int8",
                              self.stage_budget(4))
        self.prune("int8")

    def levels_stage(self) -> None:
        budget = self.stage_budget(3)
        kept = self.leaders()
        if not kept or not self.can_go("levels", budget):
            return
        cands = []
        for i, r in enumerate(kept):
            levels = ("extended", "basic", "disable") if i == 0 else ("extended", "basic")
            v = self.variant_of(r.candidate)
            cands += [make_candidate(v, r.candidate.config.replace(opt_level=lv), "levels") for lv in levels]
        self.measure(self.gate_all(cands, {c.name: self.variant_of(c).size_bytes for c in cands}), budget, "levels")
        self.prune("levels")

    def variant_of(self, cand: Candidate) -> Variant:
        return next(v for v in self.variants.values() if v.path == cand.onnx_model)

    def threads_stage(self) -> None:
        budget = self.stage_budget(2)
        kept = self.leaders()
        if not kept or not self.can_go("threads", budget):
            return
        n = self.run.threads
        cands = []
        for i, r in enumerate(kept):
            v, cfg = self.variant_of(r.candidate), r.candidate.config
            cands.append(make_candidate(v, cfg.replace(allow_spinning=False), "threads"))
            cands.append(make_candidate(v, cfg, "threads", io_binding=True))
            if n > 1:
                cands.append(make_candidate(v, cfg.replace(intra_op_threads=max(1, n // 2)), "threads"))
            if i == 0 and n > 1:
                cands.append(make_candidate(v, cfg.replace(execution_mode="parallel", inter_op_threads=n), "threads"))
        self.measure(self.gate_all(cands, {c.name: self.variant_of(c).size_bytes for c in cands}), budget, "threads")
        self.prune("threads")

    def static_stage(self) -> None:
        budget = self.stage_budget(1)
        alive = self.alive()
        if not alive or not self.traits.dynamic or not self.can_go("static", budget):
            return
        best, shape = alive[0], self.run.grid[0]
        session = self.run.session(best.candidate)
        feed_shapes = {i.name: tuple(x.shape) for i, x in zip(session.get_inputs(), self.run.inputs[shape])}
        v = self.variant(static_variant(self.variant_of(best.candidate), self.folder, shape, feed_shapes))
        if v.error:
            self.run.notes.append(f"static shapes at {shape_text(shape)} skipped: {v.error}")
            return
        cand = make_candidate(v, best.candidate.config, "static", io_binding=best.candidate.io_binding)
        self.measure(self.gate_all([cand], {cand.name: v.size_bytes}), budget, "static")

    def run_all(self, extra: Sequence[Candidate]) -> None:
        """The stages in order; each checks the budget and cancel before it starts."""
        self.graph_stage(extra)
        for stage in (self.int8_stage, self.levels_stage, self.threads_stage, self.static_stage):
            if self.run.cancelled():
                self.stopped = "cancelled"
                return
            stage()
