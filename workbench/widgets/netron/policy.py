"""Which requests the Netron server answers, and which files it serves.

Host: a request reaches the server in one of two ways, and the ``Host`` header says which.

- Directly from a browser on the kernel's machine: ``Host`` is ``127.0.0.1``, ``localhost`` or
  ``[::1]`` with the server's port. A proxy that rewrites ``Host`` to its upstream also lands here.
- Through the Jupyter server (jupyter-server-proxy, ``{base_url}proxy/127.0.0.1:<port>/...``):
  the proxy forwards the browser's ``Host`` unchanged, i.e. the Jupyter server's own host as the
  browser named it (``127.0.0.1:8888``, ``hub.example.org``), and adds ``X-Forwarded-Context:
  {base_url}proxy/127.0.0.1:<port>`` (checked with jupyter-server-proxy 4.6 and tornado 6.6).
  Such a ``Host`` never carries this server's port: a browser talking to the server itself always
  sends that port (the server is never on 80/443). So a page of another site that resolves its
  name to 127.0.0.1 (DNS rebinding) is refused, with or without a forged context header.

Anything else is refused (403) unless the caller allowed that name (``allowed_hosts``, or
``$WORKBENCH_NETRON_ALLOWED_HOSTS``: another reverse proxy in front of the kernel, a port forwarded
under another number).

Files: the model, and the external-data files it names that resolve to a file inside the model's
folder: no absolute names, no ``..``, no symlink out of the folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable

LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
_HOST = re.compile(r"^(\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)(?::(\d{1,5}))?$")
_CONTEXT = re.compile(r"^(?:/[A-Za-z0-9._~!$&'()*+=:@%-]*)*?/proxy/(?:(?:127\.0\.0\.1|localhost):)?(\d{1,5})/?$")


@dataclass(frozen=True)
class Route:
    """How an accepted request came: ``direct``, ``proxy`` (jupyter-server-proxy forwarded the
    browser's Host) or ``allowed`` (a host the caller allowed). ``origin`` and ``prefix`` are the
    page's origin and the path before ``/<token>/`` as the browser sees them, where known."""

    kind: str
    origin: str | None = None
    prefix: str = ""

    def scope(self, token: str) -> str | None:
        """``http://host[:port]{prefix}/<token>/``: the page's folder as the browser sees it."""
        return None if self.origin is None else f"{self.origin}{self.prefix}/{token}/"


def _split_host(value: str) -> tuple[str, int | None] | None:
    match = _HOST.match(value.strip().lower())
    if match is None:
        return None
    port = int(match.group(2)) if match.group(2) else None
    return match.group(1), port


def route_of(hosts: list[str], context: str | None, *, port: int,
             allowed_hosts: Iterable[str] = ()) -> Route | None:
    """The route of a request with ``Host`` header(s) ``hosts`` and ``X-Forwarded-Context``
    ``context`` to the server on ``port``; ``None``: refuse it."""
    if len(hosts) != 1:
        return None
    parsed = _split_host(hosts[0])
    if parsed is None:
        return None
    name, host_port = parsed
    netloc = name if host_port is None else f"{name}:{host_port}"
    proxied = _CONTEXT.match(context or "")
    proxied = proxied if proxied is not None and int(proxied.group(1)) == port else None
    if name in LOOPBACK and host_port == port:
        # Direct; or through a proxy that rewrote Host (the browser's origin is then unknown).
        return Route("direct", f"http://{netloc}") if context is None else Route("direct")
    if proxied is not None and host_port != port:
        return Route("proxy", f"http://{netloc}", proxied.group(0).rstrip("/"))
    allowed = {h.strip().lower() for h in allowed_hosts}
    if netloc in allowed or name in allowed:
        return Route("allowed")
    return None


def external_file(folder: Path, name: str) -> Path | None:
    """``folder/name`` if ``name`` is a relative name without ``..`` that resolves (symlinks
    followed) to a file inside ``folder``; else ``None``."""
    if not name or "\\" in name or "\x00" in name:
        return None
    parts = PurePosixPath(name)
    if parts.is_absolute() or ".." in parts.parts or name.startswith("~"):
        return None
    real_folder = folder.resolve()
    try:
        candidate = (folder / name).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return None
    if real_folder not in candidate.parents or not candidate.is_file():
        return None
    return candidate
