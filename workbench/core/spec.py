"""``ExportSpec``: what to export and how, independent of any model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Mapping

from workbench.core._checks import is_int
from workbench.errors import SpecError

Exporter = Literal["dynamo", "torchscript"]
DynamicAxes = Mapping[str, Mapping[int, str]]

#: The opsets ``torch.onnx.export`` takes (both exporters). torch 2.13's default is 20. The dynamo
#: exporter translates at opset 18 or newer; asked for a lower opset it exports at 18 and converts the
#: file down with onnx's version converter, and where an op has no older form (LayerNormalization
#: below 17...) the file stays at 18 -- ``wb.export`` then warns (see ``core/_export_notes.py``).
MIN_OPSET, MAX_OPSET, DEFAULT_OPSET = 7, 26, 20
#: The lowest opset the dynamo exporter translates to; lower ones are converted down afterwards.
DYNAMO_BASE_OPSET = 18


def _normalize_axes(dynamic_axes: Any) -> dict[str, dict[int, str]]:
    """Accept ``{name: {dim: label}}`` or torch's ``{name: [dims]}`` form."""
    if dynamic_axes is None:
        return {}
    if not isinstance(dynamic_axes, Mapping):
        raise SpecError(
            f"dynamic_axes must be a dict such as {{'input_ids': {{0: 'batch', 1: 'seq'}}}}, "
            f"received {type(dynamic_axes).__name__}."
        )
    out: dict[str, dict[int, str]] = {}
    for name, axes in dynamic_axes.items():
        if isinstance(axes, Mapping):
            items = list(axes.items())
        elif isinstance(axes, (list, tuple)):
            items = [(int(d), f"{name}_dim{d}") for d in axes]
        else:
            raise SpecError(
                f"dynamic_axes[{name!r}] must map dimension index to a name, e.g. {{0: 'batch'}}, "
                f"received {axes!r}."
            )
        dims: dict[int, str] = {}
        for dim, label in items:
            if not is_int(dim, 0):
                raise SpecError(
                    f"dynamic_axes[{name!r}] has dimension {dim!r}; dimensions are ints >= 0 "
                    "(0 is the batch dimension)."
                )
            if not isinstance(label, str) or not label.isidentifier():
                raise SpecError(
                    f"dynamic_axes[{name!r}][{dim}] is {label!r}; use an identifier such as 'batch'."
                )
            dims[dim] = label
        out[str(name)] = dims
    return out


@dataclass(frozen=True)
class ExportSpec:
    """How to export a model to ONNX.

    ``dynamic_axes`` maps an input or output name to ``{dimension: symbolic name}``;
    the same symbolic name on two inputs means the two sizes are equal. For the dynamo
    exporter it is translated to ``dynamic_shapes``. ``opset`` is any opset torch takes
    (``MIN_OPSET``..``MAX_OPSET``); the default 18 is the one the dynamo exporter translates at, so
    nothing is converted (torch's own default is 20). Below 18 the dynamo exporter converts the file
    down, and ``wb.export`` warns if the file did not reach the opset asked for.
    """

    input_names: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ()
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)
    opset: int = 18
    exporter: Exporter = "dynamo"
    do_constant_folding: bool = True
    external_data: bool = False

    def __post_init__(self) -> None:
        for attr in ("input_names", "output_names"):
            value = getattr(self, attr)
            if isinstance(value, str):
                value = (value,)
            value = tuple(value)
            if not all(isinstance(v, str) and v for v in value):
                raise SpecError(f"{attr} must be non-empty strings, received {value!r}.")
            if len(set(value)) != len(value):
                raise SpecError(f"{attr} has duplicates: {value!r}. Each name must be unique.")
            object.__setattr__(self, attr, value)
        object.__setattr__(self, "dynamic_axes", _normalize_axes(self.dynamic_axes))
        if self.exporter not in ("dynamo", "torchscript"):
            raise SpecError(
                f"exporter must be 'dynamo' or 'torchscript', received {self.exporter!r}."
            )
        if not isinstance(self.opset, int) or isinstance(self.opset, bool) or not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise SpecError(
                f"opset must be an int between {MIN_OPSET} and {MAX_OPSET}, received {self.opset!r}. "
                f"Try {DEFAULT_OPSET} (torch's default)."
            )

    def replace(self, **changes: Any) -> ExportSpec:
        from dataclasses import replace

        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExportSpec:
        """Inverse of ``to_dict``, also after a JSON round trip (which turns dims into strings)."""
        data = dict(data)
        axes = data.get("dynamic_axes") or {}
        data["dynamic_axes"] = {k: {int(d): v for d, v in dims.items()} for k, dims in axes.items()}
        return cls(**data)
