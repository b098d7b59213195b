"""A real Qdrant server for tests marked ``qdrant_server``: a testcontainers container, or one you run.

* ``ESCO_TEST_QDRANT_URL`` set (``http://localhost:6333``): that running server is used as it is
  (for example ``docker compose up -d qdrant``); it must answer, or the tests fail.
* Otherwise a ``qdrant/qdrant`` container of :data:`QDRANT_IMAGE` is started once per session, and the
  tests are skipped, with the reason, when no Docker engine answers or the container cannot start.

:data:`QDRANT_IMAGE` is the one pinned tag of the project: ``tests/unit/test_deploy.py`` checks that
``docker-compose.yml``, ``deploy/cluster/docker-compose.yml`` and ``deploy/k8s/qdrant-values.yaml`` use it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

__all__ = ["QDRANT_IMAGE", "QDRANT_TAG", "TEST_URL_ENV", "docker_unavailable_reason", "qdrant_server_url"]

QDRANT_IMAGE = "qdrant/qdrant:v1.16.3"
QDRANT_TAG = QDRANT_IMAGE.rsplit(":", 1)[1]
TEST_URL_ENV = "ESCO_TEST_QDRANT_URL"
_PING_TIMEOUT_S = 3


def docker_unavailable_reason() -> str | None:
    """``None`` when a Docker engine answers a ping within a few seconds, else why not."""
    try:
        import docker

        client = docker.from_env(timeout=_PING_TIMEOUT_S)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # no SDK, no socket, refused, timed out, bad DOCKER_HOST...
        return f"no Docker engine reachable: {type(exc).__name__}: {exc}"
    return None


def _check_running_server(url: str) -> str:
    import httpx

    url = url.strip().rstrip("/")
    try:
        response = httpx.get(f"{url}/readyz", timeout=5.0)
    except httpx.HTTPError as exc:
        pytest.fail(f"{TEST_URL_ENV}={url} does not answer ({type(exc).__name__}: {exc}); start it or unset it")
    if response.status_code != 200:
        pytest.fail(f"{TEST_URL_ENV}={url}: /readyz answered {response.status_code}: {response.text[:200]}")
    return url


@pytest.fixture(scope="session")
def qdrant_server_url() -> Iterator[str]:
    """REST URL of a Qdrant server (``http://host:port``), started for the session unless one is given."""
    given = os.environ.get(TEST_URL_ENV, "").strip()
    if given:
        yield _check_running_server(given)
        return
    reason = docker_unavailable_reason()
    if reason:
        pytest.skip(reason)
    try:
        from testcontainers.community.qdrant import QdrantContainer
    except ImportError:  # testcontainers < 4.9
        from testcontainers.qdrant import QdrantContainer

    container = QdrantContainer(QDRANT_IMAGE).with_env("QDRANT__TELEMETRY_DISABLED", "true")
    try:
        container.start()
    except Exception as exc:  # image not pullable offline, port clash, engine refusing...
        try:
            container.stop()
        except Exception:
            pass
        pytest.skip(f"a Docker engine answers but the {QDRANT_IMAGE} container did not start: "
                    f"{type(exc).__name__}: {exc}")
    try:
        host = container.get_container_host_ip()
        yield f"http://{host}:{container.get_exposed_port(6333)}"
    finally:
        container.stop()
