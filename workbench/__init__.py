"""onnx-workbench: export, inspect, validate, optimize, quantize, run and benchmark
PyTorch models with ONNX Runtime, from a notebook or the command line.

    >>> import workbench as wb
    >>> zm = wb.zoo.get("text_classifier", smoke=True)
    >>> result = wb.export(zm.model, zm.example_inputs, "model.onnx", zm.spec)
    >>> wb.compare(zm.model, result.path, zm.make_inputs(batch=4, seq=16))
"""

from __future__ import annotations

from workbench import zoo
from workbench.core.bench import Measurement, benchmark
from workbench.core.compare import TOLERANCES, Comparison, OutputDiff, compare, compare_arrays
from workbench.core.export import ExportResult, check_spec, export
from workbench.core.flops import Peak, graph_flops, machine_peak
from workbench.core.graph import ModelSummary, TensorInfo, summarize
from workbench.core.gate import accuracy_gate
from workbench.core.optimize import OptimizeResult, optimize
from workbench.core.pipeline import PipelineRun, StageResult, run_pipeline
from workbench.core.placement import Placement, placement
from workbench.core.probe import ProbeCase, ProbeReport, probe_shapes
from workbench.core.iobinding import IOBinder, bound_session, cuda_available, cuda_graph_session
from workbench.core.quantize import QuantizeResult, quantize_dynamic, to_fp16
from workbench.core.session import ProviderFallbackWarning, SessionConfig, open_session
from workbench.core.spec import ExportSpec
from workbench.core.sweep import SweepResult, SweepRow, sweep
from workbench.core.transformer import TransformerOptimizeResult, transformer_optimize
from workbench.doctor import Diagnosis, Finding, Retry, diagnose, export_with_diagnosis
from workbench.errors import (CancelledError, ExportError, FeedError, InvalidInputError, ModelFileError,
                              ProviderError, SpecError, WorkbenchError)

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``wb.widgets`` and ``wb.viz`` load on first use: they import ipywidgets and plotly."""
    if name in ("widgets", "viz", "report"):
        import importlib

        return importlib.import_module(f"workbench.{name}")
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")

__all__ = [
    "CancelledError", "Comparison", "Diagnosis", "Finding", "Retry", "diagnose", "export_with_diagnosis", "PipelineRun", "StageResult", "run_pipeline", "IOBinder", "SweepRow", "accuracy_gate", "bound_session",
    "cuda_available", "cuda_graph_session", "ExportError", "ExportResult", "ExportSpec", "FeedError",
    "InvalidInputError", "Measurement", "ModelFileError", "ModelSummary", "OptimizeResult", "OutputDiff",
    "Peak", "Placement", "ProbeCase", "ProbeReport", "ProviderError", "ProviderFallbackWarning",
    "QuantizeResult", "SessionConfig", "SpecError", "SweepResult", "TOLERANCES", "TensorInfo",
    "TransformerOptimizeResult", "WorkbenchError", "__version__", "benchmark", "check_spec", "compare",
    "compare_arrays", "export", "graph_flops", "machine_peak", "open_session", "optimize", "placement",
    "probe_shapes", "quantize_dynamic", "summarize", "sweep", "to_fp16", "transformer_optimize", "zoo",
]
