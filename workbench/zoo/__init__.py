"""Demo models built in code (no downloads), each a ``workbench.core.case.ModelCase``.

    >>> import workbench as wb
    >>> case = wb.zoo.get("text_classifier", smoke=True)   # model, example_inputs, spec, make_inputs
    >>> wb.zoo.names()

* ``healthy``: the healthy models ``get`` builds (text and image classifiers, a BERT-like encoder, an MLP);
* ``broken``: the doctor's gallery, one broken model per export problem (``broken.get(name).build()``);
* ``custom_ops``: the custom-operator demo models of notebook 08 (``custom_ops.model(kind)``);
* ``public``: public ``transformers`` architectures from tiny configs (``get("public/gpt2")``; needs
  transformers, imported only then), the doctor's real-failure gallery and healthy ones.

The zoo depends on ``workbench.core`` only.
"""

from __future__ import annotations

from workbench.core.case import ModelCase
from workbench.errors import InvalidInputError
from workbench.zoo.healthy import FACTORIES

__all__ = ["get", "names"]


def names() -> list[str]:
    """The names ``get`` accepts."""
    return list(FACTORIES)


def get(name: str, *, smoke: bool = False) -> ModelCase:
    """Build a healthy zoo model by name, or a public architecture as ``"public/<name>"`` (see
    ``workbench.zoo.public``); ``smoke=True`` gives a smaller size for tests and CI."""
    if name.startswith("public/"):
        from workbench.zoo import public

        return public.get(name).build()
    if name not in FACTORIES:
        raise InvalidInputError(f"No zoo model named {name!r}. Choose one of {names()}.")
    return FACTORIES[name](smoke)
