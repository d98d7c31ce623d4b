"""One small hierarchy of errors.

Every message says what was received and how to fix it. Callers catch
``WorkbenchError``; the subclasses let tests and the doctor tell the kinds apart.
"""

from __future__ import annotations

from typing import Any


class WorkbenchError(Exception):
    """Base class of every error the workbench raises on purpose."""


class InvalidInputError(WorkbenchError, ValueError):
    """An argument has the wrong type or value (a model, inputs, a tolerance name...)."""


class ModelFileError(InvalidInputError):
    """An ONNX file is missing, empty, truncated, corrupt or not ONNX at all."""


class SpecError(InvalidInputError):
    """An ``ExportSpec`` does not fit the model it is used with."""


class FeedError(InvalidInputError):
    """The inputs fed to a session do not match the graph's inputs (names, dtypes, ranks)."""


class ProviderError(InvalidInputError):
    """An execution provider name that ONNX Runtime does not know, or bad provider options."""


class CancelledError(WorkbenchError):
    """A long run (a sweep, a probe) was cancelled by its caller."""


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
