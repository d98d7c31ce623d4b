"""One small hierarchy of errors.

Every message says what was received and how to fix it. Callers catch
``WorkbenchError``; the subclasses let tests and the doctor tell the kinds apart.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["WorkbenchError", "InvalidInputError", "ModelFileError", "UnsupportedModelError", "SpecError", "FeedError",
           "ProviderError", "ExportError", "NonTensorOutputError", "OutputNamesError", "brief", "describe",
           "strip_ansi"]

# Terminal escape sequences (ECMA-48): CSI ``ESC [ params intermediates final`` (colours, cursor
# moves, erases, private modes such as ``ESC[?25l``) and its 8-bit form ``\x9b``; OSC ``ESC ] ... BEL``
# or ``... ESC \`` (window titles, hyperlinks); DCS/SOS/PM/APC strings; two-byte ``ESC x`` sequences.
_ANSI = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"          # CSI
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"  # OSC
    r"|\x1b[PX^_][^\x1b]*\x1b\\"                  # DCS, SOS, PM, APC
    r"|\x1b[!-/]*[0-~]"                            # two-byte escapes (ESC c, ESC ( B, ESC 7 ...)
    r"|[\x1b\x9b\x9d]"                            # a lone ESC (or 8-bit CSI/OSC) left over
)


def strip_ansi(text: str) -> str:
    r"""``text`` without terminal escape sequences (every CSI sequence, colours included, OSC strings
    and two-byte escapes): what torch prints in colour (``\x1b[96m``) reads as plain text."""
    return _ANSI.sub("", text) if ("\x1b" in text or "\x9b" in text or "\x9d" in text) else text


class WorkbenchError(Exception):
    """Base class of every error the workbench raises on purpose. Its message never carries terminal
    escape codes (a message quoting torch's coloured text is shown plain)."""

    def __str__(self) -> str:
        return strip_ansi(super().__str__())


class InvalidInputError(WorkbenchError, ValueError):
    """An argument has the wrong type or value (a model, inputs, a tolerance name...)."""


class ModelFileError(InvalidInputError):
    """An ONNX file is missing, empty, truncated, corrupt or not ONNX at all."""


class UnsupportedModelError(InvalidInputError):
    """ONNX Runtime refuses a readable ONNX model: an opset or op version it no longer implements,
    an op with no kernel for its types, a custom or training op, an invalid graph, an IR version or
    opset newer than this build, a missing system locale. ``failure`` holds the parsed reason, op,
    domain, version, node and the fix (``workbench.core.ort_errors.Failure``)."""

    failure: Any = None


class SpecError(InvalidInputError):
    """An ``ExportSpec`` does not fit the model it is used with."""


class OutputNamesError(SpecError):
    """``output_names`` has another count than the tensors the model returns. ``given`` are the names
    received, ``count`` the tensors returned, ``suggested`` one name per tensor (from the output's keys)."""

    def __init__(self, message: str, *, given: tuple[str, ...] = (), count: int = 0,
                 suggested: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.given, self.count, self.suggested = tuple(given), count, tuple(suggested)


class FeedError(InvalidInputError):
    """The inputs fed to a session do not match the graph's inputs (names, dtypes, ranks)."""


class ProviderError(InvalidInputError):
    """An execution provider name that ONNX Runtime does not know, or bad provider options."""


class ExportError(WorkbenchError):
    """``torch.onnx.export`` failed.

    Carries the stage that failed, the captured exception and the warnings, and,
    when the doctor has looked at it, a diagnosis.
    """

    def __init__(
        self,
        message: str,
        *,
        stage: str,
        exception: BaseException | None = None,
        warnings: list[str] | None = None,
        diagnosis: Any = None,
    ) -> None:
        super().__init__(message)
        self.stage = stage
        self.exception = exception
        self.warnings = list(warnings or [])
        self.diagnosis = diagnosis

    def __str__(self) -> str:
        text = super().__str__()
        if self.diagnosis is not None:
            text += f"\n\nDiagnosis:\n{self.diagnosis}"
        return text


class NonTensorOutputError(ExportError):
    """The model returns something that is not a tensor (a ``transformers`` cache object, a custom
    class) where an ONNX output must be: ``path`` says where (``output.past_key_values``),
    ``type_name`` what it is, ``is_cache`` whether it is a key/value cache (fix: ``use_cache=False``)."""

    def __init__(self, message: str, *, path: str = "output", type_name: str = "", is_cache: bool = False) -> None:
        super().__init__(message, stage="outputs")
        self.path, self.type_name, self.is_cache = path, type_name, is_cache


def describe(value: Any) -> str:
    """A short description of a received value for error messages."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        return f"{type(value).__name__}(shape={tuple(shape)}, dtype={dtype})"
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{type(value).__name__} {text}"


# ONNX Runtime prefixes messages with the C++ source file and function, e.g.
# "/onnxruntime_src/onnxruntime/core/.../x.cc:123 void f(int) ".
_ORT_SOURCE = re.compile(r"\S*onnxruntime_src\S*(:\d+)?\s+([\w:~<>*&, ]+\([^)]*\)\s*)?")
_NOT_MEANINGFUL = ("Failed to export", "Failed to convert", "Traceback (most recent call last)")


def _innermost(exc: BaseException) -> tuple[BaseException, list[BaseException]]:
    """The innermost cause of ``exc`` (following ``.exception`` and ``__cause__``) and the wrappers."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        inner = getattr(current, "exception", None)
        current = inner if isinstance(inner, BaseException) else current.__cause__
    return chain[-1], chain[:-1]


def _first_line(text: str) -> str:
    text = _ORT_SOURCE.sub("", strip_ansi(text))
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    meaningful = [line for line in lines if not line.startswith(_NOT_MEANINGFUL)] or lines or [""]
    first, rest = meaningful[0], meaningful[1:]
    while first.endswith(":") and rest:  # "... for the following indices:" continues on the next line
        first, rest = f"{first} {rest[0]}", rest[1:]
    return first


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = text[: max(1, limit - 1)]
    space = head.rfind(" ")
    if space > limit // 2:
        head = head[:space]
    return head.rstrip(" ,;:") + "\u2026"


def brief(exc_or_text: BaseException | str | None, limit: int = 300) -> str:
    """One line for a message: ``"Type: first meaningful line"`` of an exception's innermost cause
    (the wrapping exceptions' types follow in brackets), terminal escape sequences (``strip_ansi``) and
    ONNX Runtime's source paths removed, cut at a word boundary with an ellipsis. Text is shortened the same way."""
    if exc_or_text is None:
        return ""
    if not isinstance(exc_or_text, BaseException):
        return _cut(_first_line(str(exc_or_text)), limit)
    inner, wrappers = _innermost(exc_or_text)
    line = _first_line(str(inner))
    text = f"{type(inner).__name__}: {line}" if line else type(inner).__name__
    via = [type(w).__name__ for w in reversed(wrappers) if type(w) is not type(inner)]
    if via:
        text += f" [via {', '.join(dict.fromkeys(via))}]"
    return _cut(text, limit)
