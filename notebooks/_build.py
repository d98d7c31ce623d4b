"""Build the guided notebooks from their sources in ``notebooks/src/*.md``.

    python notebooks/_build.py          # write notebooks/NN_name.ipynb from notebooks/src/NN_name.md
    python notebooks/_build.py --check  # exit 1 if a committed notebook differs from its source
    python notebooks/_build.py 11 12    # only the notebooks whose names start with 11 or 12

A source is Markdown. Each fenced block opened with ```` ```python ```` becomes a code cell (an
optional ``tags=exercise,check`` after ``python`` sets the cell's tags); everything between code
blocks becomes a Markdown cell, and a line holding only ``+++`` starts a new Markdown cell. Other
fences (```` ```text ````, ```` ```bash ````) stay inside the Markdown. The notebooks are written
without outputs or execution counts, with ``metadata.kernelspec`` set and stable cell ids, so a
rebuild of an unchanged source gives the same file.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import nbformat

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "src"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
_CODE_OPEN = re.compile(r"^```python(?:\s+tags=(?P<tags>[\w,-]+))?\s*$")


def parse(text: str) -> list[dict[str, Any]]:
    """Cells of a source as ``{'kind': 'markdown'|'code', 'source': str, 'tags': [...]}``."""
    cells: list[dict[str, Any]] = []
    markdown: list[str] = []
    code: list[str] | None = None
    tags: list[str] = []

    def flush_markdown() -> None:
        body = "\n".join(markdown).strip("\n")
        if body.strip():
            cells.append({"kind": "markdown", "source": body, "tags": []})
        markdown.clear()

    for number, line in enumerate(text.splitlines(), 1):
        if code is not None:
            if line.rstrip() == "```":
                cells.append({"kind": "code", "source": "\n".join(code).strip("\n"), "tags": tags})
                code = None
            else:
                code.append(line)
            continue
        opened = _CODE_OPEN.match(line)
        if opened:
            flush_markdown()
            code, tags = [], [t for t in (opened.group("tags") or "").split(",") if t]
        elif line.strip() == "+++":
            flush_markdown()
        else:
            markdown.append(line)
    if code is not None:
        raise ValueError(f"a ```python block is not closed (source ends at line {number})")
    flush_markdown()
    return cells


def build(source: Path) -> nbformat.NotebookNode:
    """The notebook of one source file."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    prefix = source.stem.split("_", 1)[0]
    for index, cell in enumerate(parse(source.read_text(encoding="utf-8"))):
        make = nbformat.v4.new_code_cell if cell["kind"] == "code" else nbformat.v4.new_markdown_cell
        new = make(cell["source"])
        new.id = f"nb{prefix}-{index:02d}"
        if cell["tags"]:
            new.metadata["tags"] = list(cell["tags"])
        nb.cells.append(new)
    nbformat.validate(nb)
    return nb


def target_of(source: Path) -> Path:
    return HERE / f"{source.stem}.ipynb"


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def stale() -> list[Path]:
    """Notebooks whose committed file differs from what their source builds."""
    out = []
    for source in sorted(SOURCES.glob("*.md")):
        target = target_of(source)
        if not target.exists() or target.read_text(encoding="utf-8") != render(build(source)):
            out.append(target)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that the notebooks are up to date")
    parser.add_argument("only", nargs="*", help="build only the sources whose names start with these prefixes")
    args = parser.parse_args(argv)
    if args.check:
        out_of_date = stale()
        for path in out_of_date:
            print(f"{path.name} is out of date: run python notebooks/_build.py", file=sys.stderr)
        return 1 if out_of_date else 0
    for source in sorted(SOURCES.glob("*.md")):
        if args.only and not source.name.startswith(tuple(args.only)):
            continue
        target_of(source).write_text(render(build(source)), encoding="utf-8")
        print(f"wrote {target_of(source).relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
