"""``IOBinder``: bind numpy arrays and torch tensors to a session's inputs and outputs without copies.

The binder hands ONNX Runtime the raw pointers of the caller's arrays
(``bind_input(name, device_type, device_id, element_type, shape, buffer_ptr)``), so a run reads
and writes that memory directly. It keeps a reference to everything it bound, so the memory
cannot be freed while ONNX Runtime may still touch it. A session built with ``enable_cuda_graph``
is detected: the first run captures the CUDA graph, later runs replay it on the same buffers.
Import it from ``workbench.core.iobinding``, which also builds such sessions.

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
from typing import Any, Mapping, Sequence

import numpy as np
import onnxruntime as ort
import torch

from workbench.core._binding_checks import (
    BY_ONNX,
    Array,
    Device,
    Inputs,
    as_host_array,
    check_session_on,
    check_value,
    copy_into,
    data_ptr,
    graph_capture_enabled,
    parse_device,
    require_cuda,
    resolve_output_shapes,
    symbol_sizes,
    value_device,
    value_dtype,
)
from workbench.core._format import html_table, text_table
from workbench.errors import FeedError, InvalidInputError, describe

__all__ = ["BoundTensor", "IOBinder"]

_GRAPH_ID_KEY = "gpu_graph_id"  # run config entry choosing which captured CUDA graph a run uses
_SKIP_GRAPH = -1  # ONNX Runtime's graph id for "run normally, neither capture nor replay"


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
            check_session_on(session, self.device)
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
            dtype, where = value_dtype(name, value, "input"), value_device(value)
            self._binding.bind_input(name, where.type, where.index, dtype.element_type,
                                     list(value.shape), data_ptr(value))
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
                dtype, where = value_dtype(name, value, "output"), value_device(value)
                self._binding.bind_output(name, where.type, where.index, dtype.element_type,
                                          list(value.shape), data_ptr(value))
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
        tensors = {n: torch.empty(resolved[n], dtype=BY_ONNX[m.type].torch, device=where)
                   for n, m in self._output_meta.items() if m.type in BY_ONNX}
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
            copy_into(self._inputs[name], new)

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
            results[name] = as_host_array(value) if to_numpy else value
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
        where = value_device(value)
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
    return BoundTensor(name, role, kind, str(value_device(value)), str(value.dtype),
                       tuple(int(d) for d in value.shape), data_ptr(value))
