"""``ModelCache``: each (model file, session config) loaded once and shared between threads.

ONNX Runtime's ``InferenceSession.run`` may be called from several threads at once, so one session per
model serves every worker (a session per thread only wastes memory). The key is the file's resolved path,
inode, times and size plus every field of the config: a rewritten file gets a new session. Built on the
workbench's one loader (``workbench.core.loader.SessionCache``): a lock per key makes two threads asking at
once build it once.
"""

from __future__ import annotations

from typing import Any

from workbench.core.loader import SessionCache
from workbench.core.session import SessionConfig

__all__ = ["ModelCache"]


class ModelCache(SessionCache):
    """``cache.get(onnx_model, config)`` -> the shared ``InferenceSession``; an LRU of ``maxsize`` sessions."""

    def __init__(self, maxsize: int = 8) -> None:
        super().__init__(maxsize=maxsize)

    def get(self, onnx_model: Any, config: SessionConfig | None = None) -> Any:
        return super().get(onnx_model, config)

    def __repr__(self) -> str:
        return f"ModelCache({len(self)} sessions, {self.builds} built, maxsize {self.maxsize})"
