"""What IO binding checks before it hands ONNX Runtime a raw pointer: dtypes, devices, values.

The dtype table maps ONNX Runtime's type strings to torch dtypes, numpy types (from
``feeds.ORT_TO_NUMPY``) and the element type ``bind_input``/``bind_output`` take. ``check_value``
checks one array or tensor against the graph's ``NodeArg`` (dtype, rank, fixed sizes, layout);
``symbol_sizes`` and ``resolve_output_shapes`` work out named axes. ``Device``, ``parse_device``,
``require_cuda`` and ``check_session_on`` say where memory is and whether CUDA can be used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence, Union

import numpy as np
import onnxruntime as ort
import torch
from onnx import TensorProto

from workbench.core.feeds import ORT_TO_NUMPY, ORT_TO_TORCH
from workbench.errors import FeedError, InvalidInputError, ProviderError, describe

Array = Union[np.ndarray, torch.Tensor]
Inputs = Union[Mapping[str, Array], Sequence[Array], Array]

CUDA_EP = "CUDAExecutionProvider"
INSTALL_GPU = (
    "Install a CUDA build of torch and onnxruntime-gpu in place of onnxruntime "
    "(pip uninstall -y onnxruntime && pip install onnx-workbench[gpu]) on a machine with an NVIDIA "
    "GPU, or use device='cpu' (IO binding works on CPU too)."
)


@dataclass(frozen=True)
class DType:
    onnx: str  # ONNX Runtime's type string
    torch: torch.dtype
    numpy: Any  # numpy scalar type, None where numpy has none (bfloat16)
    element_type: Any  # what bind_input/bind_output take: a numpy type or an ONNX enum value


def _dtype(onnx_type: str, torch_dtype: torch.dtype) -> DType:
    numpy_type = ORT_TO_NUMPY.get(onnx_type)
    if numpy_type is not None:
        return DType(onnx_type, torch_dtype, numpy_type, numpy_type)
    enum = TensorProto.DataType.Value(onnx_type[len("tensor("):-1].upper())  # 'tensor(bfloat16)' -> BFLOAT16
    return DType(onnx_type, torch_dtype, None, enum)


DTYPES = tuple(_dtype(onnx_type, torch_dtype) for onnx_type, torch_dtype in ORT_TO_TORCH.items())
BY_ONNX = {d.onnx: d for d in DTYPES}
_BY_TORCH = {d.torch: d for d in DTYPES}
_BY_NUMPY = {np.dtype(d.numpy): d for d in DTYPES if d.numpy is not None}
TORCH_TO_NUMPY: dict[torch.dtype, Any] = {d.torch: d.numpy for d in DTYPES if d.numpy is not None}


@dataclass(frozen=True)
class Device:
    """Where a binder puts outputs and device buffers: ``cpu`` or ``cuda:N``."""

    type: str
    index: int = 0

    def __str__(self) -> str:
        return "cpu" if self.type == "cpu" else f"cuda:{self.index}"

    @property
    def torch_device(self) -> torch.device:
        return torch.device(str(self))


def cuda_available() -> bool:
    """Whether CUDA IO binding can run here: torch sees a GPU and onnxruntime has the CUDA provider."""
    return torch.cuda.is_available() and CUDA_EP in ort.get_available_providers()


def parse_device(device: str | torch.device | Device) -> Device:
    """``'cpu'``, ``'cuda'``, ``'cuda:1'`` or a ``torch.device`` as a ``Device``; nothing is checked."""
    if isinstance(device, Device):
        return device
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidInputError(
            f"device must be 'cpu', 'cuda' or 'cuda:N', received {device!r}."
        ) from exc
    if parsed.type not in ("cpu", "cuda"):
        raise InvalidInputError(
            f"IO binding supports device 'cpu' or 'cuda:N', received {device!r}. Use one of those."
        )
    if parsed.type == "cpu":
        return Device("cpu", 0)
    index = parsed.index
    if index is None:
        index = torch.cuda.current_device() if torch.cuda.is_available() else 0
    return Device("cuda", index)


def require_cuda(device: Device) -> None:
    """Raise ``ProviderError`` unless CUDA IO binding can run on ``device`` here."""
    if cuda_available() and device.index < torch.cuda.device_count():
        return
    if cuda_available():
        raise ProviderError(
            f"device {str(device)!r} asked, but torch sees {torch.cuda.device_count()} CUDA device(s). "
            "Use an index below that, e.g. 'cuda:0'."
        )
    missing = []
    if not torch.cuda.is_available():
        missing.append(f"torch {torch.__version__} sees no CUDA device (torch.cuda.is_available() is False)")
    if CUDA_EP not in ort.get_available_providers():
        available = ", ".join(ort.get_available_providers())
        missing.append(f"onnxruntime {ort.__version__} has no {CUDA_EP} (available: {available})")
    raise ProviderError(
        f"device {str(device)!r} asked, but CUDA is not available: {'; '.join(missing)}. {INSTALL_GPU}"
    )


def graph_capture_enabled(session: ort.InferenceSession) -> bool:
    """Whether ``session`` was built with the CUDA provider option ``enable_cuda_graph``."""
    options = session.get_provider_options().get(CUDA_EP, {})
    return str(options.get("enable_cuda_graph", "0")).lower() in ("1", "true")


def value_dtype(name: str, value: Any, role: str) -> DType:
    """The table row of a numpy array's or torch tensor's dtype; ``FeedError`` if it has none."""
    if isinstance(value, torch.Tensor):
        found = _BY_TORCH.get(value.dtype)
    elif isinstance(value, np.ndarray):
        found = _BY_NUMPY.get(value.dtype)
    else:
        raise FeedError(
            f"{role} {name!r} must be a numpy array or a torch tensor, received {describe(value)}. "
            "Convert it with np.asarray(...) or torch.as_tensor(...)."
        )
    if found is None:
        raise FeedError(
            f"{role} {name!r} has dtype {value.dtype}, which has no ONNX Runtime tensor type to bind. "
            f"Convert it to one of {sorted(str(d.torch) for d in DTYPES)}."
        )
    return found


def value_device(value: Array) -> Device:
    """Where ``value``'s memory is: a CUDA tensor's device, else the host."""
    if isinstance(value, torch.Tensor) and value.device.type == "cuda":
        return Device("cuda", value.device.index or 0)
    if isinstance(value, torch.Tensor) and value.device.type != "cpu":
        raise FeedError(
            f"{describe(value)} is on {value.device}; IO binding reads CPU or CUDA memory. Move it with .cpu()."
        )
    return Device("cpu", 0)


def _is_contiguous(value: Array) -> bool:
    if isinstance(value, torch.Tensor):
        return value.layout == torch.strided and value.is_contiguous()
    return bool(value.flags.c_contiguous)


def data_ptr(value: Array) -> int:
    return value.data_ptr() if isinstance(value, torch.Tensor) else int(value.ctypes.data)


def check_value(meta: Any, value: Any, role: str, *, need_contiguous: bool = True) -> DType:
    """Check one value against the graph's ``NodeArg``: type, dtype, rank, fixed sizes, layout."""
    expected = BY_ONNX.get(meta.type)
    if expected is None:
        raise FeedError(
            f"{role} {meta.name!r} has type {meta.type}, which IO binding of tensors cannot feed. "
            "Feed this model with session.run(...) instead."
        )
    got = value_dtype(meta.name, value, role)
    if got is not expected:
        np_name = f"np.{np.dtype(expected.numpy).name}" if expected.numpy is not None else "(no numpy type)"
        raise FeedError(
            f"{role} {meta.name!r} expects {meta.type} ({expected.torch}, numpy {np_name}), "
            f"received {describe(value)}. Convert it: tensor.to({expected.torch}) or array.astype({np_name})."
        )
    shape, declared = tuple(value.shape), meta.shape
    if declared is not None and len(shape) != len(declared):
        raise FeedError(
            f"{role} {meta.name!r} expects rank {len(declared)} (dims {declared}), received shape {shape} "
            f"(rank {len(shape)}). Add or remove axes, e.g. with unsqueeze(0) or squeeze()."
        )
    for axis, (dim, size) in enumerate(zip(declared or (), shape)):
        if isinstance(dim, int) and dim != size:
            raise FeedError(
                f"{role} {meta.name!r}: axis {axis} is fixed at {dim} in the model, received shape {shape}. "
                "Only named axes can change size; re-export with that axis in dynamic_axes to make it dynamic."
            )
    if need_contiguous and not _is_contiguous(value):
        strides = value.stride() if isinstance(value, torch.Tensor) else value.strides
        raise FeedError(
            f"{role} {meta.name!r} is not contiguous ({describe(value)}, strides {strides}): ONNX Runtime "
            "gets a raw pointer, which must address a dense row-major buffer. Bind tensor.contiguous() "
            "(np.ascontiguousarray(array) for numpy) and make later in-place updates to that copy."
        )
    return got


def symbol_sizes(metas: Mapping[str, Any], values: Mapping[str, Array]) -> dict[str, int]:
    """The size of each named axis in ``values``; raise if two inputs disagree on one."""
    sizes: dict[str, tuple[int, str]] = {}
    for name, value in values.items():
        for axis, dim in enumerate(metas[name].shape or ()):
            if not isinstance(dim, str) or axis >= len(value.shape):
                continue
            size = int(value.shape[axis])
            if dim in sizes and sizes[dim][0] != size:
                raise FeedError(
                    f"Axis {dim!r} is {sizes[dim][0]} in input {sizes[dim][1]!r} but {size} in input "
                    f"{name!r} (axis {axis}). Inputs sharing a named axis must agree on its size."
                )
            sizes.setdefault(dim, (size, name))
    return {dim: size for dim, (size, _) in sizes.items()}


def resolve_output_shapes(metas: Mapping[str, Any], sizes: Mapping[str, int]) -> dict[str, tuple[int, ...] | None]:
    """Each output's shape from its declared dims and the input axis sizes; ``None`` where one is unknown."""
    shapes: dict[str, tuple[int, ...] | None] = {}
    for name, meta in metas.items():
        dims = meta.shape
        known = dims is not None and all(isinstance(d, int) or d in sizes for d in dims)
        shapes[name] = tuple(d if isinstance(d, int) else sizes[d] for d in dims) if known else None
    return shapes


def as_host_array(value: Array) -> np.ndarray:
    """A numpy array on the host (a numpy array is returned as it is)."""
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value


def copy_into(buffer: Array, new: Array) -> None:
    """Copy ``new`` into the bound ``buffer`` in place (same shape), across host and device."""
    if isinstance(buffer, torch.Tensor):
        source = new if isinstance(new, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(new))
        buffer.copy_(source)
    else:
        np.copyto(buffer, as_host_array(new))


def check_session_on(session: ort.InferenceSession, device: Device) -> None:
    """Raise ``ProviderError`` unless ``session`` runs on the CUDA provider of ``device``."""
    if CUDA_EP not in session.get_providers():
        raise ProviderError(
            f"device {str(device)!r} asked, but this session runs on {session.get_providers()}. Build it with "
            f"SessionConfig(providers=('{CUDA_EP}', 'CPUExecutionProvider')), or bind with device='cpu'."
        )
    session_device = session.get_provider_options().get(CUDA_EP, {}).get("device_id", "0")
    if str(session_device) != str(device.index):
        raise ProviderError(
            f"device {str(device)!r} asked, but the session's {CUDA_EP} runs on device_id {session_device}. "
            f"Bind with device='cuda:{session_device}', or build the session with device_id '{device.index}'."
        )


def cuda_graph_refusal(exc: BaseException) -> ProviderError | None:
    """``ProviderError`` saying why ONNX Runtime refused CUDA graph capture, or None for another error.

    What ONNX Runtime 1.32 refuses (checked on an H200, benchmarks/gpu/README.md): a compute node on
    another provider, which brings Memcpy nodes ("all compute graph nodes have not been partitioned"),
    and control flow (If/Loop/Scan). Shape subgraphs left on the CPU without Memcpy nodes are allowed;
    ONNX Runtime only logs a caution, since a replay assumes the same shapes as the capture.
    """
    text = str(exc).strip()
    if "graph capture" not in text.lower():
        return None
    if "control flow" in text.lower():
        why = ("The model has control flow (If/Loop/Scan), which CUDA graphs cannot hold. Export without "
               "data-dependent branches or loops (e.g. torch.cond), or run without cuda_graph.")
    else:
        why = ("A compute node runs on another provider (usually the CPU, for an op without a CUDA kernel), "
               "which puts Memcpy nodes in the graph. Shape subgraphs on the CPU without Memcpy are allowed; "
               "a compute op is not. Find it in the session's node placement (log_severity_level=1 prints "
               "'Node placements'), and replace it or give it a CUDA kernel.")
    return ProviderError(f"ONNX Runtime refused CUDA graph capture for this model: {text} {why} Use "
                         "bound_session(..., cuda_graph=False) for plain IO binding on CUDA.")
