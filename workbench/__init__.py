"""onnx-workbench: export, inspect, validate, optimize, quantize, run and benchmark
PyTorch models with ONNX Runtime, from a notebook or the command line.

    >>> import workbench as wb
    >>> case = wb.zoo.get("text_classifier", smoke=True)
    >>> result = wb.export(case.model, case.example_inputs, "model.onnx", spec=case.spec)
    >>> wb.compare(case.model, result.out, case.make_inputs(batch=4, seq=16))

One vocabulary: ``model`` is the PyTorch ``nn.Module``; ``onnx_model`` an ONNX model (a path, a
``ModelProto`` or, where the function runs it, an ``InferenceSession``); ``inputs`` what a model
runs on; ``out`` a file a function writes; ``work_dir`` a folder of scratch files; then the
keyword-only ``tolerance=``, ``config=``, ``spec=``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version as _version
from typing import Any

from workbench import zoo
from workbench.core.bench import Measurement, benchmark
from workbench.core.cancel import Cancel, Progress
from workbench.core.case import ModelCase, as_case
from workbench.core.compare import Comparison, OutputDiff, compare, compare_arrays
from workbench.core.convert import ConvertResult, convert_opset
from workbench.core.export import ExportResult, check_spec, export
from workbench.core.flops import Peak, graph_flops, infer_shapes, machine_peak
from workbench.core.gate import accuracy_gate
from workbench.core.graph import ModelSummary, TensorInfo, op_histogram, summarize
from workbench.core.iobinding import IOBinder, bound_session, cuda_available, cuda_graph_session
from workbench.core.optimize import OptimizeResult, optimize, optimize_levels
from workbench.core.pipeline import STAGE_NAMES, Budget, PipelineRun, run_pipeline
from workbench.core.pipeline_results import Converted, OptLevels
from workbench.core.nodes import NodeRow, NodeStats, node_stats
from workbench.core.placement import Placement, placement
from workbench.core.probe import ProbeCase, ProbeReport, probe_shapes
from workbench.core.quantize import QuantizeResult, quantize_dynamic, to_fp16
from workbench.core.session import ALL_OPT_LEVELS, OPT_LEVELS, ProviderFallbackWarning, SessionConfig, load_session, open_session
from workbench.core.spec import ExportSpec
from workbench.core.serve import LoadResult, Server, load_test, serve
from workbench.core.stages import Stage, StageResult
from workbench.core.sweep import SweepResult, SweepRow, sweep
from workbench.core.tolerance import TOLERANCES
from workbench.core.transformer import TransformerOptimizeResult, transformer_optimize
from workbench.core.tune import Candidate, CandidateResult, TuneResult, tune
from workbench.errors import (ExportError, FeedError, InvalidInputError, ModelFileError, ProviderError, SpecError,
                              UnsupportedModelError, WorkbenchError, brief)

try:
    __version__ = _version("onnx-workbench")  # written once, in pyproject.toml
except PackageNotFoundError:  # pragma: no cover - running from a source tree that is not installed
    __version__ = "0+unknown"

# Loaded on first use: the UI layers import ipywidgets and plotly; the doctor is the heaviest part.
_LAZY_MODULES = ("widgets", "viz", "report", "doctor")
_DOCTOR_NAMES = ("Diagnosis", "Finding", "Retry", "diagnose", "export_with_diagnosis")

__all__ = [
    # Models to work on
    "ModelCase", "as_case", "zoo",
    # Export: PyTorch -> ONNX
    "ExportSpec", "ExportResult", "check_spec", "export",
    # Inspect: what the ONNX file holds
    "ModelSummary", "TensorInfo", "summarize", "op_histogram", "graph_flops", "infer_shapes",
    # Run: ONNX Runtime sessions, placement, IO binding
    "SessionConfig", "OPT_LEVELS", "ALL_OPT_LEVELS", "ProviderFallbackWarning", "open_session", "load_session",
    "Placement", "placement", "NodeRow", "NodeStats", "node_stats", "IOBinder", "bound_session", "cuda_graph_session", "cuda_available",
    # Validate: PyTorch vs ONNX Runtime
    "TOLERANCES", "Comparison", "OutputDiff", "compare", "compare_arrays", "ProbeCase", "ProbeReport",
    "probe_shapes", "accuracy_gate",
    # Optimize and convert
    "OptimizeResult", "optimize", "optimize_levels", "TransformerOptimizeResult", "transformer_optimize",
    "QuantizeResult", "quantize_dynamic", "to_fp16", "OptLevels", "Converted", "ConvertResult", "convert_opset",
    # Benchmark
    "Measurement", "benchmark", "SweepResult", "SweepRow", "sweep", "Peak", "machine_peak",
    # Tune: the fastest accurate ONNX Runtime configuration, against PyTorch's own
    "tune", "TuneResult", "Candidate", "CandidateResult",
    # The whole tour, and the stage machinery it shares with the doctor
    "PipelineRun", "Budget", "STAGE_NAMES", "run_pipeline", "Stage", "StageResult", "Cancel", "Progress",
    # Serve: a micro-batching HTTP server and its load test
    "serve", "Server", "load_test", "LoadResult",
    # Diagnose (the doctor)
    "Diagnosis", "Finding", "Retry", "diagnose", "export_with_diagnosis",
    # Errors
    "WorkbenchError", "InvalidInputError", "ModelFileError", "UnsupportedModelError", "SpecError", "FeedError",
    "ProviderError", "ExportError", "brief",
    # Version
    "__version__",
]


def __getattr__(name: str) -> Any:
    """``wb.widgets``, ``wb.viz``, ``wb.report`` and the doctor load on first use."""
    if name in _LAZY_MODULES:
        return importlib.import_module(f"workbench.{name}")
    if name in _DOCTOR_NAMES:
        return getattr(importlib.import_module("workbench.doctor"), name)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_LAZY_MODULES))
