"""How an export's files reach their place, and the record beside them that the export cache trusts.

**Placement.** The exporter writes into a staging folder ``.wb-export-<pid>-<random>`` beside the
target. The finished model's external data gets a fresh name, ``<out>.<token>.data``, that no
file in the target folder has yet; the staging folder records what it is about to do
(``plan.json``: the new data files, and the old pair's data files that the switch makes
unneeded); then the data files are moved into the target folder under their fresh names (the old
pair is untouched: its ``.onnx`` still names its own data file), and the ``.onnx`` is moved onto
the target with one ``os.replace``, the switch. Only after that are the old pair's data files
deleted. A kill at any moment therefore leaves the old pair or the new pair, each complete. The
next export into that folder (any target) removes the staging folders of runs that are no longer
alive (their process is gone, or it is this process and the folder is not in use), and with them
the data files their plan names that the current ``.onnx`` does not use.

**The cache record** (``<out>.wbexport.json``) holds the fingerprint of the export's inputs, the
file's size and mtime, and the SHA-256 of the ``.onnx`` and of each of its external data files.
A file whose content does not match is not the export's, whatever its size and mtime say: the
cache re-exports. Hashes are memoized per file state (device, inode, size, mtime and ctime;
``os.utime`` can set the mtime but changes the ctime), so a cache hit hashes a file once per process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import onnx

from workbench.core._files import external_files
from workbench.core.spec import ExportSpec

__all__ = ["SIDECAR_SUFFIX", "STAGING_PREFIX", "clean_stale", "content_hashes", "finish", "place",
           "read_sidecar", "sidecar_path", "staging", "write_sidecar"]

SIDECAR_SUFFIX = ".wbexport.json"
STAGING_PREFIX = ".wb-export-"
_PLAN = "plan.json"
_STALE_AFTER_S = 24 * 3600  # a staging folder whose owner cannot be told is stale after a day

_active: set[str] = set()  # staging folders in use in this process
_active_lock = threading.Lock()
_hash_memo: dict[tuple[Any, ...], str] = {}


# --- content hashes ------------------------------------------------------------------------------

def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, memoized by (device, inode, size, mtime, ctime)."""
    info = os.stat(path)
    key = (str(path), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    if key in _hash_memo:
        return _hash_memo[key]
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    if len(_hash_memo) > 512:
        _hash_memo.clear()
    _hash_memo[key] = h.hexdigest()
    return _hash_memo[key]


def data_names(onnx_path: Path) -> list[str]:
    """The external data files (names in the same folder) that the ``.onnx`` at ``onnx_path`` uses."""
    model = onnx.load(str(onnx_path), load_external_data=False)
    return sorted(os.path.relpath(f, onnx_path.parent) for f in external_files(model, onnx_path.parent))


def _ours(name: Any, target: Path) -> bool:
    """Whether ``name`` is a data file an export to ``target`` may have written (and may delete)."""
    return (isinstance(name, str) and Path(name).name == name and name.startswith(target.name + ".")
            and name.endswith(".data"))


def content_hashes(onnx_path: Path, data: list[str]) -> dict[str, str]:
    """``{file name: sha256}`` for the ``.onnx`` and its data files ``data`` (beside it)."""
    return {name: file_sha256(onnx_path.parent / name) for name in [onnx_path.name, *data]}


# --- the cache record ----------------------------------------------------------------------------

def sidecar_path(target: Path) -> Path:
    return target.with_name(target.name + SIDECAR_SUFFIX)


def read_sidecar(target: Path) -> dict[str, Any] | None:
    """The record of the export that wrote ``target``, if the files are still exactly what it wrote."""
    try:
        data = json.loads(sidecar_path(target).read_text())
        stat = target.stat()
        if data.get("size") != stat.st_size or data.get("mtime_ns") != stat.st_mtime_ns:
            return None
        hashes = data.get("sha256")
        if not isinstance(hashes, dict) or target.name not in hashes:
            return None
        for name, digest in hashes.items():
            if Path(name).name != name or file_sha256(target.parent / name) != digest:
                return None
        return data
    except (OSError, ValueError, AttributeError, TypeError):
        return None


def exported_spec(onnx_model: str | os.PathLike[str]) -> ExportSpec | None:
    """The spec ``wb.export`` wrote ``onnx_model`` with, from its record beside the file; None when the
    file has no record or is no longer exactly what that export wrote."""
    try:
        record = read_sidecar(Path(onnx_model))
        return ExportSpec.from_dict(record["spec"]) if record and record.get("spec") else None
    except (OSError, KeyError, TypeError, ValueError):
        return None


def write_sidecar(target: Path, record: dict[str, Any], data: list[str], folder: Path) -> None:
    """Write ``record`` with the file's size, mtime and hashes beside ``target`` (via ``folder``, atomically)."""
    stat = target.stat()
    record = dict(record, size=stat.st_size, mtime_ns=stat.st_mtime_ns, sha256=content_hashes(target, data))
    tmp = folder / f"sidecar.{uuid.uuid4().hex}.tmp"
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, sidecar_path(target))


# --- staging and placement -----------------------------------------------------------------------

def _owner_gone(folder: Path) -> bool:
    """Whether the run that made the staging folder ``folder`` can no longer be using it."""
    parts = folder.name[len(STAGING_PREFIX):].split("-", 1)
    try:
        age = time.time() - folder.stat().st_mtime
    except OSError:
        return False
    if len(parts) != 2 or not parts[0].isdigit():
        return age > 3600  # an older workbench's folder (no pid in the name)
    pid = int(parts[0])
    if pid == os.getpid():
        with _active_lock:
            return str(folder) not in _active
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        pass
    return age > _STALE_AFTER_S


def _referenced(target: Path) -> set[str]:
    try:
        return set(data_names(target)) if target.is_file() else set()
    except Exception:  # an unreadable target uses no data file we could know of
        return set()


def _discard(folder: Path, parent: Path) -> None:
    """Remove a staging folder, and the data files its plan names that the current target does not use."""
    try:
        plan = json.loads((folder / _PLAN).read_text())
    except (OSError, ValueError):
        plan = None
    if isinstance(plan, dict) and isinstance(plan.get("target"), str) and Path(plan["target"]).name == plan["target"]:
        target = parent / plan["target"]
        used = _referenced(target)
        for name in list(plan.get("new", [])) + list(plan.get("old", [])):
            if _ours(name, target) and name not in used:
                with contextlib.suppress(OSError):
                    (parent / name).unlink()
    shutil.rmtree(folder, ignore_errors=True)


def clean_stale(parent: Path) -> list[Path]:
    """Remove the staging folders in ``parent`` left by killed or finished runs; returns them."""
    gone = []
    with contextlib.suppress(OSError):
        for folder in parent.iterdir():
            if folder.name.startswith(STAGING_PREFIX) and folder.is_dir() and not folder.is_symlink() \
                    and _owner_gone(folder):
                _discard(folder, parent)
                gone.append(folder)
    return gone


@contextlib.contextmanager
def staging(target: Path) -> Iterator[Path]:
    """A new staging folder beside ``target`` (stale ones are removed first); removed on exit."""
    clean_stale(target.parent)
    with _active_lock:  # registered before any clean_stale can see it
        folder = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=target.parent))
        _active.add(str(folder))
    try:
        yield folder
    finally:
        with _active_lock:
            _active.discard(str(folder))
        _discard(folder, target.parent)


def finish(staged: Path, target_name: str, spec: ExportSpec) -> None:
    """Name the symbolic output dims as the spec asks; put external data (if any, or if the spec asks)
    into one file with a fresh name ``<target_name>.<token>.data`` beside ``staged``."""
    plain = onnx.load(str(staged), load_external_data=False)
    exporter_data = external_files(plain, staged.parent)
    model = onnx.load(str(staged), load_external_data=True)
    changed = False
    for out in model.graph.output:
        for dim, sym in spec.dynamic_axes.get(out.name, {}).items():
            dims = out.type.tensor_type.shape.dim
            if dim < len(dims) and dims[dim].dim_param and dims[dim].dim_param != sym:
                dims[dim].dim_param = sym
                changed = True
    if exporter_data or spec.external_data:
        location = f"{target_name}.{uuid.uuid4().hex[:12]}.data"
        onnx.save_model(model, str(staged), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=location, size_threshold=1024)
        for old in exporter_data:
            if old.name != location:
                with contextlib.suppress(OSError):
                    old.unlink()
    elif changed:
        onnx.save_model(model, str(staged))


def place(staged: Path, target: Path, folder: Path) -> list[str]:
    """Move the staged ``.onnx`` and its data files into place (see the module docstring); the data names."""
    new = data_names(staged)
    old = sorted(name for name in _referenced(target) - set(new) if _ours(name, target))
    (folder / _PLAN).write_text(json.dumps({"target": target.name, "new": new, "old": old}))
    for name in new:  # fresh names: nothing of the old pair is touched
        os.replace(staged.parent / name, target.parent / name)
    os.replace(staged, target)  # the switch
    for name in old:
        with contextlib.suppress(OSError):
            (target.parent / name).unlink()
    return new
