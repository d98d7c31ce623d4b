"""The one loader for what a command-line MODEL argument names, as a ``ModelCase``.

    zoo:NAME (or a bare zoo name)     a demo model of ``workbench.zoo``
    package.module:factory            imported from the current folder or the installed packages
    path/to/file.py:factory           the file is imported as a module of a private name

``file.py`` is imported under a private name (``_wb_user_<stem>_<hash>``), never its bare stem: a
``./onnx.py:build`` does not replace the real ``onnx`` in ``sys.modules``. ``module:factory``
looks in the current folder first while it is imported; ``sys.path`` is restored afterwards.

``module:factory`` and ``file.py:factory`` IMPORT that code and CALL the factory: name only code
you trust. The factory takes no arguments and returns a ``ModelCase`` (for example
``workbench.zoo.broken:size_one_batch``) or a tuple ``(model, example_inputs[, spec])``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

from workbench import zoo
from workbench.core.case import ModelCase, as_case
from workbench.errors import InvalidInputError, describe

FORMS = "zoo:NAME (or a zoo name), module:factory or path/to/file.py:factory"
#: The help's note on MODEL arguments (every command's --help ends with it).
HELP = (f"MODEL is {FORMS}. module:factory and file.py:factory import that code and call the factory, which "
        "returns a ModelCase or (model, example_inputs[, spec]): name only code you trust.")


def private_module_name(path: Path) -> str:
    """The name a file is imported under: private, and one per file (``_wb_user_<stem>_<hash>``)."""
    resolved = str(path.resolve())
    digest = hashlib.sha256(resolved.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"_wb_user_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{digest}"


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise InvalidInputError(f"No Python file at '{path}' (from the model argument). Check the path.")
    name = private_module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InvalidInputError(f"'{path}' cannot be imported as a Python module. Pass a .py file.")
    module = importlib.util.module_from_spec(spec)
    # Registered (under the private name) while it runs: dataclasses, pickling and torch look
    # classes up by their module's name.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise InvalidInputError(f"Importing '{path}' raised {type(exc).__name__}: {exc}. Fix the file first.") from exc
    return module


@contextlib.contextmanager
def _current_folder_first() -> Iterator[None]:
    """The current folder first on ``sys.path`` meanwhile (``onnx-workbench export mymodels:build``
    finds ./mymodels.py, and the factory its own imports); ``sys.path`` is restored afterwards."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added:
            try:
                sys.path.remove(cwd)
            except ValueError:  # the imported code removed it itself
                pass


def import_module_or_file(module_text: str) -> ModuleType:
    """``pkg.module`` (importable from the current folder too) or ``path/to/file.py``."""
    if module_text.endswith(".py") or os.sep in module_text or "/" in module_text:
        return _import_file(Path(module_text))
    try:
        with _current_folder_first():
            return importlib.import_module(module_text)
    except ModuleNotFoundError as exc:
        raise InvalidInputError(
            f"No module named {module_text!r} ({exc}). Run from the folder that holds it, install it, or pass "
            f"a file path such as ./{module_text.replace('.', '/')}.py:factory."
        ) from exc
    except Exception as exc:
        raise InvalidInputError(f"Importing {module_text!r} raised {type(exc).__name__}: {exc}.") from exc


def _factory(module_text: str, attr: str) -> Any:
    module = import_module_or_file(module_text)
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))[:12]
        what = "no attribute" if factory is None else f"a non-callable {type(factory).__name__}"
        raise InvalidInputError(
            f"{module_text!r} has {what} {attr!r}. Name a factory function; callables there: {found}.")
    return factory


def _from_factory(text: str) -> ModelCase:
    module_text, _, attr = text.rpartition(":")
    if not module_text or not attr.isidentifier():
        raise InvalidInputError(f"Cannot read {text!r} as module:factory; e.g. mypkg.models:build_model.")
    with _current_folder_first():
        factory = _factory(module_text, attr)
        try:
            made = factory()
        except Exception as exc:
            raise InvalidInputError(f"The factory {text} raised {type(exc).__name__}: {exc}.") from exc
    if isinstance(made, ModelCase):
        return made
    try:
        return as_case(made, name=re.sub(r"\W", "_", attr))
    except InvalidInputError as exc:
        raise InvalidInputError(
            f"The factory {text} must return a ModelCase or (model, example_inputs[, spec]); it returned "
            f"{describe(made)}. {exc}"
        ) from exc


def _zoo_case(name: str, smoke: bool) -> ModelCase:
    from workbench.zoo import broken

    if name not in zoo.names() and name in broken.names():
        raise InvalidInputError(f"{name!r} is a broken model of the doctor's gallery: pass workbench.zoo.broken:{name}.")
    return zoo.get(name, smoke=smoke)


def load_case(text: str, *, smoke: bool = False) -> ModelCase:
    """The ``ModelCase`` a MODEL argument names (see the module docstring); ``smoke`` builds a
    zoo model at its small size."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError(f"A model argument is needed: {FORMS}. Received {text!r}.")
    if text.startswith("zoo:"):
        return _zoo_case(text[len("zoo:"):], smoke)
    if text.endswith(".onnx"):
        raise InvalidInputError(f"{text!r} is an ONNX file, but this command needs the PyTorch model: pass {FORMS}.")
    if ":" in text:
        return _from_factory(text)
    if text in zoo.names():
        return _zoo_case(text, smoke)
    raise InvalidInputError(f"Cannot load the model {text!r}: expected {FORMS}. Zoo models: {zoo.names()}.")
