"""The serve extras are optional: import them here, on first use, with an error that says how to install them."""

from __future__ import annotations

import importlib
from types import ModuleType

from workbench.errors import WorkbenchError

__all__ = ["require"]


def require(module: str, *, extra: str = "serve", what: str = "wb.serve") -> ModuleType:
    """Import ``module`` or raise ``WorkbenchError`` naming ``pip install onnx-workbench[extra]``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise WorkbenchError(
            f"{what} needs the optional package {module.split('.')[0]!r}, which is not importable here "
            f"({type(exc).__name__}: {exc}). Install it with: pip install 'onnx-workbench[{extra}]'."
        ) from exc
