"""Where the model's code pins a dynamic size: torch.onnx refines "Constraints violated ... specialized"
into a static axis without saying where. ``specialization_site`` re-runs ``torch.export`` (non-strict,
the dynamic axes as ``Dim``s) and reads the guard torch's symbolic-shape logger records when a size
becomes a constant (``eval Eq(s70, 8) [guard added] (pkg/file.py:152 in fn)``)."""

from __future__ import annotations

import linecache
import logging
import os
import re
import sys

import torch
from torch import nn

from workbench.core.export import dynamic_shapes_for
from workbench.core.spec import ExportSpec
from workbench.doctor.locate import Frame

__all__ = ["specialization_site"]

_GUARD = re.compile(r"eval (.+?) \[guard added\].*?\(([^()\s]+?\.py):(\d+) in (\w+)\)")
_LOGGER = "torch.fx.experimental.symbolic_shapes"


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(record.getMessage())
        except Exception:  # a record that cannot format is no evidence
            pass


def _resolve(path: str) -> str:
    if os.path.isabs(path) and os.path.exists(path):
        return path
    for root in sys.path:
        full = os.path.join(root, path)
        if os.path.exists(full):
            return full
    return path


def _guards(model: nn.Module, inputs: tuple[torch.Tensor, ...], spec: ExportSpec) -> list[str]:
    logger = logging.getLogger(_LOGGER)
    handler = _Collect()
    level, propagate, handlers = logger.level, logger.propagate, logger.handlers[:]
    for h in handlers:  # torch's own handlers would print the guards to the terminal
        logger.removeHandler(h)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        torch.export.export(model, inputs, dynamic_shapes=dynamic_shapes_for(spec, inputs), strict=False)
    except Exception:  # the constraint error itself is expected; the guards are what we want
        pass
    finally:
        logger.removeHandler(handler)
        for h in handlers:
            logger.addHandler(h)
        logger.setLevel(level)
        logger.propagate = propagate
    return handler.messages


def specialization_site(model: nn.Module, inputs: tuple[torch.Tensor, ...], spec: ExportSpec,
                        size: int) -> tuple[Frame, str] | None:
    """The frame of the first guard that pins a symbol to ``size`` (``Eq(s.., size)``), and the guard."""
    pin = re.compile(rf"Eq\((s\d+), {size}\)|Eq\({size}, (s\d+)\)")
    for message in _guards(model, inputs, spec):
        m = _GUARD.search(message)
        if m and pin.search(m.group(1)):
            file = _resolve(m.group(2))
            line = int(m.group(3))
            return Frame(file, line, m.group(4), linecache.getline(file, line).strip()), m.group(1)
    return None
