"""Where an export broke in the model's own code: the file, line and text of that line, and the module
path (``encoder.layer.0.attention.self``), read from what torch's errors carry.

torch.export's errors quote the user's frames ("from user code:" / "Original traceback:" blocks of
``File "...", line N, in fn`` lines, outermost first); the ONNX translation's errors quote the FX
node's stack trace the same way; errors raised while the model's Python code runs (non-strict
tracing, the TorchScript exporter, the workbench's own checks) carry them in their traceback. Of
all these frames the innermost one in code that is not torch's, onnxscript's or the workbench's is
where it broke; the innermost one in a file that defines one of the model's module classes is the
model's own line (they differ when the model calls a library helper, e.g. transformers' masking
utilities). The module path follows the chain of frames down the module tree: each frame that is a
module's ``forward`` descends into the first submodule of that class.
"""

from __future__ import annotations

import inspect
import linecache
import os
import re
import traceback
from dataclasses import dataclass
from typing import Any, Iterable

import torch
from torch import nn

__all__ = ["Frame", "Location", "locate"]

_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)(?:\n[ \t]*(\S[^\n]*))?')
_WB = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SKIP = [os.path.dirname(torch.__file__) + os.sep] + [os.path.join(_WB, d) + os.sep for d in ("core", "doctor", "cli")]
for _mod in ("onnxscript", "onnx", "onnxruntime", "contextlib", "functools"):
    try:
        _SKIP.append(os.path.dirname(__import__(_mod).__file__) + os.sep)
    except Exception:  # pragma: no cover - optional
        pass
_STDLIB = os.path.dirname(os.__file__) + os.sep


@dataclass(frozen=True)
class Frame:
    """One frame: file, line, function and that line's text."""

    file: str
    line: int
    function: str
    source: str = ""

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Location:
    """Where it broke: ``frame`` (the innermost frame outside torch), ``model_frame`` (the innermost
    frame in a file of the model's module classes; None when no frame is), ``module`` (dotted path,
    '' for the root, None when unknown) and its class name."""

    frame: Frame
    model_frame: Frame | None = None
    module: str | None = None
    module_type: str | None = None

    def evidence(self) -> dict[str, Any]:
        own = self.model_frame or self.frame
        out: dict[str, Any] = {"location": own.location, "source": own.source, "function": own.function}
        if self.model_frame is not None and self.model_frame != self.frame:
            out["library_location"], out["library_source"] = self.frame.location, self.frame.source
        if self.module is not None:
            out["module"], out["module_type"] = self.module, self.module_type
        return out

    def where(self) -> str:
        own = self.model_frame or self.frame
        module = f"module {self.module!r} ({self.module_type}) " if self.module else \
            f"the root module ({self.module_type}) " if self.module == "" else ""
        return f"{module}at {own.location}: {own.source}"


def _skipped(path: str) -> bool:
    return any(path.startswith(p) for p in _SKIP) or (path.startswith(_STDLIB) and "site-packages" not in path) \
        or path.startswith("<")


def _text_frames(text: str) -> list[Frame]:
    frames = []
    for m in _FRAME.finditer(text):
        source = (m.group(4) or "").strip() or linecache.getline(m.group(1), int(m.group(2))).strip()
        frames.append(Frame(m.group(1), int(m.group(2)), m.group(3), source))
    return frames


def _traceback_frames(exc: BaseException) -> list[Frame]:
    return [Frame(f.filename, f.lineno or 0, f.name, (f.line or "").strip())
            for f in traceback.extract_tb(exc.__traceback__)]


def frames_of(chain: Iterable[BaseException], text: str) -> list[Frame]:
    """The frames of the user's code, outermost first: the quoted blocks of ``text`` when there are any
    (torch.export's innermost view), else the exceptions' tracebacks (innermost exception last)."""
    quoted = [f for f in _text_frames(text) if not _skipped(f.file)]
    if quoted:
        return quoted
    frames: list[Frame] = []
    for exc in reversed(list(chain)):  # the chain is outermost first; its innermost exception holds the deepest frames
        frames = [f for f in _traceback_frames(exc) if not _skipped(f.file)] or frames
        if frames:
            break
    return frames


def _forward_span(cls: type) -> tuple[str, int, int] | None:
    fn = getattr(cls, "forward", None)
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    try:
        lines, start = inspect.getsourcelines(fn)
    except (OSError, TypeError):
        return None
    return os.path.abspath(code.co_filename), start, start + len(lines)


def _module_path(model: nn.Module, frames: list[Frame]) -> tuple[str | None, str | None]:
    spans = {}
    for cls in {type(m) for m in model.modules()}:
        for klass in cls.__mro__:
            span = _forward_span(klass) if "forward" in vars(klass) else None
            if span is not None:
                spans[cls] = span
                break

    def inside(m: nn.Module, f: Frame) -> bool:
        span = spans.get(type(m))
        return span is not None and span[0] == os.path.abspath(f.file) and span[1] <= f.line < span[2]

    path, current, found = "", model, False
    for f in frames:
        if inside(current, f):
            found = True
            continue
        for name, sub in current.named_modules():
            if name and inside(sub, f):
                path, current, found = f"{path}.{name}" if path else name, sub, True
                break
    return (path, type(current).__name__) if found else (None, None)


def model_files(model: nn.Module) -> set[str]:
    """The source files of the model's module classes (their ``forward`` and helpers live there)."""
    out = set()
    for cls in {type(m) for m in model.modules()}:
        try:
            out.add(os.path.abspath(inspect.getfile(cls)))
        except (OSError, TypeError):
            pass
    return out


def locate(model: nn.Module, chain: Iterable[BaseException], text: str) -> Location | None:
    """Where the export of ``model`` broke, from the exception ``chain`` and its ``text``; None when no
    frame of code outside torch is known."""
    frames = frames_of(list(chain), text)
    if not frames:
        return None
    own_files = model_files(model)
    own = [f for f in frames if os.path.abspath(f.file) in own_files]
    module, module_type = _module_path(model, frames)
    return Location(frames[-1], own[-1] if own else None, module, module_type)


def return_site(model: nn.Module, field: str | None = None) -> Location | None:
    """Where ``model.forward`` hands back its output: the last line naming ``field=`` (a ModelOutput field
    such as ``past_key_values``), else its last ``return`` line."""
    fn = inspect.unwrap(type(model).forward)
    try:
        lines, start = inspect.getsourcelines(fn)
        file = os.path.abspath(inspect.getsourcefile(fn) or "")
    except (OSError, TypeError):
        return None
    wanted = [i for i, ln in enumerate(lines) if field and re.search(rf"\b{re.escape(field)}\s*=", ln)]
    wanted = wanted or [i for i, ln in enumerate(lines) if ln.strip().startswith("return")]
    if not wanted:
        return None
    i = wanted[-1]
    frame = Frame(file, start + i, fn.__name__, lines[i].strip())
    return Location(frame, frame, "", type(model).__name__)
