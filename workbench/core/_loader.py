"""Import a module by dotted name or a Python file by path, with clear errors (for CLIs)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType

from workbench.errors import InvalidInputError


def import_module_or_file(module_text: str) -> ModuleType:
    """``pkg.module`` (importable from the current folder too) or ``path/to/file.py``."""
    if module_text.endswith(".py") or os.sep in module_text or "/" in module_text:
        path = Path(module_text)
        if not path.is_file():
            raise InvalidInputError(f"No Python file at '{path}' (from the model argument). Check the path.")
        name = re.sub(r"\W", "_", path.stem)
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise InvalidInputError(f"'{path}' cannot be imported as a Python module. Pass a .py file.")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise InvalidInputError(f"Importing '{path}' raised {type(exc).__name__}: {exc}. Fix the file first.") from exc
        return module
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # `onnx-workbench export mymodels:build` finds ./mymodels.py
    try:
        return importlib.import_module(module_text)
    except ModuleNotFoundError as exc:
        raise InvalidInputError(
            f"No module named {module_text!r} ({exc}). Run from the folder that holds it, install it, or pass "
            f"a file path such as ./{module_text.replace('.', '/')}.py:factory."
        ) from exc
    except Exception as exc:
        raise InvalidInputError(f"Importing {module_text!r} raised {type(exc).__name__}: {exc}.") from exc
