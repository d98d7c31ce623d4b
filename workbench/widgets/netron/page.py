"""The page the Netron server sends: Netron's own ``index.html`` with the workbench's additions.

- meta tags that make Netron open the served model at start (what ``netron.serve`` adds);
- a Content-Security-Policy (also sent as a header, see ``page_csp``): the page loads and connects
  to its own server only, runs no inline script and no ``eval``;
- ``workbench-offline.js`` before Netron's modules (no consent dialog, no telemetry);
- ``workbench-overlay.js``: numbers on the drawing (``overlay.py``; it polls ``wb-overlay.json``);
- ``workbench-netron.css``: the ``Workbench Brackets`` web font (``brackets.css``) put first in
  every font stack of Netron's CSS, for the shape brackets U+3008/U+3009 that DejaVu and
  Liberation lack (without it the labels show missing-glyph boxes: ``data□1000×64□``).
"""

from __future__ import annotations

import re
import urllib.parse
from functools import lru_cache
from pathlib import Path

from workbench.core._format import esc

OFFLINE_SCRIPT = Path(__file__).with_name("offline.js")
OVERLAY_SCRIPT = Path(__file__).with_name("overlay.js")
BRACKETS_CSS = Path(__file__).with_name("brackets.css")
FONT_FAMILY = "Workbench Brackets"
#: What the served page may load and connect to: its own origin only.
CSP = ("default-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data: blob:; "
       "style-src 'self' 'unsafe-inline'; font-src 'self' data:; worker-src 'self' blob:; "
       "frame-src 'none'; object-src 'none'; form-action 'none'; base-uri 'none'")
_CSP_META = re.compile(r'<meta http-equiv="Content-Security-Policy"[^>]*>')
_VERSION_META = re.compile(r'<meta name="version" content="[^"]*">')
_INDEX_SCRIPT = '<script type="text/javascript" src="index.js"></script>'
_CSS_RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")
_FONT_FAMILY = re.compile(r"font-family\s*:\s*([^;]+?)\s*(?:;|$)")
_SCOPE = re.compile(r"^http://[^\s;,'\"/]+(?:/[^\s;,'\"]*)?/$")


def netron_root() -> Path:
    """The folder of the installed ``netron`` package (its front end's static files)."""
    import netron

    return Path(netron.__file__).resolve().parent


def netron_version() -> str:
    import netron

    return str(getattr(netron, "__version__", "0.0.0"))


def page_csp(scope: str | None = None) -> str:
    """The CSP header. With ``scope`` (``http://host[:port]/path/<token>/``, the page's folder as the
    browser sees it) the page may load and fetch only under its own folder: through the Jupyter
    server the page shares Jupyter's origin, and ``'self'`` would let it reach Jupyter's API too.
    (An ``http:`` source also matches the ``https:`` URL of the same host.)"""
    if scope is None or not _SCOPE.match(scope):
        return CSP
    return CSP.replace("'self'", scope)


def render_index(model_name: str, *, version: str | None = None, root: Path | None = None) -> str:
    """Netron's ``index.html`` with the meta tags its Python server adds (so it opens ``model_name``
    at start), a same-origin-only CSP, the offline script before Netron's own scripts, and the
    workbench's style sheet after Netron's styles."""
    text = ((root or netron_root()) / "index.html").read_text(encoding="utf-8")
    name = esc(model_name)
    meta = "\n".join([
        '<meta name="type" content="Python">',
        f'<meta name="version" content="{esc(version or netron_version())}">',
        f'<meta name="file" content="data/{urllib.parse.quote(model_name)}">',
        f'<meta name="name" content="{name}">',
        f'<meta name="identifier" content="{name}">',
    ])
    text, n_version = _VERSION_META.subn(lambda _: meta, text, count=1)
    text, n_csp = _CSP_META.subn(lambda _: f'<meta http-equiv="Content-Security-Policy" content="{CSP}">', text, count=1)
    if not n_csp:
        text = text.replace("<head>", f'<head>\n<meta http-equiv="Content-Security-Policy" content="{CSP}">', 1)
    if not n_version:
        text = text.replace("</head>", meta + "\n</head>", 1)
    offline = ('<script type="text/javascript" src="workbench-offline.js"></script>\n'
               '<script type="text/javascript" src="workbench-overlay.js"></script>')
    if _INDEX_SCRIPT in text:
        text = text.replace(_INDEX_SCRIPT, _INDEX_SCRIPT + "\n" + offline, 1)
    else:
        text = text.replace("</head>", offline + "\n</head>", 1)
    # Last in <head>: the overrides win over Netron's rules of the same selectors.
    return text.replace("</head>", '<link rel="stylesheet" type="text/css" href="workbench-netron.css">\n</head>', 1)


def font_overrides(css: str) -> str:
    """Each rule of ``css`` that sets a font stack, again, with the brackets font first (it has
    only U+3008/U+3009, so every other character falls through to Netron's own stack)."""
    rules = []
    for selector, body in _CSS_RULE.findall(css):
        match = _FONT_FAMILY.search(body)
        if match is None or match.group(1).strip() in ("inherit", "initial", "unset"):
            continue
        stack = match.group(1).strip()
        if FONT_FAMILY not in stack:
            rules.append(f'{" ".join(selector.split())} {{ font-family: "{FONT_FAMILY}", {stack}; }}')
    return "\n".join(rules)


@lru_cache(maxsize=4)
def netron_css(root: Path | None = None) -> str:
    """``workbench-netron.css``: the brackets font and the font-stack overrides of Netron's CSS
    (its ``grapher.css`` and the ``<style>`` of its ``index.html``)."""
    root = root or netron_root()
    sources = [(root / "grapher.css").read_text(encoding="utf-8")]
    sources += re.findall(r"<style[^>]*>(.*?)</style>", (root / "index.html").read_text(encoding="utf-8"), re.S)
    overrides = "\n".join(font_overrides(source) for source in sources)
    return BRACKETS_CSS.read_text(encoding="ascii") + "\n" + overrides + "\n"
