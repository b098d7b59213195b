"""ESCO skill search over HTTP: ``esco-search serve`` (FastAPI on uvicorn).

``create_app()`` builds the ASGI app (:mod:`search.http.app`); :class:`ServiceSettings` holds the
service's own settings (``ESCO_SERVICE_*``). Importing this package imports neither FastAPI nor torch.
"""

from __future__ import annotations

from typing import Any

from search.http.settings import ServiceSettings

__all__ = ["create_app", "ServiceSettings"]


def create_app(*args: Any, **kwargs: Any) -> Any:
    """The service's ASGI app; see :func:`search.http.app.create_app`."""
    from search.http.app import create_app as _create_app

    return _create_app(*args, **kwargs)
