"""The encoder: a sentence-transformers model with the prompts it was trained with.

Queries are encoded as ``query: <text>`` and skill passages as ``passage: <label>: <description>``. The
prefixes are configured once, as sentence-transformers prompts, and applied by ``encode_query`` /
``encode_document``; nothing else in the project adds them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from cachetools import LRUCache

from search.encoding.hardware import cpu_has_bf16, default_device
from search.encoding.prepare import prepare_backend
from search.encoding.quiet import quiet_false_alarms
from search.errors import ConfigError, EncoderMismatch

logger = logging.getLogger(__name__)

__all__ = ["Encoder", "SentenceTransformerEncoder", "resolve_precision", "PROBE_TEXT", "probe_similarity"]

# A fixed passage whose embedding identifies the model that wrote a collection, wherever it was loaded from.
PROBE_TEXT = "Python (computer programming): techniques and principles of software development in Python."


@runtime_checkable
class Encoder(Protocol):
    """What the worker and the searcher need of a model."""

    model_name: str
    dimension: int
    query_prompt: str
    passage_prompt: str
    max_seq_length: int

    def encode_passages(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Normalized float32 embeddings of skill passages (prompt added here), shape (n, dimension)."""
        ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Normalized float32 embeddings of queries (prompt added here), shape (n, dimension)."""
        ...

    def token_counts(self, texts: Sequence[str], prompt: str = "") -> list[int]:
        """Tokens of each text with ``prompt`` prepended and special tokens, before truncation."""
        ...

    def describe(self) -> dict[str, Any]:
        """What identifies this encoder in a collection's metadata."""
        ...


def probe_similarity(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two probe embeddings (0.0 when their sizes differ)."""
    va, vb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if va.shape != vb.shape or not va.size:
        return 0.0
    return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb) + 1e-12))


def resolve_precision(precision: str, backend: str, device: str) -> str:
    """The precision ``auto`` stands for: the fastest that kept retrieval quality in docs/benchmarks.md.

    torch: ``fp16`` on a GPU, ``bf16`` on a CPU with native bf16 (6.3x fp32 here, nDCG@10 -0.0014), else
    ``fp32``. onnx and openvino: ``int8`` (exported and quantized once, cached beside the model).
    """
    if precision != "auto":
        return precision
    if backend != "torch":
        return "int8"
    if device.startswith("cuda"):
        return "fp16"
    if device.startswith("cpu") and cpu_has_bf16():
        return "bf16"
    return "fp32"


class SentenceTransformerEncoder:
    """An :class:`Encoder` on ``sentence_transformers.SentenceTransformer``.

    Safe to share between threads: model calls are serialised (fast tokenizers are not re-entrant) and
    query embeddings are kept in a small LRU cache.

    Args:
        model: hub id or local folder of a sentence-transformers model.
        query_prompt: prefix of queries (``"query: "`` for E5 models).
        passage_prompt: prefix of passages (``"passage: "`` for E5 models).
        revision: hub revision.
        device: torch device; default ``cuda`` when present, else ``cpu``.
        backend: ``torch``, ``onnx`` or ``openvino`` (sentence-transformers' own backends).
        precision: ``auto`` (see :func:`resolve_precision`), ``fp32``, ``bf16``, ``fp16`` (GPU) or ``int8``
            (onnx/openvino, quantized once and cached).
        max_seq_length: token limit; default the model's own.
        cache_size: number of query embeddings to keep (0: no cache).
        cache_dir: where onnx/openvino exports of read-only folders and hub models go (default
            :func:`search.encoding.export_cache.cache_root`).

    Raises:
        ConfigError: the model cannot be loaded (names the model and how to fix it).
    """

    def __init__(
        self,
        model: str,
        *,
        query_prompt: str = "query: ",
        passage_prompt: str = "passage: ",
        revision: str | None = None,
        device: str | None = None,
        backend: str = "torch",
        precision: str = "auto",
        max_seq_length: int | None = None,
        cache_size: int = 1024,
        cache_dir: str | Path | None = None,
    ) -> None:
        if backend == "auto":
            raise ConfigError("SentenceTransformerEncoder needs a concrete backend (torch, onnx or openvino); "
                              "load_encoder(settings) resolves ESCO_BACKEND=auto")
        self.model_name = model
        self.query_prompt = query_prompt
        self.passage_prompt = passage_prompt
        self.backend = backend
        self.device = device or default_device()
        self.precision = resolve_precision(precision, backend, self.device)
        self._lock = threading.RLock()
        self._cache: LRUCache[str, np.ndarray] | None = LRUCache(maxsize=cache_size) if cache_size > 0 else None
        self._cache_lock = threading.Lock()
        self._cache_dir = cache_dir
        self._st = self._load(model, revision)
        if max_seq_length is not None:
            self._st.max_seq_length = max_seq_length
        self.max_seq_length = int(self._st.max_seq_length or 512)
        get_dim = getattr(self._st, "get_embedding_dimension", None) or self._st.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:  # pragma: no cover - every pooling model reports it
            dim = int(self._st.encode(["x"]).shape[1])
        self.dimension = int(dim)
        self._probe: list[float] | None = None
        # set by load_encoder when ESCO_BACKEND=auto chose this backend: the checks behind the choice
        self.backend_choice: dict[str, Any] | None = None

    # --- loading ---------------------------------------------------------------------------------
    def _load(self, model: str, revision: str | None) -> Any:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise ConfigError("sentence-transformers is not installed: `pip install esco-skill-search`") from exc
        prompts = {"query": self.query_prompt, "document": self.passage_prompt}
        kwargs: dict[str, Any] = {}
        load_from, load_revision = model, revision
        if self.backend == "torch":
            import torch

            if self.precision == "bf16":
                kwargs["model_kwargs"] = {"torch_dtype": torch.bfloat16}
            elif self.precision == "fp16":
                kwargs["model_kwargs"] = {"torch_dtype": torch.float16}
        else:
            # exported/quantized once, then loaded from the cache: the model folder itself, or a cache folder
            # (read-only folders, hub models) that links to the model's files
            prepared = prepare_backend(model, self.backend, self.precision, revision, device=self.device,
                                       cache_dir=self._cache_dir)
            load_from, load_revision = prepared.path, None
            kwargs["model_kwargs"] = prepared.model_kwargs
        try:
            with quiet_false_alarms():
                st = SentenceTransformer(
                    load_from, device=self.device, prompts=prompts, default_prompt_name=None, revision=load_revision,
                    backend=self.backend, **kwargs,  # type: ignore[arg-type]
                )
        except OSError as exc:
            raise ConfigError(
                f"cannot load the model {model!r}: {exc}. Set ESCO_MODEL to a local sentence-transformers "
                f"folder, or allow the download from the Hugging Face hub (unset HF_HUB_OFFLINE)"
            ) from exc
        return st

    # --- encoding --------------------------------------------------------------------------------
    def _encode(self, texts: Sequence[str], prompt_name: str, batch_size: int) -> np.ndarray:
        with self._lock:
            fn = self._st.encode_query if prompt_name == "query" else self._st.encode_document
            out = fn(
                list(texts), batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True,
                normalize_embeddings=True,
            )
        vecs = np.asarray(out, dtype=np.float32)
        # bf16/fp16 models normalise in their own precision (norms up to ~1.004): normalise again in float32
        # so that stored vectors and cosine scores are exact.
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return vecs / np.maximum(norms, 1e-12)

    def encode_passages(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._encode(texts, "document", batch_size)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self._cache is None:
            unique = list(dict.fromkeys(texts))
            self._warn_truncation(unique)
            lookup = dict(zip(unique, self._encode(unique, "query", batch_size=32)))
            return np.stack([lookup[t] for t in texts])
        found: dict[str, np.ndarray] = {}
        with self._cache_lock:
            for t in dict.fromkeys(texts):
                v = self._cache.get(t)  # a hit counts as a use (LRU order)
                if v is not None:
                    found[t] = v
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            self._warn_truncation(missing)
            vecs = self._encode(missing, "query", batch_size=32)
            with self._cache_lock:
                for t, v in zip(missing, vecs):
                    self._cache[t] = v
                    found[t] = v
        return np.stack([found[t] for t in texts])

    def token_counts(self, texts: Sequence[str], prompt: str = "") -> list[int]:
        with self._lock:
            enc = self._st.tokenizer([prompt + t for t in texts], add_special_tokens=True, truncation=False)
        return [len(ids) for ids in enc["input_ids"]]

    def _warn_truncation(self, texts: Sequence[str]) -> None:
        for text, n in zip(texts, self.token_counts(texts, self.query_prompt)):
            if n > self.max_seq_length:
                logger.warning(
                    "query of %d tokens is longer than the model's limit of %d: only its first %d tokens are "
                    "used (%.60r...)", n, self.max_seq_length, self.max_seq_length, text,
                )

    def clear_query_cache(self) -> None:
        """Forget the cached query embeddings."""
        if self._cache is not None:
            with self._cache_lock:
                self._cache.clear()

    # --- identity --------------------------------------------------------------------------------
    def probe(self) -> list[float]:
        """The embedding of :data:`PROBE_TEXT` as a passage, rounded: identifies the model's weights."""
        if self._probe is None:
            self._probe = [round(float(x), 5) for x in self.encode_passages([PROBE_TEXT])[0]]
        return self._probe

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "vector_size": self.dimension,
            "query_prompt": self.query_prompt,
            "passage_prompt": self.passage_prompt,
            "max_seq_length": self.max_seq_length,
            "backend": self.backend,
            "precision": self.precision,
            "probe": self.probe(),
            **({"backend_choice": self.backend_choice} if self.backend_choice else {}),
        }

    def check_compatible(self, metadata: dict[str, Any], collection: str, min_probe_cosine: float = 0.98) -> None:
        """Refuse a collection written with another model, vector size or prompts.

        Raises:
            EncoderMismatch: names both models and what differs.
        """
        theirs = metadata.get("model", "<unknown>")
        problems = []
        if metadata.get("vector_size") not in (None, self.dimension):
            problems.append(f"vector size {metadata.get('vector_size')} vs {self.dimension}")
        for key, mine in (("query_prompt", self.query_prompt), ("passage_prompt", self.passage_prompt)):
            if key in metadata and metadata[key] != mine:
                problems.append(f"{key} {metadata[key]!r} vs {mine!r}")
        if not problems and metadata.get("probe"):
            sim = probe_similarity(metadata["probe"], self.probe())
            if sim < min_probe_cosine:
                problems.append(f"the models embed the same text differently (cosine {sim:.3f})")
        if problems:
            raise EncoderMismatch(
                f"collection {collection!r} was written with model {theirs!r} but this searcher uses "
                f"{self.model_name!r}: {'; '.join(problems)}. Search with ESCO_MODEL={theirs} (and its prompts), "
                f"or re-ingest the release with {self.model_name!r}"
            )
