"""A fingerprint of (model code, weights, example inputs, spec) for the export cache.

The code part covers, for every submodule, its class's source and the whole source file of the
module that defines it (so editing a module-level helper that ``forward`` calls invalidates the
cache), plus the source of the plain functions ``forward`` reaches through its globals (for
classes defined in a notebook, which have no file). PyTorch's own modules are covered by the
torch version.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
import types
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from workbench.core._locks import TORCH_LOCK
from workbench.core.spec import ExportSpec

__all__ = ["code_digest", "fingerprint", "tensor_digest"]

_LIBRARY_PREFIXES = ("torch", "builtins", "onnxscript", "functools")
_MAX_DEPTH = 3  # how far helper functions calling helper functions are followed


@lru_cache(maxsize=512)
def _class_source(cls: type) -> str:
    try:
        return inspect.getsource(cls)
    except (OSError, TypeError):
        return f"{cls.__module__}.{cls.__qualname__}"


@lru_cache(maxsize=256)
def _file_digest(path: str, mtime_ns: int, size: int) -> bytes:
    return hashlib.blake2b(Path(path).read_bytes(), digest_size=16).digest()


def _own_code(module_name: str) -> bool:
    return bool(module_name) and not module_name.split(".")[0] in _LIBRARY_PREFIXES


def _module_file_digest(module_name: str) -> bytes:
    """A digest of the source file of module ``module_name`` (empty when it has none, e.g. __main__ in Jupyter)."""
    module = sys.modules.get(module_name)
    source = getattr(module, "__file__", None)
    if not source or not source.endswith(".py"):
        return b""
    try:
        stat = Path(source).stat()
        return _file_digest(source, stat.st_mtime_ns, stat.st_size)
    except OSError:
        return b""


def _function_text(fn: types.FunctionType) -> bytes:
    try:
        return inspect.getsource(fn).encode()
    except (OSError, TypeError):
        code = fn.__code__
        return code.co_code + repr(code.co_consts).encode()


def _helpers(code: types.CodeType, namespace: dict[str, Any], depth: int, seen: set[int]) -> Iterator[bytes]:
    """The source of the user's plain functions that ``code`` names in ``namespace``, recursively."""
    if depth > _MAX_DEPTH:
        return
    names = list(code.co_names) + [n for c in code.co_consts if isinstance(c, types.CodeType) for n in c.co_names]
    for name in names:
        fn = namespace.get(name)
        if isinstance(fn, types.FunctionType) and id(fn) not in seen and _own_code(fn.__module__ or ""):
            seen.add(id(fn))
            yield _function_text(fn)
            yield from _helpers(fn.__code__, fn.__globals__, depth + 1, seen)


def code_digest(model: nn.Module) -> bytes:
    """What the model's code is: each class's source, its module's file, the helpers forward calls."""
    h = hashlib.blake2b(digest_size=20)
    modules: set[str] = set()
    seen: set[int] = set()
    for module in model.modules():
        cls = type(module)
        h.update(_class_source(cls).encode())
        if _own_code(cls.__module__):
            modules.add(cls.__module__)
            forward = getattr(cls, "forward", None)
            if isinstance(forward, types.FunctionType):
                for text in _helpers(forward.__code__, forward.__globals__, 0, seen):
                    h.update(text)
        override = module.__dict__.get("forward")
        if override is not None:
            code = getattr(override, "__code__", None)
            h.update(code.co_code if code is not None else repr(override).encode())
            if _own_code(getattr(override, "__module__", "") or ""):
                modules.add(override.__module__)
    for name in sorted(modules):
        h.update(name.encode() + _module_file_digest(name))
    return h.digest()


def tensor_digest(t: torch.Tensor) -> bytes:
    """A digest of a tensor's dtype, shape and bytes.

    CRC-32 and Adler-32 of the bytes (zlib, ~1.5 GB/s) rather than a cryptographic hash:
    this is a cache key, and a full pass is needed because in-place edits through
    ``param.data`` change the bytes without bumping the tensor's version counter.
    """
    flat = t.detach().cpu().contiguous().reshape(-1)
    data = flat.view(torch.uint8).numpy().data if flat.numel() else b""
    head = f"{t.dtype}:{tuple(t.shape)}:{t.device.type}:".encode()
    return head + zlib.crc32(data).to_bytes(4, "little") + zlib.adler32(data).to_bytes(4, "little")


def fingerprint(model: nn.Module, inputs: Sequence[torch.Tensor], spec: ExportSpec | None) -> str:
    """Changes when the weights, buffers, model code (classes, their modules' files, the helpers
    forward calls, forward overrides), the example's shapes or the spec change.

    Reads the weights with ``TORCH_LOCK`` shared: never while an export has swapped them for fake tensors.
    """
    with TORCH_LOCK.shared():
        return _fingerprint(model, inputs, spec)


def _fingerprint(model: nn.Module, inputs: Sequence[torch.Tensor], spec: ExportSpec | None) -> str:
    h = hashlib.blake2b(digest_size=20)
    h.update(torch.__version__.encode())
    h.update(json.dumps(spec.to_dict() if spec else None, sort_keys=True, default=str).encode())
    h.update(code_digest(model))
    for name, module in model.named_modules():
        h.update(f"{name}:{module.training}".encode())
    for name, tensor in model.named_parameters():
        h.update(name.encode() + tensor_digest(tensor))
    for name, tensor in model.named_buffers():
        h.update(name.encode() + tensor_digest(tensor))
    # The example's shapes and dtypes, not its values: a notebook that draws new random
    # example inputs each run should still hit the cache.
    for i, t in enumerate(inputs):
        h.update(f"input{i}:{t.dtype}:{tuple(t.shape)}:{t.device.type}".encode())
    return h.hexdigest()
