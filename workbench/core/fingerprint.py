"""A fingerprint of (model code, weights, example inputs, spec) for the export cache."""

from __future__ import annotations

import hashlib
import inspect
import json
import zlib
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
