"""Where the workbench puts files nobody named: one private folder per user, never a fixed path in /tmp.

A predictable path in the shared temp folder (``/tmp/onnx-workbench``, ``/tmp/workbench_ort_profile...``)
can be created first by another user of the machine, who then owns what the workbench writes
there or makes it follow a symlink. Everything the workbench writes without being told where
goes under ``user_cache_dir()``: ``$XDG_CACHE_HOME/onnx-workbench`` (``~/.cache/onnx-workbench``
when unset), created with mode 0700 and refused when another user owns it. Scratch folders
inside it come from ``tempfile.mkdtemp`` (unique, 0700); ``prune`` keeps the newest few of one
kind under a size cap, so a folder per call does not pile up.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

from workbench.errors import WorkbenchError

__all__ = ["cache_root", "folder_bytes", "new_scratch_dir", "prune", "user_cache_dir"]

APP = "onnx-workbench"


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/onnx-workbench`` (``~/.cache/onnx-workbench``), without creating it."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"  # the XDG spec ignores relative
    return base / APP


def _check_private(folder: Path) -> None:
    """Make ``folder`` (ours) mode 0700; refuse a folder that is a symlink or belongs to someone else."""
    info = os.lstat(folder)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise WorkbenchError(f"The workbench's cache folder '{folder}' is a symlink or not a folder; "
                             "remove it, or set XDG_CACHE_HOME to a folder of your own.")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise WorkbenchError(f"The workbench's cache folder '{folder}' belongs to another user (uid {info.st_uid}); "
                             "remove it, or set XDG_CACHE_HOME to a folder of your own.")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(folder, 0o700)


def user_cache_dir(*parts: str) -> Path:
    """The per-user cache folder (``$XDG_CACHE_HOME/onnx-workbench``, mode 0700), or a folder inside it."""
    root = cache_root()
    root.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        root.mkdir(mode=0o700)
    except FileExistsError:
        pass
    _check_private(root)
    folder = root.joinpath(*parts)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def new_scratch_dir(kind: str, *, keep: int | None = None, max_bytes: int | None = None) -> Path:
    """A new, unique folder ``<cache>/<kind>/<kind>-XXXXXXXX`` (mode 0700).

    With ``keep``/``max_bytes`` the older folders of this kind are pruned first (see ``prune``).
    """
    parent = user_cache_dir(kind)
    if keep is not None or max_bytes is not None:
        prune(parent, prefix=f"{kind}-", keep=(keep if keep is not None else 1 << 30) - 1, max_bytes=max_bytes)
    return Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=parent))


def folder_bytes(folder: Path) -> int:
    """The bytes of the regular files under ``folder`` (symlinks not followed)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                info = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total


def prune(parent: Path, *, prefix: str, keep: int, max_bytes: int | None = None) -> list[Path]:
    """Delete the folders ``parent/<prefix>*`` beyond the newest ``keep``, and the oldest of those while
    together with the newer ones they take more than ``max_bytes``. Returns the folders deleted."""
    try:
        entries = [p for p in parent.iterdir() if p.name.startswith(prefix) and p.is_dir() and not p.is_symlink()]
    except OSError:
        return []

    def modified(p: Path) -> float:
        try:
            return p.stat().st_mtime
        except OSError:
            return 0.0

    entries.sort(key=modified, reverse=True)
    removed: list[Path] = []
    total = 0
    for i, folder in enumerate(entries):
        if not removed and i < keep:
            total += folder_bytes(folder) if max_bytes is not None else 0
            if max_bytes is None or total <= max_bytes:
                continue
        shutil.rmtree(folder, ignore_errors=True)  # this one and every older one
        removed.append(folder)
    return removed
