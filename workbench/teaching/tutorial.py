"""Settings and small presentation helpers for the guided notebooks (``notebooks/``).

    >>> from workbench.teaching import tutorial
    >>> work = tutorial.setup("03_validate")      # banner, quiet ORT log, this notebook's folder
    >>> tutorial.SMOKE, tutorial.settings.runs    # smoke mode when the environment has CI set

The notebooks hold no logic of their own: what they compute comes from ``workbench``'s core, zoo,
doctor and viz; this module only sizes the runs (``SMOKE``/``settings``), places the files
(``shared`` for exports several notebooks reuse through ``wb.export``'s cache, ``work_dir`` for
each notebook's own files, both under ``notebooks/artifacts/`` or ``$WB_ARTIFACTS``), and puts
results side by side in small tables.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

# re-exported: the notebooks call them as tutorial.describe_*
from workbench.teaching.readings import describe_configs, describe_latencies, describe_speedups  # noqa: F401

#: Smoke mode: smaller models and fewer repetitions, so that CI runs every notebook quickly.
SMOKE: bool = "CI" in os.environ


@dataclass(frozen=True)
class Settings:
    """How much the notebooks measure: repetitions, the size of one benchmark (``batch`` x ``seq``)
    and the grid of a sweep (``batch_sizes`` x ``seq_lens``). Inputs come from ``ModelCase.make_inputs``."""

    runs: int
    warmup: int
    batch: int
    seq: int
    batch_sizes: tuple[int, ...]
    seq_lens: tuple[int, ...]
    sweep_runs: int
    sweep_warmup: int


SMOKE_SETTINGS = Settings(runs=20, warmup=3, batch=4, seq=32, batch_sizes=(1, 4, 16), seq_lens=(16, 64),
                          sweep_runs=8, sweep_warmup=2)
FULL_SETTINGS = Settings(runs=200, warmup=20, batch=8, seq=128, batch_sizes=(1, 2, 4, 8, 16, 32),
                         seq_lens=(32, 128, 256), sweep_runs=50, sweep_warmup=5)

#: The settings in force: ``SMOKE_SETTINGS`` in smoke mode, else ``FULL_SETTINGS``.
settings: Settings = SMOKE_SETTINGS if SMOKE else FULL_SETTINGS


# ---------------------------------------------------------------------------------------------
# Folders and the machine
# ---------------------------------------------------------------------------------------------


def artifacts_root() -> Path:
    """``$WB_ARTIFACTS``, else ``artifacts/`` in the working directory (the notebook's folder)."""
    return Path(os.environ.get("WB_ARTIFACTS") or Path.cwd() / "artifacts").resolve()


def shared(filename: str) -> Path:
    """A path in the folder every notebook shares (one per mode, so smoke and full models do not
    overwrite each other's exports): export there and the next notebook gets a cache hit."""
    folder = artifacts_root() / ("shared-smoke" if SMOKE else "shared")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / filename


def work_dir(notebook: str) -> Path:
    """This notebook's own folder of files under the artifacts root (created)."""
    folder = artifacts_root() / notebook
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def machine() -> dict[str, Any]:
    """What the numbers in the notebooks depend on: cores, threads, versions, providers, GPU."""
    import onnxruntime as ort
    import torch

    import workbench as wb

    return {
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "usable CPUs": usable_cpus(),
        "torch threads": torch.get_num_threads(), "torch": torch.__version__, "onnxruntime": ort.__version__,
        "providers": ", ".join(ort.get_available_providers()), "CUDA": wb.cuda_available(),
    }


def _cgroup_quota(path: str = "/sys/fs/cgroup/cpu.max") -> float | None:
    """The CPUs a cgroup v2 ``cpu.max`` quota allows (``"200000 100000"`` is 2.0), None without a quota."""
    try:
        quota, period = Path(path).read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def cpus(quota_file: str = "/sys/fs/cgroup/cpu.max") -> dict[str, Any]:
    """What this process may run on: logical CPUs (``os.cpu_count()``), the CPUs its affinity mask allows,
    the cgroup's CPU quota (containers, ``docker --cpus``), and ``usable``, the smallest of them."""
    logical = os.cpu_count() or 1
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    quota = _cgroup_quota(quota_file)
    usable = min(affinity, max(1, int(quota))) if quota is not None else affinity
    return {"logical": logical, "affinity": affinity, "cgroup quota": quota, "usable": usable}


def usable_cpus() -> int:
    """The CPUs this process may actually use (affinity and cgroup quota), for thread counts."""
    return int(cpus()["usable"])


def setup(notebook: str) -> Path:
    """Print the mode and the machine, quiet ONNX Runtime's own log (every failure the notebooks
    show is kept in a workbench result), and return this notebook's work_dir."""
    import onnxruntime as ort

    ort.set_default_logger_severity(4)
    folder = work_dir(notebook)
    mode = "smoke mode (CI is set): small models, few repetitions" if SMOKE else "full mode"
    facts = "; ".join(f"{k}: {v}" for k, v in machine().items())
    print(f"{notebook} in {mode}\n{facts}\nfiles: {folder}")
    return folder


def no_gpu(what: str) -> None:
    """Say plainly what a GPU cell would show, on a machine without CUDA."""
    print(f"No CUDA device here, so this cell did not run. On a machine with one, it {what}")


@contextlib.contextmanager
def show_warnings() -> Iterator[None]:
    """Run the block with its warnings and whatever it prints to stdout/stderr (C/C++ output too)
    caught, then print them as plain text: for the cells that teach a warning, so the notebook
    shows it as a line of output rather than raw stderr."""
    from workbench.core.capture import Captured, captured_output

    cap, caught = Captured(), []
    try:
        with captured_output() as cap, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        for w in caught:
            print(f"{w.category.__name__}: {w.message}")
        if cap.text.strip():
            print(cap.text.strip())


def show_source(obj: Any) -> Any:
    """The source of a function or class, highlighted (for reading the demo code next to its use)."""
    import inspect

    from IPython.display import Code

    return Code(inspect.getsource(obj), language="python")


# ---------------------------------------------------------------------------------------------
# Tables from results
# ---------------------------------------------------------------------------------------------


def _ops(result: Any) -> dict[str, int]:
    """The op histogram of a ``ModelSummary``, an optimize/quantize result (its ops after) or a Counter."""
    for attribute in ("ops", "after"):
        found = getattr(result, attribute, None)
        if found is not None:
            return dict(found)
    return dict(result)


def op_table(models: Mapping[str, Any], *, top: int | None = None, changed: bool = False) -> Any:
    """Op counts side by side: ``{label: ModelSummary, OptimizeResult or op Counter}`` -> DataFrame
    (op x label), most frequent first; ``changed=True`` keeps only the ops whose counts differ."""
    import pandas as pd

    frame = pd.DataFrame({label: _ops(m) for label, m in models.items()}).fillna(0).astype(int)
    if changed:
        frame = frame[frame.nunique(axis=1) > 1]
    frame = frame.loc[frame.max(axis=1).sort_values(ascending=False, kind="stable").index]
    frame.index.name = "op_type"
    return frame.head(top) if top else frame


def _at_sizes(info: Any, shape: Any) -> str:
    """``shape`` (from ``wb.infer_shapes``) written the way the summary writes ``info``'s shape."""
    return dataclasses.replace(info, dims=None if shape is None else tuple(shape)).shape_text


def inferred_shapes(summary: Any, *, at: Mapping[str, Any] | None = None, limit: int = 12) -> Any:
    """Intermediate values of a ``ModelSummary`` whose inferred shape depends on the inputs (a
    symbolic or unknown dimension), in graph order, with that shape; ``at`` (from
    ``wb.infer_shapes``) adds the shape at given input sizes."""
    import pandas as pd

    dynamic = [(name, info) for name, info in summary.intermediate.items()
               if info.dims is None or any(not isinstance(d, int) for d in info.dims)]
    rows = [[name, info.dtype, info.shape_text] + ([_at_sizes(info, at.get(name))] if at is not None else [])
            for name, info in dynamic[:limit]]
    columns = ["value", "dtype", "inferred shape"] + (["at these input sizes"] if at is not None else [])
    return pd.DataFrame(rows, columns=columns)


def tolerance_table(model: Any, onnx_models: Mapping[str, Any], inputs: Any) -> Any:
    """PyTorch against each ONNX model (``{label: onnx_model}``) on ``inputs``, compared once: the
    largest errors, whether the outputs pass at each preset, and the tightest preset that passes."""
    import pandas as pd

    import workbench as wb

    rows = []
    for label, onnx_model in onnx_models.items():
        comparison = wb.compare(model, onnx_model, inputs)
        verdicts = ["pass" if comparison.at(name) else "FAIL" for name in wb.TOLERANCES]
        rows.append([label, comparison.max_abs, comparison.max_rel, *verdicts,
                     comparison.smallest_passing_tolerance() or "none"])
    columns = ["model", "max abs", "max rel", *(f"at {n}" for n in wb.TOLERANCES), "tightest passing"]
    return pd.DataFrame(rows, columns=columns)


def files(folder: str | os.PathLike[str], pattern: str = "*") -> Any:
    """Files in ``folder`` matching ``pattern`` with their sizes."""
    import pandas as pd

    from workbench.core._format import fmt_bytes

    rows = [(p.name, p.stat().st_size, fmt_bytes(p.stat().st_size))
            for p in sorted(Path(folder).glob(pattern)) if p.is_file()]
    return pd.DataFrame(rows, columns=["file", "bytes", "size"])


def side_by_side(base: Any, other: Any, names: tuple[str, str] = ("fp32", "int8")) -> Any:
    """Median latency per (batch, seq) of two sweeps' ONNX Runtime rows, and their ratio
    (``other / base``: above 1 means ``other`` was slower in this run)."""
    import pandas as pd

    def medians(result: Any) -> Any:
        frame = result.to_pandas()
        frame = frame[(frame.config != "eager") & frame.error.isna()]
        return frame.groupby(["batch", "seq"], dropna=False).p50.min() * 1e3

    frame = pd.DataFrame({f"{names[0]} p50 ms": medians(base), f"{names[1]} p50 ms": medians(other)})
    frame[f"{names[1]} / {names[0]}"] = frame.iloc[:, 1] / frame.iloc[:, 0]
    return frame.round(3)


def slower_cells(table: Any) -> str:
    """A sentence naming the cells of a ``side_by_side`` table where the second model was slower."""
    ratio = table.columns[-1]
    slow = table[table[ratio] > 1.0]
    other, base = ratio.split(" / ")
    if slow.empty:
        return f"In this run {other} was not slower than {base} at any measured size."
    cells = ", ".join(f"batch {b}{'' if s != s else f' x seq {s}'} ({r:.2f}x)" for (b, s), r in slow[ratio].items())
    return f"In this run {other} was slower at: {cells}."


def levels_with_latency(levels: Mapping[str, Any], result: Any, batch: int, seq: int | None) -> Any:
    """``OptLevels`` (what ``viz.opt_levels_figure`` draws) from ``wb.optimize_levels`` results and a
    sweep that timed one config per level at (``batch``, ``seq``)."""
    import workbench as wb

    latency = {level: result.measurement(wb.SessionConfig(opt_level=level).label(), batch, seq) for level in levels}
    return wb.OptLevels(results=dict(levels), latency=latency)


def time_configs(onnx_model: Any, inputs: Any, configs: Mapping[str, Any], *, runs: int, warmup: int) -> Any:
    """Median and p95 latency of one session per named ``SessionConfig`` (``wb.benchmark``), and the
    CPU time the process spent per call (threads that spin between calls show up there, not in latency)."""
    import pandas as pd

    import workbench as wb

    rows = []
    for label, config in configs.items():
        cpu = time.process_time()
        m = wb.benchmark(onnx_model, inputs, runs=runs, warmup=warmup, label=label, config=config)
        cpu_per_call = (time.process_time() - cpu) / (runs + warmup)
        rows.append((label, config.intra_op_threads, config.inter_op_threads, config.execution_mode,
                     config.allow_spinning, m.p50 * 1e3, m.p95 * 1e3, cpu_per_call * 1e3, m.noisy))
    columns = ["config", "intra", "inter", "mode", "spinning", "p50 ms", "p95 ms", "cpu ms/call", "noisy"]
    return pd.DataFrame(rows, columns=columns).round(3)


# ---------------------------------------------------------------------------------------------
# The doctor's gallery
# ---------------------------------------------------------------------------------------------


def gallery_table() -> Any:
    """The doctor's gallery of broken models: name, category, the code it must find, what is broken."""
    import pandas as pd

    from workbench.zoo import broken

    return pd.DataFrame([(c.name, c.category, c.code, c.description) for c in broken.CASES],
                        columns=["case", "category", "code", "what is broken"])


def diagnose_cases(names: list[str], *, retry: bool = True) -> Any:
    """Run the doctor on gallery cases; one row per case: the code expected and found, whether the
    finding points at the right place, the automatic retry's verdict and the time taken."""
    import pandas as pd

    from workbench.doctor import gallery
    from workbench.zoo import broken

    rows = []
    for name in names:
        case = broken.get(name)
        diagnosis = gallery.diagnose_case(case, retry=retry)
        finding = diagnosis.finding(case.code)
        retry_ok = finding.retry.ok if finding is not None and finding.retry is not None else None
        problems = gallery.check(case, diagnosis)
        rows.append((name, case.code, ", ".join(diagnosis.codes), "yes" if not problems else "; ".join(problems),
                     {True: "passes", False: "still fails", None: "-"}[retry_ok], round(diagnosis.duration_s, 2)))
    return pd.DataFrame(rows, columns=["case", "expected", "found", "right place", "retry", "seconds"])


#: The operators of PyTorch's fused inference path for ``nn.TransformerEncoder`` / ``nn.MultiheadAttention``.
FAST_PATH_OPS = ("aten::_transformer_encoder_layer_fwd", "aten::_native_multi_head_attention")


def eager_fast_path(model: Any, inputs: Any) -> list[str]:
    """The fused fast-path operators PyTorch ran for one call of ``model`` under ``torch.inference_mode``
    (as ``wb.benchmark`` runs it), from the profiler; what the profiler prints is kept out of the notebook."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from workbench.core.capture import captured_output

    with captured_output(), torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
        model(*inputs)
    ran = {event.key for event in prof.key_averages()}
    return [op for op in FAST_PATH_OPS if op in ran]


def int8_reduce_range(weight_type: str = "qint8") -> dict[str, Any]:
    """What ``wb.quantize_dynamic`` chooses for ``reduce_range`` on this CPU, and its note (None where the
    CPU has VNNI or is not x86, so no 7-bit weights are needed)."""
    from workbench.core.quantize import resolve_reduce_range

    reduce_range, note = resolve_reduce_range(None, weight_type)
    return {"reduce_range": reduce_range, "note": note}
