"""A fingerprint of (model code, weights, example inputs, spec) for the export cache."""

from __future__ import annotations

import hashlib
import inspect
import json
import weakref
from functools import lru_cache
from typing import Sequence

import torch
from torch import nn

from workbench.core.spec import ExportSpec


@lru_cache(maxsize=512)
def _class_source(cls: type) -> str:
    try:
        return inspect.getsource(cls)
    except (OSError, TypeError):
        return f"{cls.__module__}.{cls.__qualname__}"


# Digest of each tensor's bytes, keyed by the tensor object and invalidated by its version
# counter (bumped by every in-place change: optimizer steps, load_state_dict, copy_) and
# its storage pointer (changed by `param.data = ...`). Re-hashing 40 MB of weights costs
# ~0.1 s; the memo makes a repeated export check in the same process take milliseconds.
_DIGESTS: dict[int, tuple["weakref.ref[torch.Tensor]", tuple[int, int], bytes]] = {}


def tensor_digest(t: torch.Tensor) -> bytes:
    """A digest of a tensor's dtype, shape and bytes, memoized while the tensor is unchanged."""
    stamp = (t._version, t.data_ptr())
    hit = _DIGESTS.get(id(t))
    if hit is not None and hit[0]() is t and hit[1] == stamp:
        return hit[2]
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{t.dtype}:{tuple(t.shape)}:{t.device.type}".encode())
    flat = t.detach().cpu().contiguous().reshape(-1)
    if flat.numel():
        h.update(flat.view(torch.uint8).numpy().data)
    digest = h.digest()
    key = id(t)
    _DIGESTS[key] = (weakref.ref(t, lambda _, k=key: _DIGESTS.pop(k, None)), stamp, digest)
    return digest


def fingerprint(model: nn.Module, inputs: Sequence[torch.Tensor], spec: ExportSpec | None) -> str:
    """Changes when the weights, buffers, module code, forward overrides, the example's shapes or the spec change."""
    h = hashlib.blake2b(digest_size=20)
    h.update(torch.__version__.encode())
    h.update(json.dumps(spec.to_dict() if spec else None, sort_keys=True, default=str).encode())
    for name, module in model.named_modules():
        h.update(f"{name}:{module.training}".encode())
        h.update(_class_source(type(module)).encode())
        override = module.__dict__.get("forward")
        if override is not None:
            code = getattr(override, "__code__", None)
            h.update(code.co_code if code is not None else repr(override).encode())
    for name, tensor in model.named_parameters():
        h.update(name.encode() + tensor_digest(tensor))
    for name, tensor in model.named_buffers():
        h.update(name.encode() + tensor_digest(tensor))
    # The example's shapes and dtypes, not its values: a notebook that draws new random
    # example inputs each run should still hit the cache.
    for i, t in enumerate(inputs):
        h.update(f"input{i}:{t.dtype}:{tuple(t.shape)}:{t.device.type}".encode())
    return h.hexdigest()
