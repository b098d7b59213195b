"""``esco-search serve``: the search over HTTP (FastAPI on uvicorn; see docs/http.md).

Usage::

    esco-search serve [--host 127.0.0.1] [--port 8000] [--workers 1] [--log-level info] [--no-access-log]

Settings: ``ESCO_*`` (model, store, collection, threshold) and ``ESCO_SERVICE_*`` (API keys, limits, CORS,
micro-batching). The subcommand's code lives in :mod:`search.http.server`; importing this module imports
neither FastAPI, uvicorn nor torch.
"""

from __future__ import annotations

from search.http.server import add_parser, run

__all__ = ["add_parser", "run"]
