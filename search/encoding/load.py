"""``load_encoder(settings)``: the encoder that the settings name, with ``ESCO_BACKEND=auto`` resolved."""

from __future__ import annotations

import threading
from typing import Any

from search.encoding import packages
from search.encoding.choice import choose_backend
from search.encoding.encoder import SentenceTransformerEncoder
from search.encoding.hardware import default_device
from search.errors import ConfigError

__all__ = ["int8_backend", "load_encoder", "SharedEncoder"]


def int8_backend() -> str:
    """The backend of ``ESCO_BACKEND=auto`` with ``ESCO_PRECISION=int8``/``int8w``: openvino, else onnx.

    Raises:
        ConfigError: neither extra can be imported (names both, and why).
    """
    errors = []
    for backend in ("openvino", "onnx"):
        try:
            packages.check_backend(backend, "int8")
            return backend
        except ConfigError as exc:
            errors.append(str(exc))
    raise ConfigError("ESCO_PRECISION=int8 needs the 'openvino' (or 'onnx') extra: " + " | ".join(errors))


def load_encoder(settings: Any) -> SentenceTransformerEncoder:
    """Build the encoder that ``settings`` (a :class:`search.settings.SearchSettings`) names.

    With ``backend=auto`` (the default) and ``precision=auto``, the fastest backend that passes the quality
    check of :mod:`search.encoding.choice` (measured once per model and machine, then cached); with
    ``backend=auto`` and an explicit precision: torch for fp32/bf16/fp16, openvino (else onnx) for int8.

    Raises:
        ConfigError: the model cannot be loaded, or the backend's packages are missing.
    """

    def load(backend: str, precision: str) -> SentenceTransformerEncoder:
        return SentenceTransformerEncoder(
            settings.model,
            query_prompt=settings.query_prompt,
            passage_prompt=settings.passage_prompt,
            revision=settings.model_revision,
            device=settings.device,
            backend=backend,
            precision=precision,
            max_seq_length=settings.max_seq_length,
            cache_size=settings.query_cache_size,
            cache_dir=settings.cache_dir,
        )

    backend, precision = settings.backend, settings.precision
    if backend == "auto":
        if precision == "auto":
            choice = choose_backend(
                settings.model, revision=settings.model_revision, device=settings.device or default_device(),
                query_prompt=settings.query_prompt, passage_prompt=settings.passage_prompt, load=load,
                cache_dir=settings.cache_dir,
            )
            enc = choice.encoder or load(choice.backend, choice.precision)
            enc.clear_query_cache()  # of the check's queries
            enc.backend_choice = choice.describe()
            return enc
        backend = int8_backend() if precision in ("int8", "int8w") else "torch"
    return load(backend, precision)


class SharedEncoder:
    """The encoder the settings name, loaded at its first use and then shared by every caller.

    ``esco-ingest`` hands one to the skills build and to the occupations build: the model loads once, and
    not at all when the run stops before anything is encoded (a bad release, a held lock). Attribute access
    goes to the loaded :class:`~search.encoding.encoder.SentenceTransformerEncoder` (thread-safe first load).
    """

    def __init__(self, settings: Any) -> None:
        self._settings = settings
        self._encoder: SentenceTransformerEncoder | None = None
        self._lock = threading.Lock()

    def get(self) -> SentenceTransformerEncoder:
        """The encoder, loaded by the first call (:func:`load_encoder`)."""
        if self._encoder is None:
            with self._lock:
                if self._encoder is None:
                    self._encoder = load_encoder(self._settings)
        return self._encoder

    def __getattr__(self, name: str) -> Any:  # only for names this class lacks: the encoder's own
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.get(), name)
