"""The project's recorded GPU run, as tables for notebook 10 where this machine has no CUDA.

    >>> from workbench.teaching import gpu_run
    >>> gpu_run.caption()            # which machine, which versions, how it was timed
    >>> gpu_run.cuda_graphs()        # a pandas DataFrame per topic

Every number comes from ``data/gpu_chapter.json``, a trimmed copy of
``benchmarks/gpu/results/gpu_chapter.json`` (one run of ``benchmarks/gpu/gpu_chapter.py`` on an
NVIDIA H200 on 2026-11-28; ``benchmarks/gpu/README.md`` describes the method). Nothing here is
measured on this machine, and nothing is made up: a figure the run did not record is not shown.
Timings are medians of single calls in µs, shown as ``median [p10–p90] n=runs``; the same shape
timed in separate sessions of that run differed by up to ~45%, so only rows of one table compare.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import pandas as pd

_FILE = "gpu_chapter.json"


@functools.cache
def _load() -> dict[str, Any]:
    return json.loads(resources.files("workbench.teaching").joinpath("data", _FILE).read_text(encoding="utf-8"))


def load() -> dict[str, Any]:
    """The recorded run as a dict (a fresh copy: callers may change it)."""
    return json.loads(json.dumps(_load()))


def timing(stats: dict[str, Any]) -> str:
    """One timing as ``median [p10–p90] n=runs`` (µs)."""
    return f"{stats['median_us']:.0f} [{stats['p10_us']:.0f}–{stats['p90_us']:.0f}] n={stats['runs']}"


def caption() -> str:
    """Where and how the figures were recorded: the machine, the versions, the timing method."""
    data = _load()
    m = data["machine"]
    return (f"Recorded {data['meta']['started']} on one {m['gpu']} (compute capability {m['compute_capability']}, "
            f"{m['memory_gib']} GiB), driver {m['driver']} (CUDA {m['driver_cuda']}), {m['onnxruntime_package']} "
            f"{m['onnxruntime']} built for CUDA {m['ort_build_cuda_version']}, torch {m['torch']} "
            f"(cuDNN {m['torch_cudnn']}), onnx {m['onnx']}. Timing: {data['meta']['timing']}; "
            "values in µs as median [p10–p90] n=timed runs. One run on one machine: rerun "
            "benchmarks/gpu/gpu_chapter.py on yours.")


def machine() -> pd.DataFrame:
    """The recording machine and its software versions."""
    m = _load()["machine"]
    rows = [(k, ", ".join(v) if isinstance(v, list) else v) for k, v in m.items() if k != "nvidia_wheels"]
    rows += [(f"wheel {k}", v) for k, v in m["nvidia_wheels"].items()]
    return pd.DataFrame(rows, columns=["what", "value"]).set_index("what")


def _where(libs: list[str], stem: str) -> str:
    found = [lib for lib in libs if f"/{stem}" in lib]
    return found[0] if found else "(not loaded)"


def dll_loading() -> pd.DataFrame:
    """Which cudart and cuDNN the CUDA session loaded, by what the process did first."""
    data = _load()["dll_loading"]
    steps = {"ort_alone": "import onnxruntime only", "preload_dlls": "onnxruntime.preload_dlls() first",
             "import_torch_first": "import torch first"}
    rows = [{"process": label, "session providers": ", ".join(data[key]["session_providers"]),
             "cudart": _where(data[key]["libs_after_session"], "libcudart"),
             "cuDNN": _where(data[key]["libs_after_session"], "libcudnn.so")} for key, label in steps.items()]
    return pd.DataFrame(rows).set_index("process")


_ASKED = {"cuda_cpu": "CUDA, CPU", "cuda_only_listed": "CUDA only", "tensorrt_cuda_cpu": "TensorRT, CUDA, CPU",
          "cuda_bad_device_id_7": "CUDA device_id=7 (one GPU)", "cuda_unknown_option": "CUDA with an unknown option"}


def providers() -> pd.DataFrame:
    """Providers asked for against ``session.get_providers()`` after creation (no exception in any row)."""
    data = _load()["providers"]
    rows = [{"asked for": label, "get_providers()": ", ".join(data[key]["session_providers"]),
             "ORT said (stderr/log)": " | ".join(data[key]["ort_said"]) or "nothing"} for key, label in _ASKED.items()]
    return pd.DataFrame(rows).set_index("asked for")


def iobinding() -> pd.DataFrame:
    """The transformer: ``session.run`` with numpy against IO binding of torch CUDA tensors."""
    rows = []
    for size, s in _load()["iobinding"].items():
        rows.append({"shape": size.split(" ", 1)[1].replace(" ", "×"), "input MiB": s["input_MiB"],
                     "session.run numpy": timing(s["plain_run_numpy"]),
                     "IO binding, torch output": timing(s["iobinding_torch_preallocated"]),
                     "IO binding, ORT output": timing(s["iobinding_ort_allocated_output"]),
                     "speedup": round(s["plain_run_numpy"]["median_us"]
                                      / s["iobinding_torch_preallocated"]["median_us"], 2),
                     "bound vs run max|diff|": s["bound_vs_plain_max_abs"]})
    return pd.DataFrame(rows).set_index("shape")


def provider_options() -> pd.DataFrame:
    """CUDA provider options, one session each: the transformer (b8×s128) and the conv net (b8)."""
    data = _load()["provider_options"]
    rows = []
    for variant, t in data["transformer"].items():
        c = data["conv"][variant]
        rows.append({"variant": variant, "transformer bound": timing(t["iobinding"]),
                     "conv first run ms": c["first_run_ms"], "conv bound": timing(c["iobinding"]),
                     "conv device MiB": c["device_mem_delta_MiB"],
                     "max|diff| vs CPU EP (transformer)": t["vs_cpu_ep_max_abs"],
                     "max|diff| vs CPU EP (conv)": c["vs_cpu_ep_max_abs"]})
    return pd.DataFrame(rows).set_index("variant")


def default_cuda_options() -> dict[str, str]:
    """The CUDA provider's effective options with nothing set (``get_provider_options()``)."""
    return dict(_load()["provider_options"]["defaults"])


def user_stream() -> pd.DataFrame:
    """torch pre-processing -> ORT (IO binding) -> torch post-processing, b8×s128, 20 checked runs each."""
    data = _load()["user_compute_stream"]
    labels = {"user_stream_disable_sync": "ORT on torch's stream, disable_synchronize_execution_providers=1",
              "user_stream_default_sync": "ORT on torch's stream, default run options",
              "own_stream_explicit_sync": "ORT on its own stream, torch.cuda.synchronize() first"}
    rows = [{"variant": label, "correct 20/20": data[key]["correct_20_of_20"], "latency": timing(data[key]["latency"])}
            for key, label in labels.items()]
    return pd.DataFrame(rows).set_index("variant")


def fp16() -> pd.DataFrame:
    """fp32 against fp16 (``keep_io_types``), with and without LayerNorm+Softmax kept in fp32."""
    data = _load()["fp16"]
    labels = {"fp32": "fp32", "fp16_keep_io": "fp16, keep_io_types",
              "fp16_keep_io_block_ln_softmax": "fp16, keep_io_types, LayerNorm+Softmax fp32"}
    medium, large = data["medium b8 s128"], data["large b32 s512"]
    rows = [{"model": label, "b8×s128": timing(medium[key]["iobinding"]), "b32×s512": timing(large[key]["iobinding"]),
             "max|diff| vs torch fp32 (b32×s512)": large[key]["max_abs"],
             "mean|diff|": large[key]["mean_abs"], "Cast nodes": data["cast_nodes"][key]}
            for key, label in labels.items()]
    return pd.DataFrame(rows).set_index("model")


def fp16_converter_bug() -> dict[str, Any]:
    """What ``convert_float_to_float16(op_block_list=...)`` of ORT 1.31.1 did to a shared initializer."""
    data = _load()["fp16"]
    return {k: data[k] for k in ("note", "inputs_shared_by_several_blocked_nodes", "converter_duplicate_cast_nodes",
                                 "converter_output_loads", "workaround")}


def cuda_graphs() -> pd.DataFrame:
    """Two CUDA graphs in one session (``gpu_graph_id`` 1 and 2): replay against no graph."""
    rows = []
    for model in ("transformer", "mlp"):
        m = _load()["cuda_graphs"][model]
        for key, t in m["timing"].items():
            graph_id, shape = key.split("_shape_")
            gid = graph_id.rsplit("_", 1)[1]
            rows.append({"model": model, "gpu_graph_id": int(gid), "shape": shape,
                         "graph replay": timing(t["graph_replay"]), "IO binding, no graph": timing(t["iobinding_no_graph"]),
                         "session.run numpy": timing(t["plain_run_numpy"]),
                         "first 3 runs ms (capture)": m["first_3_runs_ms"][gid],
                         "replays correct": m["all_replays_correct"]})
    return pd.DataFrame(rows).set_index(["model", "gpu_graph_id"])


def graph_misuse() -> dict[str, Any]:
    """What happened when a captured graph id ran with new buffers of another shape, and with id -1."""
    data = _load()["cuda_graphs"]
    return {"captured_id_on_new_buffers": data["reuse_captured_graph_id"],
            "graph_id_minus_1_third_shape": data["third_shape_graph_id_minus_1"],
            "transformer_placement": data["transformer"]["placement"],
            "ort_warning": data["transformer"]["warning"]}


def graph_rules() -> pd.DataFrame:
    """Which small graphs ``enable_cuda_graph`` accepted or refused, and why."""
    rows = []
    for key, s in _load()["cuda_graph_rules"].items():
        model, opt = key.split("/")
        rows.append({"model": model, "optimizations": opt.replace("opt_", ""), "placement": "; ".join(p.strip() for p in s["placement"]),
                     "Memcpy nodes": s["memcpy_nodes"], "CUDA graph session": s["session"],
                     "ORT's error": (s["error"] or "").split("FAIL : ")[-1]})
    return pd.DataFrame(rows).set_index(["model", "optimizations"])
