"""The wire formats of ``POST /v1/predict``: JSON and ``application/x-npz`` (``np.savez`` of the inputs).

JSON in: ``{"inputs": {"<input name>": <nested list>}}``; JSON out: ``{"outputs": {"<output name>": <nested
list>}, "model", "batch_size", "queue_ms", "compute_ms"}``. npz in: one array per input name; npz out: one array
per output name, the rest in the ``X-Batch-Size``, ``X-Queue-Ms``, ``X-Compute-Ms`` headers. Loading an npz
never unpickles (``allow_pickle=False``).
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any, Mapping, Sequence

import numpy as np

from workbench.core.serve.validator import RequestInvalid

__all__ = ["NPZ", "decode_json", "decode_npz", "encode_json", "encode_npz", "request_body"]

NPZ = "application/x-npz"


def _bad(problem: str, expected: str, received: str) -> RequestInvalid:
    return RequestInvalid([{"input": "body", "problem": problem, "expected": expected, "received": received}])


def _fast_loads() -> Any:
    """``orjson.loads`` when installed (about 10x faster than ``json.loads`` on a body of 1024 floats, a quarter
    of the event loop's time in the server), else None."""
    try:
        import orjson
    except ImportError:
        return None
    return orjson.loads


_FAST_LOADS = _fast_loads()


def _loads(body: bytes) -> Any:
    if _FAST_LOADS is not None:
        try:
            return _FAST_LOADS(body)
        except ValueError:
            pass  # what orjson refuses (NaN, huge ints), json may accept; json's error message otherwise
    return json.loads(body)


def decode_json(body: bytes) -> dict[str, Any]:
    """``{"inputs": {...}}`` -> the inputs mapping; a malformed body raises ``RequestInvalid``."""
    try:
        data = _loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting too deep (b"[" * 100000)
        raise _bad("not valid JSON", '{"inputs": {"<name>": [...]}}', f"{len(body)} bytes ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("inputs"), dict):
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise _bad('no "inputs" object', '{"inputs": {"<name>": [...]}}', f"{got}")
    return data["inputs"]


def decode_npz(body: bytes) -> dict[str, np.ndarray]:
    """An ``np.savez`` archive -> {name: array}; anything else raises ``RequestInvalid``."""
    try:
        with np.load(io.BytesIO(body), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise _bad("not an npz archive", "np.savez(buffer, **inputs)", f"{len(body)} bytes ({exc})") from None


def encode_json(names: Sequence[str], outputs: Sequence[np.ndarray], meta: Mapping[str, Any]) -> bytes:
    body = {"outputs": {n: np.asarray(o).tolist() for n, o in zip(names, outputs)}, **meta}
    return json.dumps(body).encode()


def encode_npz(names: Sequence[str], outputs: Sequence[np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{n: np.asarray(o) for n, o in zip(names, outputs)})
    return buffer.getvalue()


def request_body(feed: Mapping[str, Any], *, form: str = "json") -> tuple[bytes, str]:
    """A request body and its content type for ``feed`` ({name: array}); ``form`` is "json" or "npz"."""
    if form == "npz":
        buffer = io.BytesIO()
        np.savez(buffer, **{n: np.asarray(v) for n, v in feed.items()})
        return buffer.getvalue(), NPZ
    return json.dumps({"inputs": {n: np.asarray(v).tolist() for n, v in feed.items()}}).encode(), "application/json"
