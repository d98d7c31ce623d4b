"""A model's outputs as the flat list of named tensors an ONNX graph returns.

Split out of ``export.py``. ``output_leaves`` walks what ``forward`` returned: tensors, tuples and
lists, dicts and ``transformers``' ``ModelOutput`` (an ordered dict whose ``None`` fields are
absent), dataclasses, and Python numbers; each leaf gets a path (``output.logits``,
``output[1]``) that also gives the default output name. Anything else (a ``transformers`` cache
object such as ``DynamicCache`` returned with ``use_cache=True``, a custom class) is not an ONNX
output: ``NonTensorOutputError`` names where it sits, its type and the fix, instead of a torch
message about dtypes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import torch

from workbench.errors import NonTensorOutputError

__all__ = ["has_plain_dataclass", "output_leaves", "output_names_for", "tensor_leaves"]


def _is_cache(value: Any) -> bool:
    return any(c.__name__.endswith("Cache") for c in type(value).__mro__)


def _non_tensor(value: Any, path: str, owner: str) -> NonTensorOutputError:
    kind = type(value).__name__
    if _is_cache(value):
        how = (f"{owner} returns a {kind} at {path}: a key/value cache object, not a tensor (transformers "
               "returns one when use_cache is on, the default for decoders). ONNX outputs are tensors. Export "
               "without the cache: model.config.use_cache = False, or call the model with use_cache=False in a "
               "wrapper whose forward returns only tensors (e.g. return self.model(ids, use_cache=False).logits).")
    else:
        how = (f"{owner} returns a {kind} at {path}, which is not a tensor, a tuple/list/dict of tensors or a "
               "dataclass of them. ONNX outputs are tensors: return tensors only (wrap the model so forward "
               "returns the tensors you need).")
    return NonTensorOutputError(how, path=path, type_name=kind, is_cache=_is_cache(value))


def output_leaves(outputs: Any, *, owner: str = "The model", path: str = "output") -> list[tuple[str, torch.Tensor]]:
    """``(path, tensor)`` for every tensor in ``outputs``, in the order exporters flatten them; ``None``
    leaves are skipped, Python numbers become tensors; anything else raises ``NonTensorOutputError``."""
    if isinstance(outputs, torch.Tensor):
        return [(path, outputs)]
    if outputs is None:
        return []
    if isinstance(outputs, (bool, int, float)):
        return [(path, torch.as_tensor(outputs))]
    if isinstance(outputs, (tuple, list)) and not hasattr(outputs, "_fields"):
        return [leaf for i, v in enumerate(outputs) for leaf in output_leaves(v, owner=owner, path=f"{path}[{i}]")]
    if isinstance(outputs, Mapping):
        return [leaf for k, v in outputs.items() for leaf in output_leaves(v, owner=owner, path=f"{path}.{k}")]
    if isinstance(outputs, tuple):  # a namedtuple
        return [leaf for k, v in zip(outputs._fields, outputs) for leaf in output_leaves(v, owner=owner, path=f"{path}.{k}")]
    if dataclasses.is_dataclass(outputs) and not isinstance(outputs, type):
        return [leaf for f in dataclasses.fields(outputs)
                for leaf in output_leaves(getattr(outputs, f.name), owner=owner, path=f"{path}.{f.name}")]
    raise _non_tensor(outputs, path, owner)


def tensor_leaves(outputs: Any) -> list[torch.Tensor]:
    """The tensors of ``outputs`` only, skipping every non-tensor leaf (a cache object, strings)."""
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    if isinstance(outputs, Mapping):
        return [t for v in outputs.values() for t in tensor_leaves(v)]
    if isinstance(outputs, (tuple, list)):
        return [t for v in outputs for t in tensor_leaves(v)]
    if dataclasses.is_dataclass(outputs) and not isinstance(outputs, type):
        return [t for f in dataclasses.fields(outputs) for t in tensor_leaves(getattr(outputs, f.name))]
    return []


def has_plain_dataclass(outputs: Any) -> bool:
    """Whether ``outputs`` holds a dataclass that is not a mapping (torch.export cannot flatten one
    that is not registered with ``torch.utils._pytree``)."""
    if isinstance(outputs, Mapping):
        return any(has_plain_dataclass(v) for v in outputs.values())
    if isinstance(outputs, (tuple, list)):
        return any(has_plain_dataclass(v) for v in outputs)
    if dataclasses.is_dataclass(outputs) and not isinstance(outputs, type):
        import torch.utils._pytree as pytree

        return type(outputs) not in pytree.SUPPORTED_NODES or any(
            has_plain_dataclass(getattr(outputs, f.name)) for f in dataclasses.fields(outputs))
    return False


def output_names_for(paths: list[str]) -> tuple[str, ...]:
    """Output names from leaf paths: ``output.logits`` -> ``logits``, ``output.x[0]`` -> ``x_0``; unique."""
    names: list[str] = []
    for path in paths:
        name = path.removeprefix("output").lstrip(".").replace("[", "_").replace("]", "").replace(".", "_") or "output"
        if name[0].isdigit() or name.startswith("_"):
            name = f"output_{name.lstrip('_')}"
        base, k = name, 1
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    return tuple(names)
