"""``esco-search serve``: run the HTTP service on uvicorn.

``add_parser(subparsers)`` and ``run(args)`` are the subcommand's two halves (``search/cli/serve.py``
re-exports them); ``python -m search.http`` runs the same without the CLI.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

__all__ = ["add_parser", "run", "main"]

EXIT_USER_ERROR = 2


def _options(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--host", help="address to listen on (default: ESCO_SERVICE_HOST, 127.0.0.1; 0.0.0.0 in a container)")
    p.add_argument("--port", type=int, help="TCP port (default: ESCO_SERVICE_PORT, 8000)")
    p.add_argument("--workers", type=int, help="worker processes, each with its own model (default: "
                   "ESCO_SERVICE_WORKERS, 1; on Kubernetes prefer 1 per pod and more pods)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--no-access-log", action="store_true", help="no line per request")
    return p


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Add the ``serve`` subcommand to ``subparsers``."""
    p = subparsers.add_parser(
        "serve", help="serve the search over HTTP (FastAPI; OpenAPI at /docs, a page to try queries at /)",
        description="Serve ESCO skill search over HTTP: POST /v1/search, /v1/search/batch, /v1/extract, "
        "GET /v1/skills/{uri}, /v1/collection, /healthz, /readyz, /metrics; a page at /. Settings: ESCO_* "
        "(model, store, collection) and ESCO_SERVICE_* (API keys, limits, CORS); see docs/http.md.",
    )
    return _options(p)


def run(args: argparse.Namespace) -> int:
    """Run the service until SIGINT/SIGTERM (open requests finish first); returns the exit code."""
    from search.http.settings import ServiceSettings
    from search.settings import SearchSettings

    try:
        overrides = {k: v for k, v in (("host", args.host), ("port", args.port), ("workers", args.workers))
                     if v is not None}
        service = ServiceSettings(**overrides)
        SearchSettings()  # refuse bad ESCO_* settings before uvicorn starts
    except ValidationError as exc:
        errs = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        print(f"esco-search serve: error: invalid settings: {errs}", file=sys.stderr)
        return EXIT_USER_ERROR
    # Worker processes build the app from the environment: hand them the command line's values.
    os.environ.update({f"ESCO_SERVICE_{k.upper()}": str(v) for k, v in overrides.items()})
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import uvicorn

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        "search.http.app:create_app", factory=True, host=service.host, port=service.port, workers=service.workers,
        log_level=args.log_level, access_log=not args.no_access_log, proxy_headers=False,
        timeout_graceful_shutdown=int(service.graceful_timeout) or None, server_header=False,
        timeout_keep_alive=service.keep_alive_seconds,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m search.http [--host H] [--port P] [--workers N]``."""
    parser = _options(argparse.ArgumentParser(prog="python -m search.http", description=add_parser.__doc__))
    return run(parser.parse_args(argv))
