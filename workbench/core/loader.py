"""The one session loader: ``load_session`` memoizes ``InferenceSession``s, safely across threads.

A key is ``(resolved path, inode, mtime_ns, ctime_ns, size, config)`` for a file (a copy that keeps
the mtime still changes the inode or ctime) and a digest of the serialized bytes for a
``ModelProto`` (a proto edited in place gets a new session). A small
LRU keeps the last few sessions; a lock per key makes sure two threads asking for the same
session at once build it once (the second waits and gets the first's).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import asdict
from typing import Any, Hashable

import onnx
import onnxruntime as ort

from workbench.core._io import OnnxModel, check_onnx_path, is_path
from workbench.core.session import SessionConfig, check_config, open_session
from workbench.errors import InvalidInputError, describe

__all__ = ["SESSIONS", "SessionCache"]


def config_key(config: SessionConfig) -> str:
    """A hashable, stable text of every field of ``config``."""
    return json.dumps(asdict(config), sort_keys=True, default=str)


def model_key(onnx_model: OnnxModel) -> tuple[Hashable, ...]:
    """What identifies the model: the file's resolved path and its inode, times and size, or a digest
    of a proto's bytes."""
    if is_path(onnx_model):
        path = check_onnx_path(onnx_model).resolve()
        stat = path.stat()
        return ("file", str(path), stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size)
    if isinstance(onnx_model, onnx.ModelProto):
        digest = hashlib.sha256(onnx_model.SerializeToString(deterministic=True)).hexdigest()
        return ("proto", digest)
    raise InvalidInputError(
        f"Expected an ONNX model (a path, an onnx.ModelProto or an InferenceSession), received "
        f"{describe(onnx_model)}. Pass the path returned by wb.export(...)."
    )


class SessionCache:
    """An LRU of ``maxsize`` sessions with one build lock per key."""

    def __init__(self, maxsize: int = 4) -> None:
        self.maxsize = maxsize
        self._sessions: OrderedDict[Hashable, tuple[Any, ort.InferenceSession]] = OrderedDict()
        self._building: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()
        self.builds = 0  # how many sessions were built (for tests and curiosity)

    def get(self, onnx_model: OnnxModel, config: SessionConfig | None = None) -> ort.InferenceSession:
        if isinstance(onnx_model, ort.InferenceSession):
            return onnx_model
        config = check_config(config)
        key = (model_key(onnx_model), config_key(config))
        found = self._lookup(key)
        if found is not None:
            return found
        with self._lock:
            key_lock = self._building.setdefault(key, threading.Lock())
        try:
            with key_lock:
                found = self._lookup(key)  # another thread may have built it while this one waited
                if found is None:
                    found = open_session(onnx_model, config)
                    self._store(key, onnx_model, found)
        finally:  # also when the build fails: no lock left behind per failing key
            with self._lock:
                self._building.pop(key, None)
        return found

    def _lookup(self, key: Hashable) -> ort.InferenceSession | None:
        with self._lock:
            entry = self._sessions.get(key)
            if entry is None:
                return None
            self._sessions.move_to_end(key)
            return entry[1]

    def _store(self, key: Hashable, onnx_model: Any, session: ort.InferenceSession) -> None:
        with self._lock:
            self.builds += 1
            # Keep a ModelProto alive with its session, so its id is not reused while cached.
            self._sessions[key] = (onnx_model if isinstance(onnx_model, onnx.ModelProto) else None, session)
            self._sessions.move_to_end(key)
            while len(self._sessions) > self.maxsize:
                self._sessions.popitem(last=False)

    def clear(self) -> None:
        """Forget every cached session."""
        with self._lock:
            self._sessions.clear()

    def __len__(self) -> int:
        return len(self._sessions)


#: The process-wide cache behind ``load_session``.
SESSIONS = SessionCache()
