"""ESCO_BACKEND=auto: the fastest candidate that passes the check against torch fp32, checked once per model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from search import backend_choice
from search.backend_check_set import CHECK_PASSAGES, CHECK_QUERIES
from search.backend_choice import MIN_MEAN_COSINE, check_quality, choose_backend
from search.encoders import SentenceTransformerEncoder, load_encoder
from search.errors import ConfigError
from search.settings import SearchSettings

# a fifth of the check set: query i -> passage i, with distractors
QUERIES = list(CHECK_QUERIES[:40])
PASSAGES = list(CHECK_PASSAGES[:40]) + list(CHECK_PASSAGES[200:240])


class Noisy:
    """An encoder whose embeddings are another's plus noise: a backend that lost precision."""

    def __init__(self, inner, sigma: float, backend: str = "openvino", precision: str = "int8") -> None:
        self.inner, self.sigma, self.backend, self.precision = inner, sigma, backend, precision
        self.rng = np.random.default_rng(0)
        self.cleared = 0

    def _noise(self, v: np.ndarray) -> np.ndarray:
        v = v + self.rng.normal(0, self.sigma, v.shape).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def encode_queries(self, texts):
        return self._noise(self.inner.encode_queries(texts))

    def encode_passages(self, texts, batch_size=32):
        return self._noise(self.inner.encode_passages(texts, batch_size))

    def clear_query_cache(self) -> None:
        self.cleared += 1


def test_the_check_set_is_well_formed():
    assert len(CHECK_QUERIES) == 200 and len(CHECK_PASSAGES) == 400
    assert len(set(CHECK_PASSAGES)) == 400 and all(":" in p or p for p in CHECK_PASSAGES)
    from search.backend_calibration import CALIBRATION_TEXTS

    assert not set(CHECK_PASSAGES) & {t.removeprefix("passage: ") for t in CALIBRATION_TEXTS}  # held out


def test_a_faithful_backend_passes_with_its_figures(encoder):
    got = check_quality(encoder, encoder, queries=QUERIES, passages=PASSAGES)
    assert got.passed and not got.reasons
    assert got.mean_cosine == pytest.approx(1.0, abs=1e-5) and got.min_cosine == pytest.approx(1.0, abs=1e-5)
    assert got.ndcg_at_10 == got.ndcg_at_10_fp32 > 0.5  # the task is real: MiniLM finds most skills
    assert got.ndcg_drop == 0 and got.mrr_drop == 0


def test_a_backend_that_lost_precision_fails_and_says_why(encoder):
    got = check_quality(Noisy(encoder, sigma=0.02), encoder, queries=QUERIES, passages=PASSAGES)
    assert not got.passed
    assert got.mean_cosine < MIN_MEAN_COSINE
    assert any(r.startswith("mean cosine") for r in got.reasons), got.reasons
    assert "openvino int8" in got.summary() and "fails: mean cosine" in got.summary()


def test_a_slightly_noisy_backend_passes(encoder):
    got = check_quality(Noisy(encoder, sigma=0.0005), encoder, queries=QUERIES, passages=PASSAGES)
    assert got.passed, got.summary()
    assert MIN_MEAN_COSINE < got.mean_cosine < 1.0


@pytest.fixture
def two_candidates(monkeypatch, encoder, minilm_path, tmp_path):
    """Candidates openvino int8 (broken: noisy) and torch bf16 (the real one) before the fp32 reference."""
    monkeypatch.setenv("ESCO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(backend_choice, "candidates",
                        lambda device: [("openvino", "int8"), ("torch", "bf16"), ("torch", "fp32")])
    loads: list[str] = []

    def load(backend: str, precision: str):
        loads.append(f"{backend}:{precision}")
        if backend == "openvino":
            return Noisy(encoder, sigma=0.05)
        return SentenceTransformerEncoder(minilm_path, device="cpu", backend=backend, precision=precision)

    return load, loads


def test_auto_takes_the_fastest_candidate_that_passes_and_checks_once(two_candidates, minilm_path):
    load, loads = two_candidates
    kw = dict(device="cpu", query_prompt="query: ", passage_prompt="passage: ", load=load)
    first = choose_backend(minilm_path, **kw)
    assert (first.backend, first.precision) == ("torch", "bf16")
    assert [(c.backend, c.precision, c.passed) for c in first.checks] == [("openvino", "int8", False),
                                                                          ("torch", "bf16", True)]
    assert first.encoder is not None and first.encoder.precision == "bf16"  # the checked model, not a reload
    assert loads == ["torch:fp32", "openvino:int8", "torch:bf16"]
    assert first.describe()["chosen"] == "torch:bf16"

    (verdicts,) = list((backend_choice_cache() / "quality").glob("*.json"))
    saved = json.loads(verdicts.read_text())
    assert set(saved["checks"]) == {"openvino:int8", "torch:bf16"}

    loads.clear()
    again = choose_backend(minilm_path, **kw)  # the verdicts are cached: nothing is loaded to check
    assert (again.backend, again.precision) == ("torch", "bf16") and again.encoder is None and loads == []
    assert again.checks == first.checks

    other = choose_backend(minilm_path, **{**kw, "query_prompt": "search_query: "})  # other prompts: checked anew
    assert loads and (other.backend, other.precision) == ("torch", "bf16")

    saved["checks"]["openvino:int8"] = {"passed": True}  # a damaged entry is checked anew, not trusted
    verdicts.write_text(json.dumps(saved))
    loads.clear()
    again = choose_backend(minilm_path, **kw)
    assert loads == ["torch:fp32", "openvino:int8"]  # bf16's verdict is intact: read, not checked again
    assert (again.backend, again.precision) == ("torch", "bf16") and not again.checks[0].passed


def backend_choice_cache() -> Path:
    from search.backends import cache_root

    return cache_root()


def test_no_candidate_but_fp32_means_no_check(monkeypatch, minilm_path):
    monkeypatch.setattr(backend_choice, "candidates", lambda device: [("torch", "fp32")])

    def load(backend, precision):  # pragma: no cover - must not be called
        raise AssertionError("nothing to check")

    got = choose_backend(minilm_path, device="cpu", query_prompt="query: ", passage_prompt="passage: ", load=load)
    assert (got.backend, got.precision, got.checks) == ("torch", "fp32", ())


def test_candidates_are_the_fastest_first_and_end_with_fp32(monkeypatch):
    from search import backends, encoders

    monkeypatch.setattr(backends, "check_backend", lambda backend, precision: None)
    monkeypatch.setattr(encoders, "cpu_has_bf16", lambda: True)
    assert backend_choice.candidates("cpu") == [("openvino", "int8"), ("torch", "bf16"), ("torch", "fp32")]
    assert backend_choice.candidates("cuda:0") == [("torch", "fp16"), ("torch", "fp32")]

    def missing(backend, precision):
        raise ConfigError("needs the 'openvino' extra")

    monkeypatch.setattr(backends, "check_backend", missing)
    monkeypatch.setattr(encoders, "cpu_has_bf16", lambda: False)
    assert backend_choice.candidates("cpu") == [("torch", "fp32")]


def test_default_settings_choose_through_the_check(minilm_path, monkeypatch):
    """The default path, end to end: ESCO_BACKEND=auto, ESCO_PRECISION=auto, on this machine."""
    monkeypatch.delenv("ESCO_BACKEND", raising=False)
    monkeypatch.delenv("ESCO_PRECISION", raising=False)
    settings = SearchSettings(_env_file=None, model=minilm_path, device="cpu")  # type: ignore[call-arg]
    assert (settings.backend, settings.precision) == ("auto", "auto")
    enc = load_encoder(settings)
    expected = backend_choice.candidates("cpu")
    assert (enc.backend, enc.precision) in expected
    if (enc.backend, enc.precision) != ("torch", "fp32"):  # a faster one was checked and passed
        choice = enc.describe()["backend_choice"]
        assert choice["chosen"] == f"{enc.backend}:{enc.precision}"
        assert "fails" not in choice["checks"][choice["chosen"]]
    assert enc.encode_queries(["manage staff"]).shape == (1, enc.dimension)
    assert not enc._cache or list(enc._cache) == ["manage staff"]  # the check's queries are not cached


def test_auto_with_an_explicit_precision_needs_no_check(minilm_path, monkeypatch):
    from search import backends

    enc = load_encoder(SearchSettings(_env_file=None, model=minilm_path, device="cpu", precision="fp32"))  # type: ignore[call-arg]
    assert (enc.backend, enc.precision) == ("torch", "fp32") and "backend_choice" not in enc.describe()

    def missing(backend, precision):
        raise ConfigError(f"ESCO_BACKEND={backend} needs the {backend!r} extra")

    monkeypatch.setattr(backends, "check_backend", missing)
    with pytest.raises(ConfigError) as e:
        load_encoder(SearchSettings(_env_file=None, model=minilm_path, device="cpu", precision="int8"))  # type: ignore[call-arg]
    assert "'openvino'" in str(e.value) and "'onnx'" in str(e.value)


def test_fp16_on_a_cpu_is_refused_with_auto_too():
    with pytest.raises(ValueError, match="fp16 needs a GPU"):
        SearchSettings(_env_file=None, precision="fp16", device="cpu")  # type: ignore[call-arg]


def test_the_encoder_class_needs_a_concrete_backend(minilm_path):
    with pytest.raises(ConfigError, match="load_encoder"):
        SentenceTransformerEncoder(minilm_path, backend="auto")


def test_a_cache_that_cannot_be_written_only_means_checking_again(two_candidates, minilm_path, tmp_path, caplog):
    load, loads = two_candidates
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    kw = dict(device="cpu", query_prompt="query: ", passage_prompt="passage: ", load=load,
              cache_dir=blocker / "cache")  # under a file: nothing can be created there
    with caplog.at_level("WARNING"):
        got = choose_backend(minilm_path, **kw)
    assert (got.backend, got.precision) == ("torch", "bf16")
    assert "cannot cache the backend check" in caplog.text
    loads.clear()
    assert (choose_backend(minilm_path, **kw).backend, loads[:1]) == ("torch", ["torch:fp32"])  # checked again
