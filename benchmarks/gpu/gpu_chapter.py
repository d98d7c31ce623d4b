#!/usr/bin/env python3
"""Real CUDA facts and figures for notebook 10 (issue 15's GPU chapter), recorded on a CUDA machine.

    OUT=results python benchmarks/gpu/gpu_chapter.py            # writes gpu_chapter.json and gpu_chapter.log
    python benchmarks/gpu/gpu_chapter.py --out results --quick  # fewer timed runs

Self-contained on purpose: it imports torch, onnx, onnxruntime, numpy and the standard library only, never
the workbench package, so it runs from any checkout on a machine with onnxruntime-gpu. Every section runs in
its own try/except: a failure is recorded as data (``error``/``traceback``) and the next section runs. The JSON
is rewritten after each section, so a run stopped by a timeout still leaves what it measured.

Without CUDA the same code runs on the CPU provider (so it can be checked anywhere); the CUDA-only sections
then record ``skipped``. Timings are per call: ``time.perf_counter`` around one call plus
``torch.cuda.synchronize()``, after warm-up; the JSON gives median, p10, p90 and the number of timed runs.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import ctypes
import gc
import importlib.metadata
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

CUDA_EP, CPU_EP, TRT_EP = "CUDAExecutionProvider", "CPUExecutionProvider", "TensorrtExecutionProvider"
RESULTS: dict = {}
RISKY_LAST: list = []  # (record, key, fn): misuse checks run after everything else
ARGS = argparse.Namespace(out=Path("."), quick=False)
_LOG = None
torch = None  # imported in section "dll_loading", after the ORT-only probes


# ---- plumbing -----------------------------------------------------------------------------------------

def log(*parts: object) -> None:
    text = " ".join(str(p) for p in parts)
    print(text, flush=True)
    if _LOG:
        _LOG.write(text + "\n")
        _LOG.flush()


def dump() -> None:
    (ARGS.out / "gpu_chapter.json").write_text(json.dumps(RESULTS, indent=1, default=str))


@contextlib.contextmanager
def section(name: str, needs_cuda: bool = False):
    rec: dict = RESULTS.setdefault(name, {})
    log(f"\n== {name}")
    start = time.perf_counter()
    try:
        if needs_cuda and not HAVE_CUDA:
            rec["skipped"] = "no CUDA (torch.cuda and the CUDA provider are both needed)"
            log("   skipped: no CUDA")
            yield None
        else:
            yield rec
    except Exception as exc:  # recorded as data; the next section runs
        rec["error"] = f"{type(exc).__name__}: {str(exc)[:2000]}"
        rec["traceback"] = traceback.format_exc(limit=8)[-4000:]
        log(f"   ERROR {rec['error'][:500]}")
    finally:
        rec["section_s"] = round(time.perf_counter() - start, 2)
        dump()


def attempt(rec: dict, key: str, fn, *args, **kwargs):
    """Run fn; on failure store the error under rec[key] and return None."""
    try:
        value = fn(*args, **kwargs)
        rec[key] = value
        return value
    except Exception as exc:
        rec[key] = {"error": f"{type(exc).__name__}: {str(exc)[:1500]}"}
        log(f"   {key}: ERROR {type(exc).__name__}: {str(exc)[:300]}")
        return None


class _Captured:
    text = ""


@contextlib.contextmanager
def capture_fds():
    """Capture what C++ code (ONNX Runtime's logger) writes to file descriptors 1 and 2."""
    cap = _Captured()
    sys.stdout.flush()
    sys.stderr.flush()
    tmp = tempfile.TemporaryFile()
    saved = os.dup(1), os.dup(2)
    os.dup2(tmp.fileno(), 1)
    os.dup2(tmp.fileno(), 2)
    try:
        yield cap
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        tmp.seek(0)
        cap.text = tmp.read().decode(errors="replace")
        tmp.close()


def tail(text: str, n: int = 3000) -> str:
    return text if len(text) <= n else "..." + text[-n:]


def sync() -> None:
    if HAVE_CUDA:
        torch.cuda.synchronize()


def timeit(fn, *, warmup: int = 10, budget_s: float = 1.0, min_runs: int = 30, max_runs: int = 1000,
           synchronize: bool = True) -> dict:
    """Per-call latency: perf_counter around fn() (+ cuda synchronize), after warm-up."""
    if ARGS.quick:
        budget_s, min_runs, max_runs, warmup = budget_s / 5, 10, 60, min(warmup, 3)
    for _ in range(warmup):
        fn()
    if synchronize:
        sync()
    t0 = time.perf_counter()
    fn()
    if synchronize:
        sync()
    estimate = max(time.perf_counter() - t0, 1e-6)
    runs = int(min(max_runs, max(min_runs, budget_s / estimate)))
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        if synchronize:
            sync()
        times.append(time.perf_counter() - t0)
    q = statistics.quantiles(times, n=10)
    return {"median_us": round(statistics.median(times) * 1e6, 1), "p10_us": round(q[0] * 1e6, 1),
            "p90_us": round(q[-1] * 1e6, 1), "mean_us": round(statistics.fmean(times) * 1e6, 1),
            "runs": runs, "warmup": warmup + 1}


def diff(a, b) -> dict:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    d = np.abs(a - b)
    scale = float(np.max(np.abs(b))) or 1.0
    return {"max_abs": float(d.max()), "mean_abs": float(d.mean()), "max_abs_over_max_ref": float(d.max() / scale),
            "allclose_1e-2": bool(np.allclose(a, b, rtol=1e-2, atol=1e-2)), "has_nan": bool(np.isnan(a).any())}


def cuda_libs_in_process() -> list[str]:
    keys = ("libcudart", "libcublas", "libcudnn.so", "libcufft", "libcurand", "libnvrtc", "libnvinfer",
            "libonnxruntime_providers")
    seen = []
    try:
        for line in Path("/proc/self/maps").read_text().splitlines():
            path = line.split()[-1] if "/" in line else ""
            if any(k in path for k in keys) and path not in seen:
                seen.append(path)
    except OSError:
        pass
    return seen


def pkg_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def providers_for(dev: str, **cuda_options) -> list:
    if dev == "cuda":
        return [(CUDA_EP, {"device_id": "0", **{k: str(v) for k, v in cuda_options.items()}}), CPU_EP]
    return [CPU_EP]


def session(model, providers, *, level=None, optimized_path=None, log_level=None) -> ort.InferenceSession:
    so = ort.SessionOptions()
    if level is not None:
        so.graph_optimization_level = level
    if optimized_path:
        so.optimized_model_filepath = str(optimized_path)
    if log_level is not None:
        so.log_severity_level = log_level
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return ort.InferenceSession(data, so, providers=providers)


def op_counts(model: onnx.ModelProto) -> dict:
    counts: dict = {}
    for node in model.graph.node:
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def placement_lines(text: str) -> list[str]:
    """The 'Node(s) placed on [...]' summary ONNX Runtime logs at verbose level."""
    lines, keep = [], 0
    for line in text.splitlines():
        if "placed on [" in line or "Node placements" in line:
            lines.append(line.split("] ", 1)[-1][:300])
            keep = 12
        elif keep and line.startswith(" "):
            lines.append(line.strip()[:200])
            keep -= 1
        else:
            keep = 0
    return lines[:60]


# ---- models -------------------------------------------------------------------------------------------

D_MODEL, HEADS, FF, LAYERS = 512, 8, 2048, 4
SHAPES = {"small b1 s32": (1, 32), "medium b8 s128": (8, 128), "large b32 s512": (32, 512)}


def torch_models():
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(D_MODEL), nn.LayerNorm(D_MODEL)
            self.qkv, self.proj = nn.Linear(D_MODEL, 3 * D_MODEL), nn.Linear(D_MODEL, D_MODEL)
            self.fc1, self.fc2 = nn.Linear(D_MODEL, FF), nn.Linear(FF, D_MODEL)

        def forward(self, x):
            b, t, c = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(c, dim=-1)
            q, k, v = (z.reshape(b, t, HEADS, c // HEADS).transpose(1, 2) for z in (q, k, v))
            att = torch.softmax((q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(c // HEADS)), dim=-1)
            y = (att @ v).transpose(1, 2).reshape(b, t, c)
            x = x + self.proj(y)
            return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.ln2(x))))

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
            self.ln = nn.LayerNorm(D_MODEL)

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return self.ln(x)

    mlp = nn.Sequential(nn.Linear(256, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 256))
    conv = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 128, 3, stride=2, padding=1),
                         nn.ReLU(), nn.Conv2d(128, 256, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 10))
    return Encoder().eval(), mlp.eval(), conv.eval()


def export(model, example, path: Path, dynamic: tuple | None) -> onnx.ModelProto:
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs = {"dynamic_shapes": dynamic} if dynamic else {}
        torch.onnx.export(model, example, str(path), dynamo=True, input_names=["x"], output_names=["y"],
                          external_data=False, **kwargs)
    return onnx.load(str(path))


def hand_models() -> dict[str, onnx.ModelProto]:
    """Small graphs for issue 15 item 7: what CUDA graphs accept."""
    f32 = TensorProto.FLOAT
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32), "W")

    def make(name, nodes, inputs, outputs, inits):
        graph = helper.make_graph(nodes, name, inputs, outputs, inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)

    x2 = helper.make_tensor_value_info("x", f32, ["B", 16])
    x3 = helper.make_tensor_value_info("x", f32, ["B", 4, 4])
    models = {}
    # 1. shape subgraph: Shape -> Gather -> Unsqueeze -> Concat feed Reshape (int64 work ORT puts on the CPU)
    models["shape_subgraph_no_memcpy"] = make("shape_subgraph", [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
        helper.make_node("Unsqueeze", ["b", "axes0"], ["b1"]),
        helper.make_node("Concat", ["b1", "four_four"], ["newshape"], axis=0),
        helper.make_node("Reshape", ["x", "newshape"], ["r"]),
        helper.make_node("MatMul", ["r", "W"], ["m"]),
        helper.make_node("Relu", ["m"], ["y"]),
    ], [x2], [helper.make_tensor_value_info("y", f32, ["B", 4, 4])], [
        w, numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array([0], np.int64), "axes0"),
        numpy_helper.from_array(np.array([4, 4], np.int64), "four_four")])
    # 2. a float op with no CUDA kernel (Det) between CUDA ops: ORT inserts MemcpyToHost / MemcpyFromHost
    models["cpu_op_with_memcpy"] = make("memcpy", [
        helper.make_node("MatMul", ["x", "W"], ["m"]),
        helper.make_node("Det", ["m"], ["d"]),
        helper.make_node("Mul", ["d", "two"], ["y"]),
    ], [x3], [helper.make_tensor_value_info("y", f32, ["B"])], [
        w, numpy_helper.from_array(np.array(2.0, np.float32), "two")])
    # 3. control flow: If on a bool input
    then_g = helper.make_graph([helper.make_node("Relu", ["x"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", f32, ["B", 4, 4])])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", f32, ["B", 4, 4])])
    models["control_flow_if"] = make("if", [
        helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g),
    ], [x3, helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", f32, ["B", 4, 4])], [])
    # 4. the plain chain (control): MatMul -> Relu
    models["plain_chain"] = make("chain", [
        helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Relu", ["m"], ["y"]),
    ], [x3], [helper.make_tensor_value_info("y", f32, ["B", 4, 4])], [w])
    for m in models.values():
        onnx.checker.check_model(m)
    return models


# ---- IO binding helpers -------------------------------------------------------------------------------

def bind(sess: ort.InferenceSession, inputs: dict, outputs: dict, dev: str):
    """Bind torch tensors (inputs and pre-allocated outputs) by address."""
    dtypes = {torch.float32: np.float32, torch.float16: np.float16, torch.bool: np.bool_, torch.int64: np.int64}
    b = sess.io_binding()
    for name, t in inputs.items():
        b.bind_input(name, dev, 0, dtypes[t.dtype], tuple(t.shape), t.data_ptr())
    for name, t in outputs.items():
        b.bind_output(name, dev, 0, dtypes[t.dtype], tuple(t.shape), t.data_ptr())
    return b


def run_options(**entries) -> ort.RunOptions:
    ro = ort.RunOptions()
    for k, v in entries.items():
        ro.add_run_config_entry(k, str(v))
    return ro


# ---- sections -----------------------------------------------------------------------------------------

PROBE = r"""
import json, sys
mode, path = sys.argv[1], sys.argv[2]
if mode == "import_torch_first":
    import torch
import onnxruntime as ort
def libs():
    keys = ("libcudart", "libcublas", "libcudnn.so", "libcufft", "libcurand", "libnvrtc", "providers_cuda")
    out = []
    for line in open("/proc/self/maps"):
        p = line.split()[-1] if "/" in line else ""
        if any(k in p for k in keys) and p not in out:
            out.append(p)
    return out
info = {"mode": mode, "available": ort.get_available_providers()}
if mode == "preload_dlls":
    info["has_preload_dlls"] = hasattr(ort, "preload_dlls")
    ort.preload_dlls()
    info["libs_after_preload"] = libs()
try:
    s = ort.InferenceSession(path, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    info["session_providers"] = s.get_providers()
except Exception as e:
    info["session_error"] = f"{type(e).__name__}: {e}"[:1500]
info["libs_after_session"] = libs()
print("PROBE_JSON " + json.dumps(info), flush=True)
"""


def sec_dll_loading(rec: dict, tiny_path: Path) -> None:
    """Fresh processes: CUDA session with ORT alone, after preload_dlls(), after import torch."""
    rec["LD_LIBRARY_PATH"] = os.environ.get("LD_LIBRARY_PATH", "(unset)")
    rec["preload_dlls_exists"] = hasattr(ort, "preload_dlls")
    if hasattr(ort, "preload_dlls"):
        rec["preload_dlls_doc"] = (ort.preload_dlls.__doc__ or "").strip()[:1200]
    for mode in ("ort_alone", "preload_dlls", "import_torch_first"):
        proc = subprocess.run([sys.executable, "-c", PROBE, mode, str(tiny_path)], capture_output=True,
                              text=True, timeout=180)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("PROBE_JSON ")), None)
        entry = json.loads(line[len("PROBE_JSON "):]) if line else {"returncode": proc.returncode}
        other = "\n".join(ln for ln in (proc.stdout + proc.stderr).splitlines() if not ln.startswith("PROBE_JSON"))
        entry["output_tail"] = tail(other, 1500)
        rec[mode] = entry
        log(f"   {mode}: session providers {entry.get('session_providers')} {entry.get('session_error', '')[:200]}")


def sec_versions(rec: dict) -> None:
    rec["python"] = sys.version.split()[0]
    rec["platform"] = platform.platform()
    rec["onnxruntime"] = ort.__version__
    rec["onnxruntime_package"] = pkg_version("onnxruntime-gpu") and "onnxruntime-gpu" or "onnxruntime"
    rec["onnxruntime_file"] = ort.__file__
    with contextlib.suppress(Exception):
        from onnxruntime.capi import build_and_package_info as bpi
        rec["ort_build_cuda_version"] = getattr(bpi, "cuda_version", None)
        rec["ort_build_cudnn_version"] = getattr(bpi, "cudnn_version", None)
    with contextlib.suppress(Exception):
        rec["ort_build_info"] = ort.get_build_info()
    rec["ort_device"] = ort.get_device()
    rec["available_providers"] = ort.get_available_providers()
    rec["torch"] = torch.__version__
    rec["torch_cuda"] = torch.version.cuda
    rec["torch_cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    rec["onnx"] = onnx.__version__
    rec["numpy"] = np.__version__
    rec["onnxscript"] = pkg_version("onnxscript")
    rec["nvidia_wheels"] = {n: pkg_version(n) for n in (
        "nvidia-cuda-runtime", "nvidia-cublas", "nvidia-cudnn-cu13", "nvidia-cufft", "nvidia-curand",
        "nvidia-cuda-nvrtc", "nvidia-nvjitlink", "tensorrt", "tensorrt-cu13")}
    with contextlib.suppress(Exception):
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap,"
                              "clocks.max.sm,clocks.max.mem,power.limit", "--format=csv"],
                             capture_output=True, text=True, timeout=30)
        rec["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
        head = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30).stdout
        rec["nvidia_smi_header"] = "\n".join(head.splitlines()[:4])
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        rec["gpu"] = {"name": p.name, "capability": f"{p.major}.{p.minor}", "sms": p.multi_processor_count,
                      "memory_gib": round(p.total_memory / 2**30, 1)}
    log("  ", {k: rec.get(k) for k in ("onnxruntime", "ort_build_cuda_version", "torch", "torch_cuda",
                                       "torch_cudnn", "available_providers")})


def sec_libs(rec: dict) -> None:
    """Which CUDA/cuDNN libraries this process has loaded, and the versions they report."""
    rec["loaded"] = loaded = cuda_libs_in_process()
    path_of = lambda key, default: next((p for p in loaded if key in p), default)  # noqa: E731
    cudart = path_of("libcudart", "libcudart.so.13")
    for key, fn in (("cudart_runtime_version", "cudaRuntimeGetVersion"),
                    ("cudart_driver_version", "cudaDriverGetVersion")):
        try:
            v = ctypes.c_int()
            getattr(ctypes.CDLL(cudart), fn)(ctypes.byref(v))
            rec[key] = v.value
        except Exception as exc:
            rec[key] = f"{type(exc).__name__}: {exc}"
    try:
        rec["cudnn_get_version"] = ctypes.CDLL(path_of("libcudnn.so", "libcudnn.so.9")).cudnnGetVersion()
    except Exception as exc:
        rec["cudnn_get_version"] = f"{type(exc).__name__}: {exc}"
    if hasattr(ort, "print_debug_info"):
        with capture_fds() as cap:
            ort.print_debug_info()
        rec["print_debug_info"] = tail(cap.text, 4000)


def sec_providers(rec: dict, path: Path, dev: str) -> None:
    """Asked-for providers vs what the built session uses (the silent fallback)."""
    cases = {
        "cuda_cpu": [CUDA_EP, CPU_EP],
        "cuda_only_listed": [CUDA_EP],
        "tensorrt_cuda_cpu": [TRT_EP, CUDA_EP, CPU_EP],
        "cuda_bad_device_id_7": [(CUDA_EP, {"device_id": "7"}), CPU_EP],
        "cuda_unknown_option": [(CUDA_EP, {"no_such_option": "1"}), CPU_EP],
    }
    import warnings
    warnings.simplefilter("always")  # ORT's "not in available provider names" warning, every time
    for name, providers in cases.items():
        entry = {}
        with capture_fds() as cap:
            try:
                t0 = time.perf_counter()
                s = ort.InferenceSession(str(path), providers=providers)
                entry["create_s"] = round(time.perf_counter() - t0, 3)
                entry["session_providers"] = s.get_providers()
                if name == "cuda_cpu" and CUDA_EP in s.get_providers():
                    entry["provider_options"] = s.get_provider_options().get(CUDA_EP)
                del s
            except Exception as exc:
                entry["error"] = f"{type(exc).__name__}: {str(exc)[:1200]}"
        entry["log"] = tail(cap.text.strip(), 1500)
        rec[name] = entry
        log(f"   {name}: {entry.get('session_providers', entry.get('error', '')[:200])}")


def sec_export(rec: dict, work: Path) -> dict:
    enc, mlp, conv = torch_models()
    Dim = torch.export.Dim
    models = {}
    t0 = time.perf_counter()
    x = torch.randn(2, 16, D_MODEL)
    models["transformer"] = export(enc, (x,), work / "transformer.onnx",
                                   ({0: Dim("batch", min=1, max=64), 1: Dim("seq", min=2, max=1024)},))
    rec["transformer_export_s"] = round(time.perf_counter() - t0, 2)
    models["mlp"] = export(mlp, (torch.randn(4, 256),), work / "mlp.onnx", ({0: Dim("batch", min=1, max=4096)},))
    models["conv"] = export(conv, (torch.randn(8, 3, 224, 224),), work / "conv.onnx", None)
    for name, m in models.items():
        rec[name] = {"opset": next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")),
                     "ir_version": m.ir_version, "nodes": len(m.graph.node), "ops": op_counts(m),
                     "inputs": [str(i.type.tensor_type.shape).replace("\n", " ") for i in m.graph.input]}
    rec["transformer_params_M"] = round(sum(p.numel() for p in enc.parameters()) / 1e6, 2)
    rec["config"] = {"d_model": D_MODEL, "heads": HEADS, "ff": FF, "layers": LAYERS}
    log(f"   transformer ops: {rec['transformer']['ops']}")
    return {"torch": {"transformer": enc, "mlp": mlp, "conv": conv}, "onnx": models}


def sec_iobinding(rec: dict, models: dict, dev: str) -> None:
    """Plain session.run with host numpy vs IO binding of torch device tensors, three sizes."""
    m = models["onnx"]["transformer"]
    sess = session(m, providers_for(dev))
    rec["session_providers"] = sess.get_providers()
    cpu_ref = session(m, [CPU_EP])
    gen = torch.Generator().manual_seed(0)
    for label, (b, t) in SHAPES.items():
        if ARGS.quick and b > 8:
            continue
        entry = {}
        host = torch.randn(b, t, D_MODEL, generator=gen)
        xnp = host.numpy()
        ref = cpu_ref.run(None, {"x": xnp})[0]
        entry["input_MiB"] = round(host.numel() * 4 / 2**20, 2)
        out_plain = sess.run(None, {"x": xnp})[0]
        entry["plain_vs_cpu_ep"] = diff(out_plain, ref)
        entry["plain_run_numpy"] = timeit(lambda: sess.run(None, {"x": xnp}))
        xd = host.to(dev)
        yd = torch.empty_like(xd)
        binding = bind(sess, {"x": xd}, {"y": yd}, dev)
        sync()
        sess.run_with_iobinding(binding)
        sync()
        entry["bound_vs_plain"] = diff(yd.cpu().numpy(), out_plain)
        entry["iobinding_torch_preallocated"] = timeit(lambda: sess.run_with_iobinding(binding))
        # ORT allocates the output on the device each run (bind_output by device only)
        b2 = sess.io_binding()
        b2.bind_input("x", dev, 0, np.float32, tuple(xd.shape), xd.data_ptr())
        b2.bind_output("y", dev, 0)
        entry["iobinding_ort_allocated_output"] = timeit(lambda: sess.run_with_iobinding(b2))
        p = entry["plain_run_numpy"]["median_us"]
        entry["speedup_preallocated_vs_plain"] = round(p / entry["iobinding_torch_preallocated"]["median_us"], 2)
        rec[label] = entry
        log(f"   {label}: plain {p} us, bound {entry['iobinding_torch_preallocated']['median_us']} us, "
            f"ort-alloc {entry['iobinding_ort_allocated_output']['median_us']} us "
            f"(runs {entry['plain_run_numpy']['runs']}/{entry['iobinding_torch_preallocated']['runs']})")
        del xd, yd, binding, b2


def _mem_used() -> int | None:
    if not HAVE_CUDA:
        return None
    free, total = torch.cuda.mem_get_info()
    return total - free


def sec_provider_options(rec: dict, models: dict, dev: str) -> None:
    """CUDA provider options: effective defaults, then latency/memory of variants (transformer + conv)."""
    variants = {
        "default": {},
        "arena_kSameAsRequested": {"arena_extend_strategy": "kSameAsRequested"},
        "cudnn_conv_algo_search_HEURISTIC": {"cudnn_conv_algo_search": "HEURISTIC"},
        "cudnn_conv_algo_search_DEFAULT": {"cudnn_conv_algo_search": "DEFAULT"},
        "do_copy_in_default_stream_0": {"do_copy_in_default_stream": "0"},
        "use_tf32_0": {"use_tf32": "0"},
    }
    gen = torch.Generator().manual_seed(1)
    work = {"transformer": torch.randn(8, 128, D_MODEL, generator=gen),
            "conv": torch.randn(8, 3, 224, 224, generator=gen)}
    for model_name, host in work.items():
        m = models["onnx"][model_name]
        ref = session(m, [CPU_EP]).run(None, {"x": host.numpy()})[0]
        per = {}
        for vname, opts in variants.items():
            if ARGS.quick and vname not in ("default", "cudnn_conv_algo_search_HEURISTIC"):
                continue
            entry = {}
            gc.collect()
            before = _mem_used()
            t0 = time.perf_counter()
            sess = session(m, providers_for(dev, **opts))
            entry["create_s"] = round(time.perf_counter() - t0, 3)
            if dev == "cuda":
                entry["effective"] = {k: v for k, v in sess.get_provider_options().get(CUDA_EP, {}).items()
                                      if k in ("device_id", "arena_extend_strategy", "cudnn_conv_algo_search",
                                               "do_copy_in_default_stream", "use_tf32", "gpu_mem_limit",
                                               "cudnn_conv_use_max_workspace", "enable_cuda_graph")}
            xnp = host.numpy()
            t0 = time.perf_counter()
            out = sess.run(None, {"x": xnp})[0]
            entry["first_run_ms"] = round((time.perf_counter() - t0) * 1e3, 2)
            entry["vs_cpu_ep"] = diff(out, ref)
            entry["plain_run_numpy"] = timeit(lambda: sess.run(None, {"x": xnp}), budget_s=0.75)
            xd = host.to(dev)
            yd = torch.empty(out.shape, device=dev)
            binding = bind(sess, {"x": xd}, {"y": yd}, dev)
            entry["iobinding"] = timeit(lambda: sess.run_with_iobinding(binding), budget_s=0.75)
            after = _mem_used()
            if before is not None:
                entry["device_mem_delta_MiB"] = round((after - before) / 2**20, 1)
            per[vname] = entry
            log(f"   {model_name} {vname}: plain {entry['plain_run_numpy']['median_us']} us, "
                f"bound {entry['iobinding']['median_us']} us, first run {entry['first_run_ms']} ms, "
                f"mem {entry.get('device_mem_delta_MiB')} MiB, max|diff| {entry['vs_cpu_ep']['max_abs']:.2e}")
            del sess, binding, xd, yd
        rec[model_name] = per
        if dev == "cuda":
            all_defaults = session(m, providers_for(dev)).get_provider_options().get(CUDA_EP)
            rec["all_default_cuda_options"] = all_defaults


def sec_user_stream(rec: dict, models: dict) -> None:
    """user_compute_stream = torch's stream: torch pre-processing -> ORT -> torch post-processing, no host sync."""
    m = models["onnx"]["transformer"]
    stream = torch.cuda.Stream()
    rec["torch_stream_ptr"] = hex(stream.cuda_stream)
    sess_u = session(m, providers_for("cuda", user_compute_stream=stream.cuda_stream))
    rec["session_providers"] = sess_u.get_providers()
    opts = sess_u.get_provider_options().get(CUDA_EP, {})
    rec["effective"] = {k: opts.get(k) for k in ("user_compute_stream", "has_user_compute_stream")}
    sess_d = session(m, providers_for("cuda"))
    gen = torch.Generator().manual_seed(2)
    src = torch.randn(8, 128, D_MODEL, generator=gen).cuda()
    ref = session(m, [CPU_EP]).run(None, {"x": (src.cpu() * 0.5).numpy()})[0] * 2.0
    xin = torch.empty_like(src)
    yout = torch.empty_like(src)
    no_sync = run_options(disable_synchronize_execution_providers=1)
    bu = bind(sess_u, {"x": xin}, {"y": yout}, "cuda")
    xin2, yout2 = torch.empty_like(src), torch.empty_like(src)
    bd = bind(sess_d, {"x": xin2}, {"y": yout2}, "cuda")

    def pipeline_user_stream_no_sync():
        with torch.cuda.stream(stream):
            xin.copy_(src)
            xin.mul_(0.5)
            sess_u.run_with_iobinding(bu, no_sync)
            return yout * 2.0

    def pipeline_user_stream_default_sync():
        with torch.cuda.stream(stream):
            xin.copy_(src)
            xin.mul_(0.5)
            sess_u.run_with_iobinding(bu)
            return yout * 2.0

    def pipeline_own_stream_with_syncs():
        xin2.copy_(src)
        xin2.mul_(0.5)
        torch.cuda.synchronize()  # ORT runs on its own stream: torch's writes must be finished
        sess_d.run_with_iobinding(bd)
        return yout2 * 2.0

    for name, fn in (("user_stream_disable_sync", pipeline_user_stream_no_sync),
                     ("user_stream_default_sync", pipeline_user_stream_default_sync),
                     ("own_stream_explicit_sync", pipeline_own_stream_with_syncs)):
        entry = {}
        worst = 0.0
        ok = True
        for _ in range(20):  # repeated: a missing dependency shows as an occasional wrong result
            yout.fill_(float("nan"))
            yout2.fill_(float("nan"))
            torch.cuda.synchronize()  # the fills run on torch's default stream, not on the one under test
            out = fn()
            torch.cuda.synchronize()
            d = diff(out.cpu().numpy(), ref)
            worst = max(worst, d["max_abs"])
            ok = ok and d["allclose_1e-2"] and not d["has_nan"]
        entry["correct_20_of_20"] = ok
        entry["worst_max_abs_vs_cpu_ep"] = worst
        entry["latency"] = timeit(fn)
        rec[name] = entry
        log(f"   {name}: correct {ok}, worst {worst:.2e}, median {entry['latency']['median_us']} us")


def sec_cuda_graphs(rec: dict, models: dict) -> None:
    """enable_cuda_graph with two shapes captured under gpu_graph_id 1 and 2, replayed alternately."""
    gen = torch.Generator().manual_seed(3)
    for model_name, shapes in (("transformer", {1: (1, 32, D_MODEL), 2: (8, 128, D_MODEL)}),
                               ("mlp", {1: (16, 256), 2: (256, 256)})):
        entry: dict = {}
        rec[model_name] = entry
        try:
            _graphs_one(entry, model_name, models["onnx"][model_name], shapes, gen)
        except Exception as exc:
            entry["error"] = f"{type(exc).__name__}: {str(exc)[:1500]}"
            entry["traceback"] = traceback.format_exc(limit=6)[-3000:]
            log(f"   {model_name}: ERROR {entry['error'][:300]}")
        dump()


def _graphs_one(entry: dict, model_name: str, m, shapes: dict, gen) -> None:
    entry["ops"] = op_counts(m)
    try:
        with capture_fds() as cap:
            sg = session(m, providers_for("cuda", enable_cuda_graph=1))
        entry["session_log"] = tail(cap.text.strip(), 1500)
    except Exception as exc:
        entry["session_log"] = tail(cap.text.strip(), 1500)
        entry["refused"] = f"{type(exc).__name__}: {str(exc)[:1500]}"
        log(f"   {model_name}: CUDA graph session refused: {entry['refused'][:300]}")
        return
    entry["session_providers"] = sg.get_providers()
    with capture_fds() as cap:
        plain = session(m, providers_for("cuda"), log_level=0)
    entry["no_graph_node_placement"] = placement_lines(cap.text)
    bufs = {}
    for gid, shape in shapes.items():
        x = torch.randn(*shape, generator=gen).cuda()
        y_shape = plain.run(None, {"x": x.cpu().numpy()})[0].shape
        y = torch.full(y_shape, float("nan"), device="cuda")
        bufs[gid] = (x, y, bind(sg, {"x": x}, {"y": y}, "cuda"), run_options(gpu_graph_id=gid))
    torch.cuda.synchronize()
    captures = {}
    for gid, (x, y, b, ro) in bufs.items():  # first runs: ORT runs normally, then captures
        t0 = time.perf_counter()
        for _ in range(3):
            sg.run_with_iobinding(b, ro)
        torch.cuda.synchronize()
        captures[gid] = round((time.perf_counter() - t0) * 1e3, 2)
    entry["first_3_runs_ms"] = captures
    checks = []
    for step in range(6):  # alternate graphs with new data written in place
        gid = 1 + step % 2
        x, y, b, ro = bufs[gid]
        x.copy_(torch.randn(*x.shape, generator=gen))
        y.fill_(float("nan"))
        torch.cuda.synchronize()  # ORT runs on its own stream
        sg.run_with_iobinding(b, ro)
        torch.cuda.synchronize()
        expect = plain.run(None, {"x": x.cpu().numpy()})[0]
        d = diff(y.cpu().numpy(), expect)
        checks.append({"graph_id": gid, "max_abs_vs_no_graph": d["max_abs"], "ok": d["allclose_1e-2"]
                       and not d["has_nan"]})
    entry["alternating_replays"] = checks
    entry["all_replays_correct"] = all(c["ok"] for c in checks)
    timing = {}
    for gid, (x, y, b, ro) in bufs.items():
        xn = x.clone()
        yn = torch.empty_like(y)
        bn = bind(plain, {"x": xn}, {"y": yn}, "cuda")
        timing[f"graph_{gid}_shape_{tuple(x.shape)}"] = {
            "graph_replay": timeit(lambda b=b, ro=ro: sg.run_with_iobinding(b, ro)),
            "iobinding_no_graph": timeit(lambda bn=bn: plain.run_with_iobinding(bn)),
            "plain_run_numpy": timeit(lambda xh=x.cpu().numpy(): plain.run(None, {"x": xh})),
        }
        t = timing[f"graph_{gid}_shape_{tuple(x.shape)}"]
        log(f"   {model_name} graph {gid} {tuple(x.shape)}: replay {t['graph_replay']['median_us']} us, "
            f"bound {t['iobinding_no_graph']['median_us']} us, plain {t['plain_run_numpy']['median_us']} us")
    entry["timing"] = timing
    # a third shape: gpu_graph_id=-1 runs without capture on the same session
    x3 = torch.randn(*((4,) + shapes[1][1:]), generator=gen).cuda()
    y3 = torch.full(plain.run(None, {"x": x3.cpu().numpy()})[0].shape, float("nan"), device="cuda")
    b3 = bind(sg, {"x": x3}, {"y": y3}, "cuda")

    def third():
        torch.cuda.synchronize()
        sg.run_with_iobinding(b3, run_options(gpu_graph_id=-1))
        torch.cuda.synchronize()
        return {"note": "shape (4, ...) on the graph session with gpu_graph_id=-1 (no capture)",
                **diff(y3.cpu().numpy(), plain.run(None, {"x": x3.cpu().numpy()})[0])}
    attempt(entry, "third_shape_graph_id_minus_1", third)

    # reusing graph id 1 for a new shape/new buffers after capture: error, or a silent replay?
    def reuse():
        y3.fill_(float("nan"))
        torch.cuda.synchronize()
        sg.run_with_iobinding(b3, bufs[1][3])
        torch.cuda.synchronize()
        return {"note": "new buffers bound, run with gpu_graph_id=1 already captured for another shape",
                "new_output_written": not bool(torch.isnan(y3).any()),
                **diff(y3.cpu().numpy(), plain.run(None, {"x": x3.cpu().numpy()})[0])}
    RISKY_LAST.append((entry, "reuse_captured_graph_id_with_new_buffers", reuse))  # may upset the CUDA context
    log(f"   {model_name}: replays correct {entry['all_replays_correct']}, first runs {captures}")


def sec_item7(rec: dict, dev: str, work: Path) -> None:
    """Issue 15 item 7: CPU shape subgraphs, Memcpy nodes and control flow under enable_cuda_graph."""
    rng = np.random.default_rng(5)
    levels = {"opt_disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "opt_default": None}
    for name, m in hand_models().items():
        for level_name, level in levels.items():
            entry: dict = {}
            rec[f"{name}/{level_name}"] = entry
            _item7_one(entry, f"{name}/{level_name}", m, level, dev, work, rng)


def _item7_one(entry: dict, name: str, m, level, dev: str, work: Path, rng) -> None:
    feeds = ({"x": rng.standard_normal((3, 16)).astype(np.float32)} if name.startswith("shape")
             else {"x": rng.standard_normal((3, 4, 4)).astype(np.float32)})
    if name.startswith("control_flow_if"):
        feeds["c"] = np.array(True)
    ref = session(m, [CPU_EP]).run(None, feeds)[0]
    opt_path = work / f"{name.replace('/', '_')}_optimized.onnx"
    with capture_fds() as cap:
        s = session(m, providers_for(dev), level=level, optimized_path=opt_path, log_level=0)
    entry["node_placement"] = placement_lines(cap.text)
    entry["optimized_graph_ops"] = op_counts(onnx.load(str(opt_path)))
    entry["memcpy_nodes"] = sum(v for k, v in entry["optimized_graph_ops"].items() if "Memcpy" in k)
    entry["no_graph_vs_cpu"] = diff(s.run(None, feeds)[0], ref)
    if dev != "cuda":
        entry["cuda_graph"] = "skipped: no CUDA"
        return
    try:
        with capture_fds() as cap:
            sg = session(m, providers_for("cuda", enable_cuda_graph=1), level=level)
        entry["cuda_graph_session"] = "created"
        entry["cuda_graph_log"] = tail(cap.text.strip(), 800)
    except Exception as exc:
        entry["cuda_graph_session"] = "refused"
        entry["cuda_graph_error"] = f"{type(exc).__name__}: {str(exc)[:1200]}"
        entry["cuda_graph_log"] = tail(cap.text.strip(), 800)
        log(f"   {name}: memcpy {entry['memcpy_nodes']}, graph REFUSED: {entry['cuda_graph_error'][:250]}")
        return
    # replay with IO binding; inputs updated in place
    xt = torch.from_numpy(feeds["x"]).cuda()
    inputs = {"x": xt}
    if "c" in feeds:
        inputs["c"] = torch.tensor(True).cuda()
    yt = torch.full(ref.shape, float("nan"), device="cuda")
    b = bind(sg, inputs, {"y": yt}, "cuda")
    results = []
    try:
        for _ in range(4):
            new = rng.standard_normal(feeds["x"].shape).astype(np.float32)
            xt.copy_(torch.from_numpy(new))
            yt.fill_(float("nan"))
            torch.cuda.synchronize()
            sg.run_with_iobinding(b)
            torch.cuda.synchronize()
            f = dict(feeds, x=new)
            results.append({"vs_cuda_no_graph": diff(yt.cpu().numpy(), s.run(None, f)[0])["max_abs"],
                            "vs_cpu_ep": diff(yt.cpu().numpy(), session(m, [CPU_EP]).run(None, f)[0])["max_abs"]})
        entry["replays_max_abs"] = results
        entry["replays_correct"] = all(r["vs_cuda_no_graph"] < 1e-5 and r["vs_cpu_ep"] < 1e-2 for r in results)
    except Exception as exc:
        entry["run_error"] = f"{type(exc).__name__}: {str(exc)[:1200]}"
    log(f"   {name}: memcpy nodes {entry['memcpy_nodes']}, graph session {entry['cuda_graph_session']}, "
        f"replays correct {entry.get('replays_correct')} {entry.get('run_error', '')[:200]}")


def sec_fp16(rec: dict, models: dict, dev: str) -> None:
    """FP16 with keep_io_types, with and without LayerNormalization/Softmax kept in fp32."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16
    m32 = models["onnx"]["transformer"]
    rec["note"] = ("op_block_list replaces DEFAULT_OP_BLOCK_LIST when given, so the block list used here is "
                   "DEFAULT_OP_BLOCK_LIST + [LayerNormalization, Softmax]")
    block = list(DEFAULT_OP_BLOCK_LIST) + ["LayerNormalization", "Softmax"]
    shared = {}
    for node in m32.graph.node:
        if node.op_type in ("LayerNormalization", "Softmax"):
            for name in node.input:
                shared[name] = shared.get(name, 0) + 1
    rec["inputs_shared_by_several_blocked_nodes"] = {k: v for k, v in shared.items() if v > 1}
    blocked = convert_float_to_float16(copy.deepcopy(m32), keep_io_types=True, op_block_list=block)
    names = [n.name for n in blocked.graph.node]
    dupes = sorted({n for n in names if names.count(n) > 1})
    rec["converter_duplicate_cast_nodes"] = {"count": len(names) - len(set(names)), "names": dupes[:10]}
    try:
        session(blocked, [CPU_EP])
        rec["converter_output_loads"] = True
    except Exception as exc:
        rec["converter_output_loads"] = f"{type(exc).__name__}: {str(exc)[:600]}"
    if dupes:  # ORT 1.31's converter adds one identical Cast per consumer of a shared input: keep the first
        seen: set = set()
        keep = []
        for node in blocked.graph.node:
            if node.op_type == "Cast" and node.name in dupes and node.name in seen:
                continue
            seen.add(node.name)
            keep.append(node)
        del blocked.graph.node[:]
        blocked.graph.node.extend(keep)
        rec["workaround"] = "duplicate Cast nodes (same name, input and output) removed after conversion"
    variants = {
        "fp32": m32,
        # convert_float_to_float16 edits the model it is given in place: hand each call its own copy
        "fp16_keep_io": convert_float_to_float16(copy.deepcopy(m32), keep_io_types=True),
        "fp16_keep_io_block_ln_softmax": blocked,
    }
    gen = torch.Generator().manual_seed(4)
    torch_model = models["torch"]["transformer"]
    for label, (b, t) in SHAPES.items():
        if label.startswith("small") or (ARGS.quick and b > 8):
            continue
        host = torch.randn(b, t, D_MODEL, generator=gen)
        with torch.inference_mode():
            eager = torch_model(host).numpy()
        per = {"eager_torch_cpu_fp32_reference": True}
        outs = {}
        for vname, m in variants.items():
            entry = {}
            if label.startswith("medium"):
                rec.setdefault("ops", {})[vname] = op_counts(m)
            sess = session(m, providers_for(dev))
            entry["session_providers"] = sess.get_providers()
            out = sess.run(None, {"x": host.numpy()})[0]
            outs[vname] = out
            entry["output_dtype"] = str(out.dtype)
            entry["vs_torch_eager_fp32"] = diff(out, eager)
            xd = host.to(dev)
            yd = torch.empty_like(xd)
            binding = bind(sess, {"x": xd}, {"y": yd}, dev)
            entry["iobinding"] = timeit(lambda: sess.run_with_iobinding(binding), budget_s=0.75)
            per[vname] = entry
            log(f"   {label} {vname}: {entry['iobinding']['median_us']} us, max|diff| vs eager "
                f"{entry['vs_torch_eager_fp32']['max_abs']:.3e}, mean {entry['vs_torch_eager_fp32']['mean_abs']:.3e}")
            del sess, binding, xd, yd
        rec[label] = per


# ---- main ---------------------------------------------------------------------------------------------

HAVE_CUDA = False


def main(argv=None) -> int:
    global _LOG, HAVE_CUDA, torch
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "."))
    parser.add_argument("--quick", action="store_true", help="fewer timed runs and sizes (a syntax/logic check)")
    parser.add_argument("--only", default="", help="comma-separated section names to run (default: all)")
    args = parser.parse_args(argv)
    ARGS.out, ARGS.quick = args.out, args.quick
    ARGS.out.mkdir(parents=True, exist_ok=True)
    _LOG = open(ARGS.out / "gpu_chapter.log", "w")
    only = set(filter(None, args.only.split(",")))
    want = lambda name: not only or name in only  # noqa: E731
    RESULTS["meta"] = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "argv": sys.argv, "quick": args.quick,
                       "timing": "per call: perf_counter around one call + torch.cuda.synchronize(), after warm-up"}
    work = Path(tempfile.mkdtemp(prefix="gpu_chapter_"))
    tiny = hand_models()["plain_chain"]
    tiny_path = work / "tiny.onnx"
    onnx.save(tiny, str(tiny_path))

    if want("dll_loading"):
        with section("dll_loading") as rec:
            sec_dll_loading(rec, tiny_path)
    import torch as _torch
    torch = _torch
    HAVE_CUDA = bool(torch.cuda.is_available() and CUDA_EP in ort.get_available_providers())
    dev = "cuda" if HAVE_CUDA else "cpu"
    RESULTS["meta"]["device"] = dev
    with section("versions") as rec:
        sec_versions(rec)
    models = None
    with section("export") as rec:
        models = sec_export(rec, work)
    if want("providers"):
        with section("providers") as rec:
            sec_providers(rec, work / "transformer.onnx", dev)
    with section("libs") as rec:
        sec_libs(rec)
    if models and want("iobinding"):
        with section("iobinding") as rec:
            sec_iobinding(rec, models, dev)
    if models and want("provider_options"):
        with section("provider_options") as rec:
            sec_provider_options(rec, models, dev)
    if models and want("user_compute_stream"):
        with section("user_compute_stream", needs_cuda=True) as rec:
            if rec is not None:
                sec_user_stream(rec, models)
    if models and want("fp16"):
        with section("fp16") as rec:
            sec_fp16(rec, models, dev)
    # the sections that capture CUDA graphs come last: a failed capture can leave the CUDA context unusable
    if want("item7_cuda_graph_rules"):
        with section("item7_cuda_graph_rules") as rec:
            sec_item7(rec, dev, work)
    if models and want("cuda_graphs"):
        with section("cuda_graphs", needs_cuda=True) as rec:
            if rec is not None:
                sec_cuda_graphs(rec, models)
    if RISKY_LAST:
        with section("cuda_graphs_misuse") as rec:
            for entry, key, fn in RISKY_LAST:
                attempt(entry, key, fn)
                log(f"   {key}: {str(entry[key])[:300]}")
    RESULTS["meta"]["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    errors = [k for k, v in RESULTS.items() if isinstance(v, dict) and "error" in v]
    RESULTS["meta"]["sections_with_errors"] = errors
    dump()
    log(f"\nwrote {ARGS.out / 'gpu_chapter.json'}; sections with errors: {errors or 'none'}")
    _LOG.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
