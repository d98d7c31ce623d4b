"""The names and dynamic-axes editor of ``ExportForm``: one row per input and output, one field
per dimension (empty: static; a name such as ``batch``: symbolic)."""

from __future__ import annotations

from typing import Mapping, Sequence

import ipywidgets as widgets

from workbench.core._format import esc


class TensorRow(widgets.HBox):
    """Name field and one symbolic-name field per dimension of one input or output."""

    def __init__(self, kind: str, name: str, shape: Sequence[int], axes: Mapping[int, str]) -> None:
        self.kind = kind
        self.shape = tuple(int(s) for s in shape)
        self.name = widgets.Text(value=name, placeholder=f"{kind} name", layout=widgets.Layout(width="150px"))
        self.name.add_class(f"wb-{kind}-name")
        self.dims = [widgets.Text(value=axes.get(i, ""), placeholder="static", tooltip=f"dimension {i}, size {size}",
                                  layout=widgets.Layout(width="90px")) for i, size in enumerate(self.shape)]
        cells = [widgets.VBox([widgets.HTML(f"<small>dim {i} = {size}</small>"), field],
                              layout=widgets.Layout(margin="0 4px 0 0"))
                 for i, (size, field) in enumerate(zip(self.shape, self.dims))]
        label = widgets.HTML(f"<small>{esc(kind)}</small><br><code>{esc(list(self.shape))}</code>",
                             layout=widgets.Layout(width="90px"))
        super().__init__([label, widgets.VBox([widgets.HTML("<small>name</small>"), self.name]), *cells],
                         layout=widgets.Layout(align_items="flex-end", margin="2px 0"))

    def axes(self) -> dict[int, str]:
        """``{dimension: symbol}`` for the dimensions given a symbolic name."""
        return {i: field.value.strip() for i, field in enumerate(self.dims) if field.value.strip()}

    def set_axes(self, axes: Mapping[int, str]) -> None:
        for i, field in enumerate(self.dims):
            field.value = axes.get(i, "")


class AxesEditor(widgets.VBox):
    """Rows for the inputs (from the example) and the outputs (from a run of the model, which
    ``set_outputs`` adds once it is done)."""

    def __init__(self, inputs: Sequence[tuple[str, Sequence[int]]], outputs: Sequence[tuple[str, Sequence[int]]],
                 dynamic_axes: Mapping[str, Mapping[int, str]]) -> None:
        self.input_rows = [TensorRow("input", n, s, dynamic_axes.get(n, {})) for n, s in inputs]
        self.output_rows: list[TensorRow] = []
        # line-height: an HTML widget's text otherwise takes the controls' 28 px line height, so a
        # note that wraps (a 1000 px page) showed doubled line spacing.
        self.note = widgets.HTML("<div class='wb-axes-note' style='color:#6e7781; font-size: 12px; line-height: 1.4; "
                                 "white-space: normal; margin: 4px 0;'>Leave a dimension empty for a static size, or "
                                 "give it a symbolic name (the same name on two tensors means equal sizes).</div>")
        super().__init__()
        self.add_class("wb-axes-editor")
        self.set_outputs(outputs, dynamic_axes)

    def set_outputs(self, outputs: Sequence[tuple[str, Sequence[int]]],
                    dynamic_axes: Mapping[str, Mapping[int, str]]) -> None:
        """Replace the output rows (names and shapes of the model's outputs)."""
        self.output_rows = [TensorRow("output", n, s, dynamic_axes.get(n, {})) for n, s in outputs]
        self.children = (*self.input_rows, *self.output_rows, self.note)

    @property
    def rows(self) -> list[TensorRow]:
        return [*self.input_rows, *self.output_rows]

    def input_names(self) -> tuple[str, ...]:
        return tuple(r.name.value.strip() for r in self.input_rows)

    def output_names(self) -> tuple[str, ...]:
        return tuple(r.name.value.strip() for r in self.output_rows)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {r.name.value.strip(): r.axes() for r in self.rows if r.axes()}

    def row(self, name: str) -> TensorRow:
        """The row whose name field reads ``name``."""
        for r in self.rows:
            if r.name.value.strip() == name:
                return r
        raise KeyError(f"No input or output named {name!r}; the rows are {[r.name.value for r in self.rows]}.")
