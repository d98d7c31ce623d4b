"""``onnx-workbench serve``: serve an ONNX file over HTTP (the app of ``wb.serve``: micro-batching,
input validation, back-pressure, ``/metrics``) in the foreground until Ctrl-C, which drains the queue
(requests already accepted are answered) and exits 0.

    onnx-workbench serve model.onnx --config tuned.json --port 8000

The URL goes to stdout on a line of its own (``serving at http://127.0.0.1:8000``), as soon as the
server answers; everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from typing import Any

from workbench.cli import args as cli_args
from workbench.cli.command import EXIT_OK, Command, say

HELP = "serve an ONNX file over HTTP with micro-batching, in the foreground until Ctrl-C"
#: Seconds ``stop`` waits for the requests already accepted to be answered.
DRAIN_S = 30.0


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, received {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, received {text}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, received {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535 (0: any free port), received {value}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("onnx_model", metavar="ONNX",
                   help="the .onnx file to serve (or a tune result JSON: its chosen model and config)")
    p.add_argument("--config", type=Path, metavar="JSON",
                   help="the session config: a file written by SessionConfig.to_json or TuneResult.save "
                        "(--provider/--opt-level/--threads change it)")
    p.add_argument("--host", default="127.0.0.1",
                   help="the address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it to "
                        "the network, with no authentication)")
    p.add_argument("--port", type=_port, default=8000, help="the port (default 8000; 0: any free port)")
    p.add_argument("--max-batch", type=cli_args.positive_int, default=16,
                   help="most requests run as one batch (default 16; 1 turns batching off)")
    p.add_argument("--max-wait-ms", type=_non_negative_float, default=5.0,
                   help="longest the oldest queued request waits for others to join its batch (default 5)")
    p.add_argument("--max-queue", type=cli_args.positive_int, default=256,
                   help="requests queued before the server answers 503 with Retry-After (default 256)")
    p.add_argument("--workers", type=cli_args.positive_int, default=1,
                   help="threads running batches at once (default 1)")
    cli_args.add_session(p)


def config_of(args: argparse.Namespace) -> Any:
    """The session config: --config's JSON (else a tune JSON's own config, else the server's default, which
    keeps ONNX Runtime's threads from spinning), changed by --provider/--opt-level/--threads."""
    from workbench.core.serve.server import SERVE_DEFAULT_CONFIG
    from workbench.core.session import SessionConfig

    source = args.config if args.config is not None else (args.onnx_model if args.onnx_model.endswith(".json") else None)
    base = SessionConfig.from_json(source) if source is not None else SERVE_DEFAULT_CONFIG
    return cli_args.config_from(args, base)


def _wait_for_interrupt(server: Any) -> None:
    """Block until Ctrl-C (SIGINT) or SIGTERM, or until the server stops on its own."""
    stop = threading.Event()

    def handle(signum: int, frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            if not server.running:
                say("the server stopped")
                return
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run(args: argparse.Namespace) -> int:
    from workbench.core.serve import serve

    config = config_of(args)
    say(f"loading {args.onnx_model} ({config.label()}) ...")
    server = serve(args.onnx_model, config=config, host=args.host, port=args.port, max_batch=args.max_batch,
                   max_wait_ms=args.max_wait_ms, max_queue=args.max_queue, workers=args.workers)
    try:
        print(f"serving at {server.url}", flush=True)
        say(f"POST {server.url}/v1/predict  GET {server.url}/v1/health  /v1/metadata  /metrics  "
            f"(max_batch={args.max_batch}, max_wait_ms={args.max_wait_ms:g}); Ctrl-C stops")
        _wait_for_interrupt(server)
    finally:
        say("stopping: answering the requests already accepted ...")
        server.stop(timeout=DRAIN_S)
    say("stopped")
    return EXIT_OK


COMMAND = Command("serve", HELP, add_arguments, run)
