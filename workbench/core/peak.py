"""``machine_peak``: how many GFLOP/s (float) and GOP/s (int8) this machine's GEMMs reach, so an
achieved rate can be read against it.

Measured the way sessions run: a float32 matmul both with ``torch.matmul`` and with an ONNX
Runtime ``MatMul`` session on the same thread count (the best of the two counts: a peak below
what a sweep reaches would make "of peak" exceed 1), and an int8 GEMM with ONNX Runtime's
``MatMulInteger`` (uint8 x int8, the path its dynamic quantization takes; VNNI where the CPU has
it). Each runs warm-up calls and several timed repeats; best and median are kept. The result is
measured once per process and arguments (thread-safe) and cached.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from workbench.core._checks import is_int, is_number
from workbench.core._format import esc, fmt_time
from workbench.errors import InvalidInputError

__all__ = ["Peak", "PeakSource", "cpu_int8_extension", "machine_peak"]

#: The square GEMM size when none is given: large enough that a call takes milliseconds on a few
#: cores and the cores' arithmetic, not the call's overhead, sets the time.
DEFAULT_SIZE = 1024
_WARMUP = 2


@dataclass(frozen=True)
class PeakSource:
    """One way of measuring: ``name`` (e.g. ``"torch.matmul"``), ``size`` x ``size`` GEMMs of ``dtype``
    on ``threads`` threads, the seconds of each timed call (or the ``error`` that stopped it)."""

    name: str
    dtype: str
    size: int
    threads: int
    raw_times: tuple[float, ...] = ()
    error: str | None = None

    @property
    def ops(self) -> int:
        """Operations of one GEMM: ``2 * size**3`` (a multiply and an add per term)."""
        return 2 * self.size**3

    @property
    def median(self) -> float:
        return statistics.median(self.raw_times) if self.raw_times else float("nan")

    @property
    def best(self) -> float:
        """Giga-operations per second at the fastest call (0 when it did not run)."""
        return self.ops / min(self.raw_times) / 1e9 if self.raw_times else 0.0

    @property
    def typical(self) -> float:
        """Giga-operations per second at the median call (0 when it did not run)."""
        return self.ops / self.median / 1e9 if self.raw_times else 0.0

    def __repr__(self) -> str:
        if self.error:
            return f"PeakSource({self.name}: failed: {self.error[:120]})"
        return f"PeakSource({self.name}: best {self.best:.1f}, median {self.typical:.1f} G/s, {len(self.raw_times)} calls)"


@dataclass(frozen=True)
class Peak:
    """A measured GEMM peak. ``raw_times`` are the timed calls of the fastest float way of measuring
    (``source``), ``size`` x ``size`` of ``dtype`` on ``threads`` threads; ``sources`` holds every
    way tried; ``int8`` the int8 GEMM measurement (``None`` if not measured) and ``int8_extension``
    the CPU's int8 dot-product extension (``"avx512_vnni"``, ``"avx_vnni"``, ``""`` for none, ``None``
    when unknown). ``gflops``/``int8_gops`` are at the median call, ``best_*`` at the fastest."""

    size: int
    dtype: str
    threads: int
    raw_times: tuple[float, ...]
    source: str = "torch.matmul"
    sources: tuple[PeakSource, ...] = field(default=(), repr=False)
    int8: PeakSource | None = None
    int8_extension: str | None = None

    @property
    def flops(self) -> int:
        """FLOPs of one matmul: ``2 * size**3``."""
        return 2 * self.size**3

    @property
    def median(self) -> float:
        return statistics.median(self.raw_times)

    @property
    def gflops(self) -> float:
        """GFLOP/s at the median time."""
        return self.flops / self.median / 1e9

    @property
    def best_gflops(self) -> float:
        """GFLOP/s at the fastest time."""
        return self.flops / min(self.raw_times) / 1e9

    @property
    def int8_gops(self) -> float | None:
        """Int8 GOP/s at the median call (``None`` if not measured)."""
        return self.int8.typical if self.int8 is not None and self.int8.raw_times else None

    @property
    def int8_best_gops(self) -> float | None:
        """Int8 GOP/s at the fastest call (``None`` if not measured)."""
        return self.int8.best if self.int8 is not None and self.int8.raw_times else None

    @property
    def vnni(self) -> bool | None:
        """Whether the CPU has VNNI (int8 dot products in one instruction); ``None`` when unknown."""
        return None if self.int8_extension is None else bool(self.int8_extension)

    def best_for(self, precision: str) -> float | None:
        """The best rate to read a model of ``precision`` against: the int8 peak for ``"int8"``,
        the float peak for this peak's own dtype, else ``None``."""
        if precision == "int8":
            return self.int8_best_gops
        return self.best_gflops if precision == self.dtype else None

    def __repr__(self) -> str:
        text = (f"Peak({self.best_gflops:.1f} GFLOP/s best, {self.gflops:.1f} median; {self.size}x{self.size} "
                f"{self.dtype} matmul by {self.source} on {self.threads} threads, {len(self.raw_times)} repeats, "
                f"median {fmt_time(self.median)}")
        if self.int8_best_gops is not None:
            text += f"; int8 {self.int8_best_gops:.1f} GOP/s best, {self.int8_gops:.1f} median"
        if self.int8_extension is not None:
            text += f", {'VNNI: ' + self.int8_extension if self.int8_extension else 'no VNNI'}"
        return text + ")"

    def to_pandas(self) -> Any:
        """One row per way of measuring: name, dtype, size, threads, calls, best and median G/s, error."""
        import pandas as pd

        every = [*self.sources, *([self.int8] if self.int8 is not None else [])]
        return pd.DataFrame([{"source": s.name, "dtype": s.dtype, "size": s.size, "threads": s.threads,
                              "calls": len(s.raw_times), "best G/s": round(s.best, 2),
                              "median G/s": round(s.typical, 2), "error": s.error} for s in every])

    def _repr_html_(self) -> str:
        return f"<code>{esc(repr(self))}</code>"


def cpu_int8_extension(cpuinfo: str | Path = "/proc/cpuinfo") -> str | None:
    """``"avx512_vnni"`` or ``"avx_vnni"`` when the CPU flags list it, ``""`` when they list neither,
    ``None`` when the flags cannot be read (not Linux)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return None
    flags = {f for line in text.splitlines() if line.startswith("flags") for f in line.partition(":")[2].split()}
    if not flags:
        return None
    return next((f for f in ("avx512_vnni", "avx_vnni") if f in flags), "")


def _time(call: Callable[[], Any], repeats: int, max_seconds: float) -> tuple[float, ...]:
    for _ in range(_WARMUP):
        call()
    times: list[float] = []
    deadline = time.perf_counter() + max_seconds
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() < deadline):
        start = time.perf_counter_ns()
        call()
        times.append((time.perf_counter_ns() - start) / 1e9)
    return tuple(times)


def _torch_source(size: int, dtype: str, threads: int, repeats: int, max_seconds: float) -> PeakSource:
    import torch

    from workbench.core.bench import torch_threads  # holds TORCH_LOCK while the count is changed

    with torch_threads(threads):
        generator = torch.Generator().manual_seed(0)
        a = torch.randn(size, size, generator=generator).to(getattr(torch, dtype))
        b = torch.randn(size, size, generator=generator).to(getattr(torch, dtype))
        out = torch.empty_like(a)
        times = _time(lambda: torch.matmul(a, b, out=out), repeats, max_seconds)
    return PeakSource("torch.matmul", dtype, size, threads, times)


def _ort_source(name: str, op: str, size: int, threads: int, repeats: int, max_seconds: float) -> PeakSource:
    """An ONNX Runtime session of one ``op`` (``MatMul`` in float32, ``MatMulInteger`` u8 x s8)."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    integer = op == "MatMulInteger"
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (size, size), dtype=np.uint8) if integer else rng.standard_normal((size, size), np.float32)
    b = rng.integers(-127, 127, (size, size), dtype=np.int8) if integer else rng.standard_normal((size, size), np.float32)
    a_type, out_type = (TensorProto.UINT8, TensorProto.INT32) if integer else (TensorProto.FLOAT, TensorProto.FLOAT)
    graph = helper.make_graph([helper.make_node(op, ["a", "b"], ["y"])], "peak",
                              [helper.make_tensor_value_info("a", a_type, [size, size])],
                              [helper.make_tensor_value_info("y", out_type, [size, size])],
                              initializer=[numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        feed = {"a": a}
        times = _time(lambda: session.run(None, feed), repeats, max_seconds)
    except Exception as exc:  # noqa: BLE001 - a way of measuring that fails is reported, not raised
        return PeakSource(name, "int8" if integer else "float32", size, threads, (), f"{type(exc).__name__}: {exc}")
    return PeakSource(name, "int8" if integer else "float32", size, threads, times)


def _torch_dtype_name(dtype: Any) -> str:
    import numpy as np
    import torch

    if isinstance(dtype, torch.dtype):
        result = dtype
    else:
        try:
            result = torch.from_numpy(np.zeros(1, dtype=np.dtype(dtype))).dtype
        except TypeError as exc:
            raise InvalidInputError(
                f"dtype must be a numpy or torch floating dtype such as 'float32', received {dtype!r}."
            ) from exc
    if not result.is_floating_point:
        raise InvalidInputError(
            f"machine_peak's dtype is the float matmul's, received dtype {dtype!r}: a floating-point type is "
            "needed. Use float32 (the int8 peak is measured alongside: int8=True)."
        )
    return str(result).replace("torch.", "")


_CACHE: dict[tuple[Any, ...], Peak] = {}
_CACHE_LOCK = threading.Lock()


def machine_peak(
    *, size: int | None = None, dtype: Any = "float32", threads: int | None = None, repeats: int = 50,
    max_seconds: float = 1.0, int8: bool = True, refresh: bool = False,
) -> Peak:
    """Measure this machine's GEMM peak (once per process and arguments; ``refresh=True`` measures again).

    A ``size`` x ``size`` matmul (default 1024) of ``dtype`` with ``torch.matmul`` and, for float32,
    with an ONNX Runtime ``MatMul`` session on the same ``threads`` (default torch's current count);
    the faster gives ``raw_times``. ``int8=True`` also measures ONNX Runtime's ``MatMulInteger``
    (uint8 x int8) and reads the CPU's VNNI flag. Each way runs two warm-up calls, then up to
    ``repeats`` timed ones, stopping early (after at least three) once ``max_seconds`` is spent;
    the best call counts (on a busy machine some calls get the cores to themselves), the median is
    kept beside it.
    """
    import torch

    size = DEFAULT_SIZE if size is None else size
    if not is_int(size, 16):
        raise InvalidInputError(f"size must be an int >= 16, received {size!r}. Try 1024.")
    if not is_int(repeats, 3):
        raise InvalidInputError(f"repeats must be an int >= 3, received {repeats!r}.")
    if threads is not None and not is_int(threads, 1):
        raise InvalidInputError(f"threads must be an int >= 1 or None, received {threads!r}.")
    if not is_number(max_seconds):
        raise InvalidInputError(f"max_seconds must be a number of seconds >= 0, received {max_seconds!r}.")
    key = (size, _torch_dtype_name(dtype), threads or torch.get_num_threads(), repeats, float(max_seconds), bool(int8))
    with _CACHE_LOCK:  # one measurement at a time: two threads asking at once get the same Peak
        if refresh or key not in _CACHE:
            _CACHE[key] = _measure(*key)
        return _CACHE[key]


def _measure(size: int, dtype: str, threads: int, repeats: int, max_seconds: float, int8: bool) -> Peak:
    sources = [_torch_source(size, dtype, threads, repeats, max_seconds)]
    if dtype == "float32":
        sources.append(_ort_source("onnxruntime MatMul", "MatMul", size, threads, repeats, max_seconds))
    best = max((s for s in sources if s.raw_times), key=lambda s: s.best)
    int8_source = (_ort_source("onnxruntime MatMulInteger u8s8", "MatMulInteger", size, threads, repeats, max_seconds)
                   if int8 else None)
    return Peak(size=size, dtype=dtype, threads=threads, raw_times=best.raw_times, source=best.name,
                sources=tuple(sources), int8=int8_source, int8_extension=cpu_int8_extension() if int8 else None)
