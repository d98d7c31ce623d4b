"""IO binding: run ONNX Runtime on numpy arrays and torch tensors without copies, on CPU and CUDA.

``IOBinder(session, device)`` hands ONNX Runtime the raw pointers of the caller's arrays
(``bind_input(name, device_type, device_id, element_type, shape, buffer_ptr)``), so a run reads
and writes that memory directly. It keeps a reference to everything it bound, so the memory
cannot be freed while ONNX Runtime may still touch it. ``cuda_graph_session`` adds CUDA graphs:
the CUDA provider option ``enable_cuda_graph='1'``, fixed device buffers, a first run that
captures and later runs that replay, with ``update_inputs`` copying new data into the buffers.

Decisions (each pinned by a test):

- A non-contiguous tensor or array is refused with a ``FeedError`` naming ``.contiguous()``,
  never copied silently: a silent copy would break the zero-copy contract, since later in-place
  updates of the caller's tensor would no longer reach ONNX Runtime.
- Outputs ONNX Runtime allocates are bound afresh before every run. Otherwise ONNX Runtime writes
  a run's outputs into the previous run's buffer when the shape repeats, and every array an
  earlier ``run()`` returned would change under the caller. The arrays returned are still views
  of ONNX Runtime's memory (no copy); each run's are independent.
- Pre-allocated outputs are the caller's buffers: each run overwrites them in place and ``run()``
  returns those very objects.
- Inputs are bound where their memory lives (numpy and CPU tensors on the host, CUDA tensors on
  their device); the binder's device is where outputs go. ``bound_session`` copies host inputs
  to the device once when the device is CUDA.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Sequence, Union

import numpy as np
import onnxruntime as ort
import torch
from onnx import TensorProto

from workbench.core._format import html_table, text_table
from workbench.core._io import ModelLike
from workbench.core.session import SessionConfig, open_session
from workbench.errors import FeedError, InvalidInputError, ProviderError, describe

Array = Union[np.ndarray, torch.Tensor]
Inputs = Union[Mapping[str, Array], Sequence[Array], Array]

CUDA_EP = "CUDAExecutionProvider"
_GRAPH_ID_KEY = "gpu_graph_id"  # run config entry choosing which captured CUDA graph a run uses
_SKIP_GRAPH = -1  # ONNX Runtime's graph id for "run normally, neither capture nor replay"
_INSTALL_GPU = (
    "Install a CUDA build of torch and onnxruntime-gpu in place of onnxruntime "
    "(pip uninstall -y onnxruntime && pip install onnx-workbench[gpu]) on a machine with an NVIDIA "
    "GPU, or use device='cpu' (IO binding works on CPU too)."
)


@dataclass(frozen=True)
class _DType:
    onnx: str  # ONNX Runtime's type string
    torch: torch.dtype
    numpy: Any  # numpy scalar type, None where numpy has none (bfloat16)
    element_type: Any  # what bind_input/bind_output take: a numpy type or an ONNX enum value


_DTYPES = (
    _DType("tensor(float)", torch.float32, np.float32, np.float32),
    _DType("tensor(float16)", torch.float16, np.float16, np.float16),
    _DType("tensor(double)", torch.float64, np.float64, np.float64),
    _DType("tensor(bfloat16)", torch.bfloat16, None, TensorProto.BFLOAT16),
    _DType("tensor(int8)", torch.int8, np.int8, np.int8),
    _DType("tensor(int16)", torch.int16, np.int16, np.int16),
    _DType("tensor(int32)", torch.int32, np.int32, np.int32),
    _DType("tensor(int64)", torch.int64, np.int64, np.int64),
    _DType("tensor(uint8)", torch.uint8, np.uint8, np.uint8),
    _DType("tensor(uint16)", torch.uint16, np.uint16, np.uint16),
    _DType("tensor(uint32)", torch.uint32, np.uint32, np.uint32),
    _DType("tensor(uint64)", torch.uint64, np.uint64, np.uint64),
    _DType("tensor(bool)", torch.bool, np.bool_, np.bool_),
)
_BY_ONNX = {d.onnx: d for d in _DTYPES}
_BY_TORCH = {d.torch: d for d in _DTYPES}
_BY_NUMPY = {np.dtype(d.numpy): d for d in _DTYPES if d.numpy is not None}
TORCH_TO_NUMPY: dict[torch.dtype, Any] = {d.torch: d.numpy for d in _DTYPES if d.numpy is not None}


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


@dataclass(frozen=True)
class BoundTensor:
    """One binding: what is bound to an input or output, and where its memory is."""

    name: str
    role: str  # "input" or "output"
    kind: str  # "torch", "numpy" or "ort" (ONNX Runtime allocates it at each run)
    device: str
    dtype: str
    shape: tuple[int, ...] | None
    data_ptr: int | None


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
        f"device {str(device)!r} asked, but CUDA is not available: {'; '.join(missing)}. {_INSTALL_GPU}"
    )


def graph_capture_enabled(session: ort.InferenceSession) -> bool:
    """Whether ``session`` was built with the CUDA provider option ``enable_cuda_graph``."""
    options = session.get_provider_options().get(CUDA_EP, {})
    return str(options.get("enable_cuda_graph", "0")).lower() in ("1", "true")


def _value_dtype(name: str, value: Any, role: str) -> _DType:
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
            f"Convert it to one of {sorted(str(d.torch) for d in _DTYPES)}."
        )
    return found


def _value_device(value: Array) -> Device:
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


def _data_ptr(value: Array) -> int:
    return value.data_ptr() if isinstance(value, torch.Tensor) else int(value.ctypes.data)


def check_value(meta: Any, value: Any, role: str, *, need_contiguous: bool = True) -> _DType:
    """Check one value against the graph's ``NodeArg``: type, dtype, rank, fixed sizes, layout."""
    expected = _BY_ONNX.get(meta.type)
    if expected is None:
        raise FeedError(
            f"{role} {meta.name!r} has type {meta.type}, which IO binding of tensors cannot feed. "
            "Feed this model with session.run(...) instead."
        )
    got = _value_dtype(meta.name, value, role)
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


def _to_numpy(value: Array) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value


def _copy_into(buffer: Array, new: Array) -> None:
    if isinstance(buffer, torch.Tensor):
        source = new if isinstance(new, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(new))
        buffer.copy_(source)
    else:
        np.copyto(buffer, _to_numpy(new))


def _run_error(exc: Exception) -> Exception:
    text = str(exc)
    if "computed output shape" in text or "Shape mismatch" in text:
        return FeedError(
            f"A pre-allocated output has another shape than the one the model computed: {text.strip()} "
            "Call allocate_outputs() after binding new input shapes (it works the shapes out), "
            "or bind_outputs(None) to let ONNX Runtime allocate."
        )
    return exc


class IOBinder:
    """Bind numpy arrays or torch tensors to a session's inputs and outputs, without copies.

    ``device`` ('cpu' or 'cuda:N') is where outputs ONNX Runtime allocates and ``allocate_outputs``
    buffers live. A session built with ``enable_cuda_graph`` (see ``cuda_graph_session``) is
    detected: the first ``run()`` captures the graph, later ones replay it on the same buffers, so
    after it only ``update_inputs`` may change the inputs.
    """

    def __init__(self, session: ort.InferenceSession, device: str | torch.device | Device = "cpu",
                 *, graph_id: int = 0) -> None:
        if not isinstance(session, ort.InferenceSession):
            raise InvalidInputError(
                f"IOBinder needs an onnxruntime.InferenceSession, received {describe(session)}. "
                "Build one with wb.open_session(path, config) or use bound_session(path, inputs)."
            )
        self.session = session
        self.device = parse_device(device)
        self.cuda_graph = graph_capture_enabled(session)
        if self.device.type == "cuda":
            require_cuda(self.device)
            _check_session_on(session, self.device)
        elif self.cuda_graph:
            raise InvalidInputError("This session has CUDA graphs enabled; bind it with device='cuda:N'.")
        self.graph_id = int(graph_id)
        self.runs = 0
        self._binding = session.io_binding()
        self._input_meta = {m.name: m for m in session.get_inputs()}
        self._output_meta = {m.name: m for m in session.get_outputs()}
        self._inputs: dict[str, Array] = {}  # references keep bound memory alive
        self._outputs: dict[str, Array] = {}
        self._ort_outputs: set[str] = set()
        self._captured = False
        self._run_options: dict[int, ort.RunOptions] = {}

    @property
    def input_names(self) -> list[str]:
        return list(self._input_meta)

    @property
    def output_names(self) -> list[str]:
        return list(self._output_meta)

    @property
    def inputs(self) -> dict[str, Array]:
        """The bound input buffers (the caller's own objects)."""
        return dict(self._inputs)

    @property
    def outputs(self) -> dict[str, Array]:
        """The pre-allocated output buffers."""
        return dict(self._outputs)

    def bind_inputs(self, inputs: Inputs) -> None:
        """Bind inputs by name (a dict) or in the session's order (a tuple); no data is copied."""
        self._refuse_after_capture("bind_inputs")
        named = self._name(inputs, self._input_meta, "input", partial=isinstance(inputs, Mapping))
        for name, value in named.items():
            check_value(self._input_meta[name], value, "input")
            self._check_placement(name, value, "input")
        symbol_sizes(self._input_meta, {**self._inputs, **named})
        for name, value in named.items():
            dtype, where = _value_dtype(name, value, "input"), _value_device(value)
            self._binding.bind_input(name, where.type, where.index, dtype.element_type,
                                     list(value.shape), _data_ptr(value))
            self._inputs[name] = value

    def bind_outputs(self, preallocated: Mapping[str, Array] | None = None) -> None:
        """Bind every output: to the given buffers, others to memory ONNX Runtime allocates each run."""
        self._refuse_after_capture("bind_outputs")
        given = self._name(preallocated or {}, self._output_meta, "output", partial=True)
        for name, value in given.items():
            check_value(self._output_meta[name], value, "output")
            self._check_placement(name, value, "output")
            if isinstance(value, np.ndarray) and not value.flags.writeable:
                raise FeedError(f"output {name!r} is a read-only array; ONNX Runtime must write into it. "
                                "Pass a writable array, e.g. array.copy().")
        missing = [n for n in self._output_meta if n not in given]
        if self.cuda_graph and missing:
            raise InvalidInputError(
                f"CUDA graphs replay fixed output addresses, but outputs {missing} have no buffer. "
                "Call allocate_outputs() or pass a device tensor for each output."
            )
        for name in self._output_meta:
            if name in given:
                value = given[name]
                dtype, where = _value_dtype(name, value, "output"), _value_device(value)
                self._binding.bind_output(name, where.type, where.index, dtype.element_type,
                                          list(value.shape), _data_ptr(value))
                self._outputs[name] = value
                self._ort_outputs.discard(name)
            else:
                self._binding.bind_output(name, self.device.type, self.device.index)
                self._outputs.pop(name, None)
                self._ort_outputs.add(name)

    def allocate_outputs(self, shapes: Mapping[str, Sequence[int]] | None = None) -> dict[str, torch.Tensor]:
        """Allocate a torch tensor on the binder's device for each output, bind them, return them.

        Shapes come from ``shapes``, else from the model's output dims and the bound inputs'
        axis sizes; where an output dim is not named after an input axis, one probe run (which
        never captures a CUDA graph) reads the shapes.
        """
        self._refuse_after_capture("allocate_outputs")
        self._require_inputs()
        given = {n: tuple(int(d) for d in s) for n, s in
                 self._name(dict(shapes or {}), self._output_meta, "output", partial=True).items()}
        resolved = {**resolve_output_shapes(self._output_meta, symbol_sizes(self._input_meta, self._inputs)),
                    **given}
        if any(shape is None for shape in resolved.values()):
            probed = self._probe_output_shapes()
            resolved = {n: s if s is not None else probed[n] for n, s in resolved.items()}
        where = self.device.torch_device
        tensors = {n: torch.empty(resolved[n], dtype=_BY_ONNX[m.type].torch, device=where)
                   for n, m in self._output_meta.items() if m.type in _BY_ONNX}
        self.bind_outputs(tensors)
        return tensors

    def update_inputs(self, inputs: Inputs) -> None:
        """Copy new values into the bound input buffers (same shapes and dtypes), for the next run."""
        named = self._name(inputs, self._input_meta, "input", partial=isinstance(inputs, Mapping))
        for name, new in named.items():
            if name not in self._inputs:
                raise FeedError(f"input {name!r} is not bound yet, so there is no buffer to update. "
                                "Call bind_inputs(...) first.")
            check_value(self._input_meta[name], new, "input", need_contiguous=False)
            buffer = self._inputs[name]
            if tuple(new.shape) != tuple(buffer.shape):
                fix = ("A captured CUDA graph replays fixed shapes: build another binder for this shape."
                       if self.cuda_graph else "Call bind_inputs(...) to bind a new shape.")
                raise FeedError(f"update_inputs copies into the bound buffer of {name!r}, shape "
                                f"{tuple(buffer.shape)}; received shape {tuple(new.shape)}. {fix}")
        for name, new in named.items():
            _copy_into(self._inputs[name], new)

    def run(self, *, to_numpy: bool = False) -> dict[str, Any]:
        """Run with the bound inputs; outputs by name, in the session's order.

        Pre-allocated outputs come back as the bound objects themselves, filled in place;
        ONNX Runtime's allocations as numpy arrays (CPU) or torch tensors (CUDA), views that
        later runs do not touch. ``to_numpy=True`` gives numpy arrays on the host for all.
        """
        if len(self._inputs) < len(self._input_meta):
            self._require_inputs()
        if not self._outputs and not self._ort_outputs:
            self.allocate_outputs() if self.cuda_graph else self.bind_outputs(None)
        fresh = self._ort_outputs
        for name in fresh:  # new memory each run, so earlier results are not overwritten
            self._binding.bind_output(name, self.device.type, self.device.index)
        self._execute(self.graph_id)
        self.runs += 1
        self._captured = self.cuda_graph
        if not fresh and not to_numpy:  # the fast path: every output pre-allocated
            return {name: self._outputs[name] for name in self._output_meta}
        fetched = self._binding.get_outputs_as_ortvaluevector() if fresh else None
        results: dict[str, Any] = {}
        for index, name in enumerate(self._output_meta):
            if name in self._outputs:
                value: Any = self._outputs[name]
            elif fetched[index].device_name().lower() == "cpu":
                value = fetched[index].numpy()  # a view that keeps ORT's buffer alive
            else:
                value = self._device_output(fetched, index)
            results[name] = _to_numpy(value) if to_numpy else value
        return results

    def bindings(self) -> list[BoundTensor]:
        """What is bound to each input and output now."""
        rows = [_describe_binding(n, "input", v) for n, v in self._inputs.items()]
        for name in self._output_meta:
            if name in self._outputs:
                rows.append(_describe_binding(name, "output", self._outputs[name]))
            elif name in self._ort_outputs:
                rows.append(BoundTensor(name, "output", "ort", str(self.device),
                                        self._output_meta[name].type, None, None))
        return rows

    def _device_output(self, fetched: Any, index: int) -> torch.Tensor:
        try:
            return torch.from_dlpack(fetched[index])  # zero-copy; the capsule keeps ORT's memory alive
        except (AttributeError, RuntimeError, TypeError, BufferError):  # an OrtValue without DLPack
            warnings.warn("This onnxruntime's OrtValue has no DLPack support; device outputs are copied "
                          "through the host. Upgrade onnxruntime-gpu to avoid the copy.", stacklevel=3)
            return torch.from_numpy(self._binding.copy_outputs_to_cpu()[index]).to(self.device.torch_device)

    def _execute(self, graph_id: int) -> None:
        if self.device.type == "cuda":  # torch's writes to bound tensors must land before ORT's stream reads
            torch.cuda.current_stream(self.device.torch_device).synchronize()
        options = None
        if self.cuda_graph:
            options = self._run_options.get(graph_id)
            if options is None:
                options = self._run_options[graph_id] = ort.RunOptions()
                options.add_run_config_entry(_GRAPH_ID_KEY, str(graph_id))
        try:
            self.session.run_with_iobinding(self._binding, options)
        except Exception as exc:  # ONNX Runtime raises RuntimeError and its own Fail/InvalidArgument
            error = _run_error(exc)
            if error is exc:
                raise
            raise error from exc

    def _probe_output_shapes(self) -> dict[str, tuple[int, ...]]:
        self._binding.clear_binding_outputs()
        self._outputs.clear()
        self._ort_outputs.clear()
        for name in self._output_meta:
            self._binding.bind_output(name, self.device.type, self.device.index)
        self._execute(_SKIP_GRAPH)
        values = self._binding.get_outputs()
        shapes = {name: tuple(values[i].shape()) for i, name in enumerate(self._output_meta)}
        self._binding.clear_binding_outputs()
        return shapes

    def _name(self, values: Any, metas: Mapping[str, Any], role: str, *, partial: bool) -> dict[str, Array]:
        names = list(metas)
        if isinstance(values, Mapping):
            unknown = [k for k in values if k not in metas]
            if unknown:
                raise FeedError(f"Unknown {role} name(s) {unknown}; the model's {role}s are {names}. "
                                "Use those names (check the names given to the exporter).")
            if not partial:
                missing = [n for n in names if n not in values]
                if missing:
                    raise FeedError(f"Missing {role}(s) {missing}; the model's {role}s are {names}.")
            return dict(values)
        if isinstance(values, (np.ndarray, torch.Tensor)):
            values = (values,)
        if not isinstance(values, (tuple, list)):
            raise FeedError(f"{role}s must be a dict of name -> array or a tuple in the model's order {names}, "
                            f"received {describe(values)}.")
        if len(values) != len(names):
            raise FeedError(f"Received {len(values)} {role}(s) for the model's {len(names)} {role}s {names}. "
                            "Pass one per name in that order, or a dict by name.")
        return dict(zip(names, values))

    def _check_placement(self, name: str, value: Array, role: str) -> None:
        where = _value_device(value)
        if where.type == "cuda" and where != self.device:
            fix = (f".to('{self.device}')" if self.device.type == "cuda"
                   else f".cpu(), or bind with device='{where}'")
            raise FeedError(f"{role} {name!r} is on {where} but this binder runs on {self.device}. "
                            f"Move it with {fix}.")
        if self.cuda_graph and where.type != "cuda":
            raise FeedError(
                f"{role} {name!r} is in host memory, but CUDA graphs replay fixed device addresses. "
                f"Bind a tensor on {self.device} (cuda_graph_session copies host inputs to the device for you)."
            )

    def _require_inputs(self) -> None:
        missing = [n for n in self._input_meta if n not in self._inputs]
        if missing:
            raise FeedError(f"Inputs {missing} are not bound (bound: {list(self._inputs)}). "
                            "Call bind_inputs(...) with every model input first.")

    def _refuse_after_capture(self, what: str) -> None:
        if self._captured:
            raise InvalidInputError(
                f"{what}: the CUDA graph was captured on the first run with the buffers bound then, and "
                "replays read and write those addresses, so a new binding would be ignored. Copy new "
                "values in with update_inputs(...), or build another binder for other shapes."
            )

    def __repr__(self) -> str:
        mode = ", cuda_graph" if self.cuda_graph else ""
        return (f"IOBinder(device={str(self.device)!r}{mode}, inputs={list(self._inputs)}, "
                f"outputs={[b.name for b in self.bindings() if b.role == 'output']}, runs={self.runs})")

    def _table(self) -> tuple[list[str], list[list[Any]]]:
        headers = ["name", "role", "kind", "device", "dtype", "shape", "data_ptr"]
        rows = [[b.name, b.role, b.kind, b.device, b.dtype, "dynamic" if b.shape is None else str(b.shape),
                 "-" if b.data_ptr is None else hex(b.data_ptr)] for b in self.bindings()]
        return headers, rows

    def __str__(self) -> str:
        return repr(self) + "\n" + text_table(*self._table())

    def _repr_html_(self) -> str:
        return html_table(*self._table(), caption=repr(self))


def _describe_binding(name: str, role: str, value: Array) -> BoundTensor:
    kind = "torch" if isinstance(value, torch.Tensor) else "numpy"
    return BoundTensor(name, role, kind, str(_value_device(value)), str(value.dtype),
                       tuple(int(d) for d in value.shape), _data_ptr(value))


def _check_session_on(session: ort.InferenceSession, device: Device) -> None:
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


def _open(model: ModelLike, config: SessionConfig, cuda_graph: bool) -> ort.InferenceSession:
    try:
        return open_session(model, config)
    except Exception as exc:
        if cuda_graph and "graph capture" in str(exc).lower():
            raise ProviderError(
                f"ONNX Runtime refused CUDA graph capture for this model: {str(exc).strip()} CUDA graphs need "
                "every compute node on the CUDA provider and no control flow (If/Loop/Scan). Use "
                "bound_session(..., cuda_graph=False) for plain IO binding on CUDA."
            ) from exc
        raise


def _place(value: Array, device: Device) -> Array:
    if device.type == "cpu":
        return value
    tensor = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
    if tensor.device == device.torch_device:
        return tensor
    return tensor.to(device.torch_device).contiguous()


def bound_session(model: ModelLike, inputs: Inputs, *, device: str | torch.device = "cpu",
                  config: SessionConfig | None = None, cuda_graph: bool = False,
                  preallocate: bool = True, graph_id: int = 0) -> IOBinder:
    """Open a session for ``model`` and return an ``IOBinder`` with ``inputs`` bound.

    On CPU the inputs are bound where they are (no copy); on CUDA, inputs not already on the
    device are copied there once, into buffers the binder owns. ``preallocate`` allocates the
    outputs on the device (``allocate_outputs``); otherwise ONNX Runtime allocates them each run.
    """
    dev = parse_device(device)
    if dev.type == "cuda":
        require_cuda(dev)
    elif cuda_graph:
        raise ProviderError(f"CUDA graphs need device='cuda:N', received device={str(dev)!r}. {_INSTALL_GPU}")
    session = _open(model, session_config_for(dev, config, cuda_graph=cuda_graph), cuda_graph)
    binder = IOBinder(session, dev, graph_id=graph_id)
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


def cuda_graph_session(model: ModelLike, inputs: Inputs, *, device: str | torch.device = "cuda:0",
                       config: SessionConfig | None = None, graph_id: int = 0) -> IOBinder:
    """A CUDA session with ``enable_cuda_graph='1'`` and fixed device buffers for ``inputs`` and outputs.

    The first ``run()`` captures the graph (ONNX Runtime warms up inside that call), later runs
    replay it. Feed new data with ``update_inputs(...)``, which copies into the same buffers;
    shapes cannot change. Raises ``ProviderError`` without CUDA.
    """
    return bound_session(model, inputs, device=device, config=config, cuda_graph=True, graph_id=graph_id)
