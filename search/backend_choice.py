"""``ESCO_BACKEND=auto``: the fastest backend that keeps the model's quality, checked once per model.

The candidates, fastest first (measured on the real model's shape, docs/benchmarks.md):

=======================  ==========================================================================
where                    candidates
=======================  ==========================================================================
GPU (``cuda...``)        torch fp16, then torch fp32
CPU                      openvino int8 (when the ``openvino`` extra imports), torch bf16 (CPUs with
                         native bf16: AVX512-BF16 or AMX), then torch fp32
=======================  ==========================================================================

torch fp32 is the reference and needs no check. Every other candidate is checked once against it
(:func:`check_quality`) on a held-out ESCO retrieval task (:mod:`search.backend_check_set`: 200 alternative
labels as queries over 400 skill passages, none of them in the int8 calibration set). It passes when

* the mean cosine of its embeddings to fp32's is at least :data:`MIN_MEAN_COSINE` and the lowest at least
  :data:`MIN_COSINE` (no text is embedded badly), and
* its nDCG@10 and MRR@10 are at most :data:`MAX_METRIC_DROP` below fp32's.

The first candidate that passes is used; one that fails is logged with its figures and skipped. Verdicts are
cached per model (its files' sizes and dates, or its hub commit), prompts, device and package versions, in
``<cache_root>/quality/`` (see :func:`search.backends.cache_root`): the check runs again only when one of them
changes. It is a safety net against a quantization that breaks a model; the full measure of a backend is
``python -m benchmarks.bench_quality`` (all 13,896 skills, 1,500 queries).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from search.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_METRIC_DROP",
    "MIN_COSINE",
    "MIN_MEAN_COSINE",
    "BackendChoice",
    "QualityCheck",
    "candidates",
    "check_quality",
    "choose_backend",
]

MIN_MEAN_COSINE = 0.995  # the bar for a >= 5x backend
MIN_COSINE = 0.98
MAX_METRIC_DROP = 0.01  # on 200 queries one query moves MRR@10 by up to 0.005
_VERDICTS_VERSION = 1


@dataclass(frozen=True)
class QualityCheck:
    """How a backend/precision compares with torch fp32 on the held-out check set."""

    backend: str
    precision: str
    passed: bool
    mean_cosine: float
    min_cosine: float
    ndcg_at_10: float
    ndcg_at_10_fp32: float
    mrr_at_10: float
    mrr_at_10_fp32: float
    seconds: float
    reasons: tuple[str, ...] = ()

    @property
    def ndcg_drop(self) -> float:
        return self.ndcg_at_10_fp32 - self.ndcg_at_10

    @property
    def mrr_drop(self) -> float:
        return self.mrr_at_10_fp32 - self.mrr_at_10

    def summary(self) -> str:
        """One line: the figures, and why it failed when it did."""
        line = (f"{self.backend} {self.precision}: cosine to fp32 {self.mean_cosine:.5f} mean, "
                f"{self.min_cosine:.5f} min; nDCG@10 {self.ndcg_at_10:.4f} (fp32 {self.ndcg_at_10_fp32:.4f}), "
                f"MRR@10 {self.mrr_at_10:.4f} (fp32 {self.mrr_at_10_fp32:.4f})")
        return line + (f"; fails: {'; '.join(self.reasons)}" if self.reasons else "")


@dataclass(frozen=True)
class BackendChoice:
    """What ``auto`` resolved to, and the checks behind it (fastest candidate first)."""

    backend: str
    precision: str
    checks: tuple[QualityCheck, ...] = field(default_factory=tuple)
    encoder: Any = field(default=None, compare=False, repr=False)  # the chosen one, when the check loaded it

    def describe(self) -> dict[str, Any]:
        return {"chosen": f"{self.backend}:{self.precision}",
                "checks": {f"{c.backend}:{c.precision}": c.summary() for c in self.checks}}


def candidates(device: str) -> list[tuple[str, str]]:
    """The (backend, precision) pairs ``auto`` tries on ``device``, fastest first, all usable here."""
    from search.backends import check_backend
    from search.encoders import cpu_has_bf16

    if device.startswith("cuda"):
        return [("torch", "fp16"), ("torch", "fp32")]
    out: list[tuple[str, str]] = []
    if device.startswith("cpu"):
        try:
            check_backend("openvino", "int8")
            out.append(("openvino", "int8"))
        except ConfigError as exc:
            logger.debug("ESCO_BACKEND=auto: not trying openvino int8 (%s)", exc)
        if cpu_has_bf16():
            out.append(("torch", "bf16"))
    out.append(("torch", "fp32"))
    return out


def _ir(queries: np.ndarray, passages: np.ndarray) -> tuple[float, float]:
    """nDCG@10 and MRR@10 of query i -> passage i (one relevant passage each)."""
    from search.evaluation import ir_metrics

    scores = queries @ passages.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    m = ir_metrics([[str(j) for j in row] for row in top], [{str(i)} for i in range(len(queries))],
                   accuracy_at=(1,), precision_recall_at=(10,), mrr_at=(10,), ndcg_at=(10,), map_at=(10,))
    return m["ndcg@10"], m["mrr@10"]


def check_quality(
    candidate: Any,
    reference: Any,
    *,
    queries: Sequence[str] | None = None,
    passages: Sequence[str] | None = None,
    batch_size: int = 16,
) -> QualityCheck:
    """Compare ``candidate`` with ``reference`` (torch fp32) on a retrieval task, query i -> passage i.

    Both are :class:`search.encoders.Encoder` objects with ``backend`` and ``precision`` attributes. Default
    texts: :mod:`search.backend_check_set`.
    """
    from search.backend_check_set import CHECK_PASSAGES, CHECK_QUERIES

    qs = list(queries if queries is not None else CHECK_QUERIES)
    ps = list(passages if passages is not None else CHECK_PASSAGES)
    t = time.perf_counter()
    ref_q, ref_p = reference.encode_queries(qs), reference.encode_passages(ps, batch_size=batch_size)
    got_q, got_p = candidate.encode_queries(qs), candidate.encode_passages(ps, batch_size=batch_size)
    cos = np.concatenate([np.sum(ref_q * got_q, axis=1), np.sum(ref_p * got_p, axis=1)])
    ndcg_ref, mrr_ref = _ir(ref_q, ref_p)
    ndcg, mrr = _ir(got_q, got_p)
    reasons = []
    if cos.mean() < MIN_MEAN_COSINE:
        reasons.append(f"mean cosine {cos.mean():.5f} < {MIN_MEAN_COSINE}")
    if cos.min() < MIN_COSINE:
        reasons.append(f"lowest cosine {cos.min():.5f} < {MIN_COSINE}")
    if ndcg_ref - ndcg > MAX_METRIC_DROP:
        reasons.append(f"nDCG@10 drop {ndcg_ref - ndcg:.4f} > {MAX_METRIC_DROP}")
    if mrr_ref - mrr > MAX_METRIC_DROP:
        reasons.append(f"MRR@10 drop {mrr_ref - mrr:.4f} > {MAX_METRIC_DROP}")
    return QualityCheck(
        backend=str(candidate.backend), precision=str(candidate.precision), passed=not reasons,
        mean_cosine=round(float(cos.mean()), 6), min_cosine=round(float(cos.min()), 6),
        ndcg_at_10=round(ndcg, 6), ndcg_at_10_fp32=round(ndcg_ref, 6), mrr_at_10=round(mrr, 6),
        mrr_at_10_fp32=round(mrr_ref, 6), seconds=round(time.perf_counter() - t, 2), reasons=tuple(reasons),
    )


# --- cached verdicts -----------------------------------------------------------------------------------
def _versions() -> dict[str, str]:
    from search.backends import _version

    return {d: _version(d) for d in ("torch", "transformers", "sentence-transformers", "openvino", "nncf",
                                     "optimum-intel")}


def _verdict_key(
    model: str, revision: str | None, device: str, prompts: tuple[str, str], cache_dir: str | Path | None
) -> tuple[Path, dict[str, Any]]:
    """The verdicts file of a model, and what must match for a verdict in it to hold."""
    from search.backend_calibration import CALIBRATION_TEXTS
    from search.backend_check_set import CHECK_PASSAGES, CHECK_QUERIES
    from search.backends import _fingerprint, _resolve_source, _slug, _texts_id, cache_root

    source, identity = _resolve_source(model, revision)
    key = {
        "version": _VERDICTS_VERSION,
        "model": identity,
        "files": _fingerprint(source),
        "device": device.split(":")[0],
        "prompts": list(prompts),
        "packages": _versions(),
        "check_set": _texts_id(list(CHECK_QUERIES) + list(CHECK_PASSAGES)),
        "calibration": _texts_id(CALIBRATION_TEXTS),  # the int8 export's calibration set
        "thresholds": [MIN_MEAN_COSINE, MIN_COSINE, MAX_METRIC_DROP],
    }
    # one file per model and environment: two virtual environments on one machine keep their own verdicts
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    root = Path(cache_dir).expanduser() if cache_dir else cache_root()
    return root / "quality" / f"{_slug(identity)}-{digest}.json", key


def _read_verdicts(path: Path, key: dict[str, Any]) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data.get("checks", {}) if data.get("key") == key else {}


def _write_verdicts(path: Path, key: dict[str, Any], checks: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "checks": checks}, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:  # a read-only home: the check runs again next time, nothing breaks
        logger.warning("cannot cache the backend check in %s (%s): it will run again next time", path, exc)


def _cached_check(entry: Any) -> QualityCheck | None:
    """A verdict from the cache file, or None when there is none (or it cannot be read: checked anew)."""
    if not isinstance(entry, dict):
        return None
    try:
        return QualityCheck(**{**entry, "reasons": tuple(entry.get("reasons", ()))})
    except TypeError:
        return None


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """One check per model at a time; without the lock where the cache cannot be written."""
    from search.backends import _export_lock

    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(_export_lock(path.parent / "locks" / path.stem))
        except OSError:  # a read-only cache
            pass
        yield


def choose_backend(
    model: str,
    *,
    revision: str | None = None,
    device: str,
    query_prompt: str,
    passage_prompt: str,
    load: Callable[[str, str], Any],
    cache_dir: str | Path | None = None,
) -> BackendChoice:
    """The fastest candidate of :func:`candidates` that passes :func:`check_quality` for ``model``.

    Args:
        load: ``load(backend, precision)`` returns an encoder of ``model`` (with the prompts) in that form.
        cache_dir: where the verdicts are kept (default :func:`search.backends.cache_root`).

    Raises:
        ConfigError: the model cannot be found (from :func:`search.backends.prepare_backend`).
    """
    todo = candidates(device)
    if todo[0] == ("torch", "fp32"):
        return BackendChoice("torch", "fp32")
    path, key = _verdict_key(model, revision, device, (query_prompt, passage_prompt), cache_dir)
    checks: list[QualityCheck] = []
    # two workers starting at once check once; nothing the candidates print reaches stdout
    with _lock(path), contextlib.redirect_stdout(sys.stderr):
        cached = _read_verdicts(path, key)
        reference: Any = None
        for backend, precision in todo:
            if (backend, precision) == ("torch", "fp32"):
                return BackendChoice("torch", "fp32", tuple(checks))
            name = f"{backend}:{precision}"
            loaded = None
            check = _cached_check(cached.get(name))
            if check is None:
                if reference is None:
                    logger.warning("ESCO_BACKEND=auto: checking the faster backends of %s against torch fp32 "
                                   "(once for this model and machine; a minute or two)", model)
                    reference = load("torch", "fp32")
                try:
                    loaded = load(backend, precision)
                    check = check_quality(loaded, reference)
                except ConfigError as exc:  # the export failed: that candidate is out, the next one is tried
                    logger.warning("ESCO_BACKEND=auto: %s %s cannot be used (%s)", backend, precision, exc)
                    continue
                cached[name] = asdict(check)
                _write_verdicts(path, key, cached)
            checks.append(check)
            if check.passed:
                logger.info("ESCO_BACKEND=auto: %s", check.summary())
                return BackendChoice(backend, precision, tuple(checks), loaded)
            logger.warning("ESCO_BACKEND=auto: not using %s", check.summary())
    return BackendChoice("torch", "fp32", tuple(checks))  # pragma: no cover - fp32 is always the last candidate
