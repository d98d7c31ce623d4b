"""IO binding: run ONNX Runtime on numpy arrays and torch tensors without copies, on CPU and CUDA.

``IOBinder(session, device)`` (``workbench.core.binder``) hands ONNX Runtime the raw pointers of
the caller's arrays, so a run reads and writes that memory directly; the decisions it makes are
listed there. ``bound_session`` opens a session and returns a binder with the inputs bound.
``cuda_graph_session`` adds CUDA graphs: the CUDA provider option ``enable_cuda_graph='1'``, fixed
device buffers, a first run that captures and later runs that replay, with ``update_inputs``
copying new data into the buffers.

This module is the public home of the IO binding API: the binder, its dtype, device and value
checks (``workbench.core._binding_checks``) and the session builders are all importable from here.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import onnxruntime as ort
import torch

from workbench.core._binding_checks import (
    CUDA_EP,
    INSTALL_GPU,
    TORCH_TO_NUMPY,
    Array,
    Device,
    Inputs,
    check_value,
    cuda_available,
    cuda_graph_refusal,
    graph_capture_enabled,
    parse_device,
    require_cuda,
    resolve_output_shapes,
    symbol_sizes,
)
from workbench.core._io import OnnxModel
from workbench.core.binder import BoundTensor, IOBinder
from workbench.core.session import SessionConfig, open_session
from workbench.errors import ProviderError

__all__ = [
    "CUDA_EP",
    "TORCH_TO_NUMPY",
    "Array",
    "BoundTensor",
    "Device",
    "IOBinder",
    "Inputs",
    "bound_session",
    "check_value",
    "cuda_available",
    "cuda_graph_session",
    "graph_capture_enabled",
    "parse_device",
    "require_cuda",
    "resolve_output_shapes",
    "session_config_for",
    "symbol_sizes",
]


def session_config_for(device: Device, config: SessionConfig | None = None, *,
                       cuda_graph: bool = False) -> SessionConfig:
    """``config`` with the CUDA provider first, on ``device``, with ``enable_cuda_graph`` when asked."""
    config = config or SessionConfig()
    if device.type == "cpu":
        return config
    providers = config.providers if CUDA_EP in config.providers else (CUDA_EP, *config.providers)
    cuda_options = {**config.provider_options.get(CUDA_EP, {}), "device_id": str(device.index)}
    if cuda_graph:
        cuda_options["enable_cuda_graph"] = "1"
    return config.replace(providers=providers, provider_options={**config.provider_options, CUDA_EP: cuda_options})


def _open(onnx_model: OnnxModel, config: SessionConfig, cuda_graph: bool) -> ort.InferenceSession:
    try:
        return open_session(onnx_model, config)
    except Exception as exc:
        refusal = cuda_graph_refusal(exc) if cuda_graph else None
        if refusal is not None:
            raise refusal from exc
        raise


def _place(value: Array, device: Device) -> Array:
    if device.type == "cpu":
        return value
    tensor = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
    if tensor.device == device.torch_device:
        return tensor
    return tensor.to(device.torch_device).contiguous()


def bound_session(onnx_model: OnnxModel, inputs: Inputs, *, device: str | torch.device = "cpu",
                  config: SessionConfig | None = None, cuda_graph: bool = False,
                  preallocate: bool = True, graph_id: int | None = None) -> IOBinder:
    """Open a session for ``onnx_model`` and return an ``IOBinder`` with ``inputs`` bound.

    On CPU the inputs are bound where they are (no copy); on CUDA, inputs not already on the
    device are copied there once, into buffers the binder owns. ``preallocate`` allocates the
    outputs on the device (``allocate_outputs``); otherwise ONNX Runtime allocates them each run.
    """
    dev = parse_device(device)
    if dev.type == "cuda":
        require_cuda(dev)
    elif cuda_graph:
        raise ProviderError(f"CUDA graphs need device='cuda:N', received device={str(dev)!r}. {INSTALL_GPU}")
    session = _open(onnx_model, session_config_for(dev, config, cuda_graph=cuda_graph), cuda_graph)
    binder = IOBinder(session, dev, graph_id=graph_id or 0)
    if isinstance(inputs, Mapping):
        placed: Inputs = {name: _place(value, dev) for name, value in inputs.items()}
    elif isinstance(inputs, (tuple, list)):
        placed = tuple(_place(value, dev) for value in inputs)
    else:
        placed = _place(inputs, dev)
    binder.bind_inputs(placed)
    if preallocate or cuda_graph:
        binder.allocate_outputs()
    else:
        binder.bind_outputs(None)
    return binder


def cuda_graph_session(onnx_model: OnnxModel, inputs: Inputs, *, device: str | torch.device = "cuda:0",
                       config: SessionConfig | None = None, graph_id: int | None = None) -> IOBinder:
    """A CUDA session with ``enable_cuda_graph='1'`` and fixed device buffers for ``inputs`` and outputs.

    The first ``run()`` captures the graph (ONNX Runtime warms up inside that call), later runs
    replay it. Feed new data with ``update_inputs(...)``, which copies into the same buffers;
    shapes cannot change. Raises ``ProviderError`` without CUDA.
    """
    return bound_session(onnx_model, inputs, device=device, config=config, cuda_graph=True, graph_id=graph_id)
