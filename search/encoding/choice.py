"""``ESCO_BACKEND=auto``: the fastest backend that keeps the model's quality, measured on this machine.

Every candidate of :func:`candidates` that this environment can run is checked once against torch fp32
(:mod:`search.encoding.check`: quality on the held-out check set, and the speed of encoding its passages);
the fastest that passes is used, and never one slower than torch fp32 itself:

=======================  ==========================================================================
where                    candidates
=======================  ==========================================================================
GPU (``cuda...``)        torch fp16, torch fp32
CPU                      openvino fp32, openvino int8, openvino int8w (with the ``openvino`` extra),
                         onnx int8 (with the ``onnx`` extra), torch bf16 (CPUs with native bf16:
                         AVX512-BF16 or AMX), torch fp32
=======================  ==========================================================================

The verdict (every candidate's figures, the CPU, the choice) is cached in ``<cache_root>/quality/``, keyed
by the model (its files' sizes and dates, or its hub commit), prompts, device, CPU model and flags, package
versions, check set, calibration set and thresholds: with a cached verdict nothing is loaded but the chosen
backend. It is a safety net against a quantization that breaks a model and a guard against a slow one; the
full measure of a backend is ``python -m benchmarks.bench_quality``.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from search.encoding import hardware, packages
from search.encoding.check import (
    MAX_KIND_MRR_DROP,
    MAX_METRIC_DROP,
    MIN_COSINE,
    MIN_MEAN_COSINE,
    QualityCheck,
    compare,
    embed,
    relative_speed,
)
from search.encoding.data import calibration_texts, check_set
from search.encoding.export_cache import cache_root, export_lock, fingerprint, resolve_source, slug, texts_id
from search.errors import ConfigError
from search.jsonfile import read_json, write_json_atomic

logger = logging.getLogger(__name__)

__all__ = ["REFERENCE", "BackendChoice", "candidates", "choose_backend", "verdict_path"]

REFERENCE = ("torch", "fp32")
SPEED_PASSAGES = 160  # of the check passages, timed against torch fp32 (10 batches of 16, two rounds)
_VERDICTS_VERSION = 3  # 3: the per-kind bar pays one standard error of margin (check.kind_loss)


@dataclass(frozen=True)
class BackendChoice:
    """What ``auto`` resolved to, the checks behind it and the reference's speed."""

    backend: str
    precision: str
    checks: tuple[QualityCheck, ...] = field(default_factory=tuple)
    reference_passages_per_s: float = 0.0
    cpu: dict[str, Any] = field(default_factory=dict)
    encoder: Any = field(default=None, compare=False, repr=False)  # the chosen one, when the check loaded it

    def summary(self) -> str:
        """One line: the choice, its speed against torch fp32, the CPU, and every other candidate."""
        parts = []
        for c in self.checks:  # a candidate that fails the check is not timed
            speed = f" {c.speedup:.2f}x" if c.passed or c.speedup else ""
            parts.append(f"{c.backend} {c.precision}{speed}{'' if c.passed else ' (fails the check)'}")
        cpu = self.cpu.get("model") or "this CPU"
        others = f"; {', '.join(parts)}" if parts else ""
        return (f"{self.backend} {self.precision} on {cpu}; speed over torch fp32 "
                f"({self.reference_passages_per_s:.1f} passages/s){others.replace('; ', ': ', 1)}")

    def describe(self) -> dict[str, Any]:
        """What the collection metadata and the ingest summary record (``backend_choice``)."""
        return {
            "chosen": f"{self.backend}:{self.precision}",
            "summary": self.summary(),
            "cpu": self.cpu,
            "passages_per_s": {"torch:fp32": self.reference_passages_per_s,
                               **{f"{c.backend}:{c.precision}": c.passages_per_s for c in self.checks}},
            "speedup_over_torch_fp32": {f"{c.backend}:{c.precision}": c.speedup for c in self.checks},
            "checks": {f"{c.backend}:{c.precision}": c.summary() for c in self.checks},
        }


def candidates(device: str) -> list[tuple[str, str]]:
    """The (backend, precision) pairs ``auto`` measures on ``device``, all usable here; torch fp32 last.

    A backend whose extra is installed but cannot be imported is logged at WARNING with the reason and the fix
    (it is left out); one that is not installed at all only at DEBUG.
    """
    if device.startswith("cuda"):
        return [("torch", "fp16"), REFERENCE]
    out: list[tuple[str, str]] = []
    if device.startswith("cpu"):
        for backend, precisions in (("openvino", ("fp32", "int8", "int8w")), ("onnx", ("int8",))):
            problem: ConfigError | None = None
            for precision in precisions:
                try:
                    packages.check_backend(backend, precision)
                    out.append((backend, precision))
                except ConfigError as exc:
                    problem = problem or exc
            if problem is None:
                continue
            if packages.backend_installed(backend):
                logger.warning("ESCO_BACKEND=auto: the %r extra is installed but cannot be used, so %s is not "
                               "tried (the encoder may be slower than it could be): %s. Fix: reinstall it with "
                               "`pip install 'esco-skill-search[%s]'` (docs/benchmarks.md lists the versions that "
                               "work together)", backend, backend, problem, backend)
            else:
                logger.debug("ESCO_BACKEND=auto: not trying %s (%s)", backend, problem)
        if hardware.cpu_has_bf16():
            out.append(("torch", "bf16"))
    out.append(REFERENCE)
    return out


# --- cached verdicts -----------------------------------------------------------------------------------
def verdict_path(
    model: str, revision: str | None, device: str, prompts: tuple[str, str], cache_dir: str | Path | None
) -> tuple[Path, dict[str, Any]]:
    """The verdict file of a model on this machine, and what must match for the verdict in it to hold."""
    source, identity = resolve_source(model, revision)
    check = check_set()
    key = {
        "version": _VERDICTS_VERSION,
        "model": identity,
        "files": fingerprint(source),
        "device": device.split(":")[0],
        "prompts": list(prompts),
        "cpu": hardware.cpu_info().describe(),
        "packages": packages.package_versions(),
        "check_set": texts_id(list(check.queries) + list(check.passages)),
        "calibration": texts_id(calibration_texts()),  # the int8 export's calibration set
        "thresholds": [MIN_MEAN_COSINE, MIN_COSINE, MAX_METRIC_DROP, MAX_KIND_MRR_DROP],
    }
    # one file per model and environment: two virtual environments on one machine keep their own verdicts
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    root = Path(cache_dir).expanduser() if cache_dir else cache_root()
    return root / "quality" / f"{slug(identity)}-{digest}.json", key


def _read_verdict(path: Path, key: dict[str, Any]) -> dict[str, Any]:
    data = read_json(path, {})
    return data if isinstance(data, dict) and data.get("key") == key else {}


def _write_verdict(path: Path, doc: dict[str, Any]) -> None:
    try:
        write_json_atomic(path, doc)
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
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(export_lock(path.parent / "locks" / path.stem))
        except OSError:  # a read-only cache
            pass
        yield


def _decide(todo: list[tuple[str, ...]], checks: dict[str, QualityCheck]) -> tuple[str, str]:
    """The fastest passing candidate, if it is faster than torch fp32 (speedup above 1); else torch fp32."""
    best, best_speed = REFERENCE, 1.0
    for backend, precision in todo:
        c = checks.get(f"{backend}:{precision}")
        if c is not None and c.passed and c.speedup > best_speed:
            best, best_speed = (backend, precision), c.speedup
    return best


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
    """The fastest candidate of :func:`candidates` that passes the check for ``model``, measured here.

    Args:
        load: ``load(backend, precision)`` returns an encoder of ``model`` (with the prompts) in that form.
        cache_dir: where the verdicts are kept (default :func:`search.encoding.export_cache.cache_root`).

    Raises:
        ConfigError: the model cannot be found (from :func:`search.encoding.prepare.prepare_backend`).
    """
    cpu = hardware.cpu_info().describe()
    if device.startswith("cpu") and not hardware.cpu_has_bf16() and not any(
            packages.backend_installed(b) for b in ("openvino", "onnx")):
        return BackendChoice(*REFERENCE, cpu=cpu)  # nothing but torch fp32 to run here: nothing to check
    path, key = verdict_path(model, revision, device, (query_prompt, passage_prompt), cache_dir)
    chosen_encoder: Any = None
    with _lock(path):  # two workers starting at once check once
        saved = _read_verdict(path, key)
        # a verdict for this key (same packages, CPU, model) names the candidates: nothing is imported to find them
        todo = [tuple(n.split(":", 1)) for n in saved.get("candidates") or []]
        checks = {n: c for n in (saved.get("checks") or {}) if (c := _cached_check(saved["checks"][n])) is not None}
        ref_speed = float(saved.get("reference_passages_per_s") or 0.0)
        if not saved or any(f"{b}:{p}" not in checks for b, p in todo) or not ref_speed:
            todo = [c for c in candidates(device) if c != REFERENCE]
            if not todo:
                return BackendChoice(*REFERENCE, cpu=cpu)
            checks = {n: c for n, c in checks.items() if n in {f"{b}:{p}" for b, p in todo}}
            checks, ref_speed, chosen_encoder = _measure(model, todo, checks, load)
            _write_verdict(path, {
                "key": key, "candidates": [f"{b}:{p}" for b, p in todo],
                "checks": {n: asdict(c) for n, c in checks.items()},
                "reference_passages_per_s": ref_speed, "cpu": cpu,
                "chosen": ":".join(_decide(todo, checks)),
                "decided_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            })
    names = [f"{b}:{p}" for b, p in todo]
    backend, precision = _decide(todo, checks)
    encoder = chosen_encoder if chosen_encoder is not None and (
        (chosen_encoder.backend, chosen_encoder.precision) == (backend, precision)) else None
    choice = BackendChoice(backend, precision, tuple(checks[n] for n in names if n in checks), ref_speed, cpu,
                           encoder)
    logger.info("ESCO_BACKEND=auto: %s", choice.summary())
    return choice


def _measure(model: str, todo: list[tuple[str, ...]], known: dict[str, QualityCheck],
             load: Callable[[str, str], Any]) -> tuple[dict[str, QualityCheck], float, Any]:
    """Check every candidate not in ``known`` against torch fp32; keep only the fastest passing one loaded."""
    logger.warning("ESCO_BACKEND=auto: measuring the backends of %s against torch fp32 (once for this model, "
                   "machine and environment; a minute or two)", model)
    check = check_set()
    reference = load(*REFERENCE)
    ref = embed(reference, check)
    timed = check.passages[:SPEED_PASSAGES]
    checks = dict(known)
    best: Any = None
    best_speed = 1.0
    for backend, precision in todo:
        name = f"{backend}:{precision}"
        if name in checks:
            continue
        t = time.perf_counter()
        try:
            loaded = load(backend, precision)
            got = embed(loaded, check)
        except ConfigError as exc:  # the export failed: that candidate is out, the next one is tried
            logger.warning("ESCO_BACKEND=auto: %s %s cannot be used (%s)", backend, precision, exc)
            continue
        result = compare(got, ref, check, backend, precision, time.perf_counter() - t)
        if result.passed:  # only a candidate that may be chosen is worth timing
            result = replace(result, speedup=round(relative_speed(loaded, reference, timed), 3))
        checks[name] = result
        logger.info("ESCO_BACKEND=auto: %s", result.summary())
        if result.passed and result.speedup > best_speed:
            best, best_speed = loaded, result.speedup
        del loaded, got
        gc.collect()
    return checks, round(ref.passages_per_s, 2), best
