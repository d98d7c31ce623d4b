"""Run the model once in PyTorch and record where it does things exporters cannot follow.

``trace_model`` records, with the module and the source line of the user's code:

* value escapes: a tensor turned into a Python value (``if t:``, ``.item()``, ``int(t)``,
  ``.tolist()``, ``.numpy()``, a tensor used as an index): tracing freezes these;
* the first call site of every torch function (to point at an unsupported operator);
* custom ``torch.autograd.Function`` classes and whether they have a ``symbolic``.
"""

from __future__ import annotations

import linecache
import os
import sys
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Callable

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from workbench.core.capture import Captured, captured_output

#: Tensor methods that turn a tensor's value into a Python value, and what they are called here.
ESCAPES: dict[str, str] = {"__bool__": "bool", "item": "item", "tolist": "tolist", "__int__": "int",
                           "__float__": "float", "__index__": "index", "numpy": "numpy", "__array__": "numpy"}
_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_HERE = os.path.abspath(__file__)


@dataclass(frozen=True)
class CallSite:
    """Where a call happened: the torch function, the module (dotted path, '' for the root),
    the user's source line, and the autograd Function whose forward made it (if any)."""

    name: str
    module: str
    module_type: str
    location: str | None = None
    source: str | None = None
    function: str | None = None
    autograd_function: str | None = None
    has_symbolic: bool = False

    @property
    def kind(self) -> str:
        return ESCAPES.get(self.name, self.name)

    def where(self) -> str:
        module = f"module {self.module!r} ({self.module_type})" if self.module else f"the root module ({self.module_type})"
        text = module + (f" at {self.location}" if self.location else "")
        return text + (f": {self.source}" if self.source else "")

    def evidence(self) -> dict[str, Any]:
        out: dict[str, Any] = {"module": self.module, "module_type": self.module_type}
        if self.location:
            out["location"] = self.location
        if self.source:
            out["source"] = self.source
        if self.autograd_function:
            out["autograd_function"] = self.autograd_function
        return out


@dataclass
class ModelTrace:
    """What one eager forward pass did (see the module docstring)."""

    escapes: list[CallSite] = field(default_factory=list)
    calls: dict[str, CallSite] = field(default_factory=dict)
    autograd_functions: dict[str, CallSite] = field(default_factory=dict)
    error: str | None = None
    output: str = ""  # what the forward pass printed (the model's own prints, torch's warnings)

    def escapes_of(self, *kinds: str, in_function: bool | None = None) -> list[CallSite]:
        """Escapes of the given kinds ('bool', 'item', ...); ``in_function`` filters on autograd Functions."""
        out = [e for e in self.escapes if not kinds or e.kind in kinds]
        if in_function is not None:
            out = [e for e in out if bool(e.autograd_function) == in_function]
        return out

    def find_call(self, op: str) -> CallSite | None:
        """The first call of an operator named like ``aten::histc``, ``aten.cumprod.default`` or
        ``prims.prod`` (a decomposition's name matches a call that contains it, e.g. cumprod)."""
        base = op.replace("::", ".").split(".")
        name = base[1] if len(base) > 1 and base[0] in ("aten", "prims", "torch", "") else base[-1]
        name = name.rstrip("_")
        if name in self.calls:
            return self.calls[name]
        for key in (name.lstrip("_"), name + "_"):
            if key in self.calls:
                return self.calls[key]
        matches = [c for k, c in self.calls.items() if name and name in k and not k.startswith("__")]
        return matches[0] if matches else None


class _Recorder(TorchFunctionMode):
    def __init__(self, stack: list[tuple[str, str]], trace: ModelTrace) -> None:
        super().__init__()
        self.stack = stack
        self.trace = trace

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = getattr(func, "__name__", None) or str(func)
        if self.stack:
            self._record(name, sys._getframe(1))
        return func(*args, **(kwargs or {}))

    def _record(self, name: str, caller: FrameType | None) -> None:
        module, module_type = self.stack[-1]
        user = caller
        while user is not None and (user.f_code.co_filename.startswith(_TORCH_DIR)
                                    or os.path.abspath(user.f_code.co_filename) == _HERE):
            user = user.f_back
        location = source = function = fn_name = None
        has_symbolic = False
        if user is not None:
            location = f"{user.f_code.co_filename}:{user.f_lineno}"
            source = linecache.getline(user.f_code.co_filename, user.f_lineno).strip() or None
            function = getattr(user.f_code, "co_qualname", user.f_code.co_name)
            ctx = user.f_locals.get("ctx")
            fn_cls = getattr(type(ctx), "_forward_cls", None) if ctx is not None else None
            if fn_cls is not None:
                fn_name, has_symbolic = fn_cls.__name__, hasattr(fn_cls, "symbolic")
        site = CallSite(name, module, module_type, location, source, function, fn_name, has_symbolic)
        if fn_name and fn_name not in self.trace.autograd_functions:
            self.trace.autograd_functions[fn_name] = site
        if name in ESCAPES:
            internal = caller is not None and caller.f_code.co_filename.startswith(_TORCH_DIR) and not fn_name
            if not internal and not _seen(self.trace.escapes, site):
                self.trace.escapes.append(site)
        if name not in self.trace.calls:
            self.trace.calls[name] = site


def _seen(sites: list[CallSite], site: CallSite) -> bool:
    return any(s.name == site.name and s.location == site.location and s.module == site.module for s in sites)


def trace_model(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> ModelTrace:
    """Run ``model(*inputs)`` once under a recorder; never raises (an error is kept in ``error``)."""
    trace = ModelTrace()
    stack: list[tuple[str, str]] = []
    handles = []

    def pre(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any) -> None:
            stack.append((name, type(module).__name__))
        return hook

    def post(module: nn.Module, args: Any, output: Any) -> None:
        if stack:
            stack.pop()

    for name, sub in model.named_modules():
        handles.append(sub.register_forward_pre_hook(pre(name)))
        handles.append(sub.register_forward_hook(post))
    cap = Captured()
    try:
        with captured_output() as cap, torch.no_grad(), _Recorder(stack, trace):
            model(*inputs)
    except Exception as exc:  # the model's own failure is data here
        trace.error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}"
    finally:
        for h in handles:
            h.remove()
        trace.output = cap.text
    return trace
