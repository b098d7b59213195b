"""ESCO_BACKEND=auto: the fastest candidate that passes the check against torch fp32, measured once per model."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from search.encoding import SentenceTransformerEncoder, choice as backend_choice, hardware, load_encoder, packages
from search.encoding.check import MIN_MEAN_COSINE, check_quality
from search.encoding.choice import choose_backend
from search.encoding.data import calibration_texts, check_set
from search.errors import ConfigError
from search.settings import SearchSettings

CHECK = check_set()
LABELS = CHECK.of_kind("label")
CHECK_QUERIES = [CHECK.queries[i] for i in LABELS]  # label query i -> passage i
CHECK_PASSAGES = list(CHECK.passages)
# a fifth of the label queries: query i -> passage i, with distractors
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
    assert len(CHECK_QUERIES) == 200 and len(CHECK_PASSAGES) >= 400
    assert [CHECK.relevant[i] for i in LABELS] == [(i,) for i in range(200)]  # label query i -> passage i
    assert len(set(CHECK_PASSAGES)) == len(CHECK_PASSAGES)
    # every passage is "<preferred label>: <description>", both parts non-empty
    assert all(len(part.strip()) > 1 for p in CHECK_PASSAGES for part in p.split(": ", 1)), CHECK_PASSAGES[:3]
    assert all(p.count(": ") >= 1 for p in CHECK_PASSAGES)
    assert all(0 <= j < len(CHECK_PASSAGES) for rel in CHECK.relevant for j in rel) and all(CHECK.relevant)
    assert not set(CHECK_PASSAGES) & {t.removeprefix("passage: ") for t in calibration_texts()}  # held out
    sentences = CHECK.of_kind("sentence")  # text like the users': whole sentences, several relevant skills
    assert len(sentences) >= 100 and set(CHECK.kinds) == {"label", "sentence"}
    assert all(len(CHECK.queries[i].split()) >= 6 and CHECK.queries[i].endswith(".") for i in sentences)
    assert all(len(CHECK.relevant[i]) >= 2 for i in sentences)


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


def _embedded(rel_first: list[bool], m: int = 16):
    """Embeddings where query i ranks its passage i % m first (True) or second, behind passage (i + 1) % m."""
    from search.encoding.check import Embedded

    eye = np.eye(m, dtype=np.float32)
    qs = []
    for i, first in enumerate(rel_first):
        v = eye[i % m] + (0.0 if first else 1.1) * eye[(i + 1) % m]
        qs.append(v / np.linalg.norm(v))
    return Embedded(np.asarray(qs), eye, 1.0, 1.0)


def test_the_kind_bar_pays_a_margin_for_the_checks_own_noise():
    """A candidate passes a kind only when its MRR@10 loss plus one standard error of the per-query differences
    is within MAX_KIND_MRR_DROP: a loss that is under the bar only by luck of the few queries fails."""
    from search.encoding.check import MAX_KIND_MRR_DROP, compare, kind_loss
    from search.encoding.data import CheckSet

    assert kind_loss([1.0, 0.5, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]) == pytest.approx((0.375, 0.2394, ), abs=1e-4)
    assert kind_loss([0.5] * 5, [0.5] * 5) == (0.0, 0.0)
    n, m = 200, 16
    check = CheckSet(queries=tuple(f"q{i}" for i in range(n)), relevant=tuple((i % m,) for i in range(n)),
                     kinds=("sentence",) * n, passages=tuple(f"p{j}" for j in range(m)))
    ref = _embedded([True] * n, m)
    def kind_fails(got) -> bool:  # the query vectors moved, so the cosine bars fail here too: not the point
        return any(r.startswith("sentence MRR@10") for r in got.reasons)

    same = compare(_embedded([True] * n, m), ref, check, "openvino", "int8")
    assert same.passed and same.mrr_by_kind["sentence"] == [1.0, 1.0, 0.0]
    # one query in 400 falls to rank 2: a loss of 0.00125, its standard error 0.00125: within the bar
    n2 = 2 * n
    check2 = CheckSet(queries=tuple(f"q{i}" for i in range(n2)), relevant=tuple((i % m,) for i in range(n2)),
                      kinds=("sentence",) * n2, passages=tuple(f"p{j}" for j in range(m)))
    one = compare(_embedded([i != 7 for i in range(n2)], m), _embedded([True] * n2, m), check2, "openvino", "int8")
    assert one.mrr_by_kind["sentence"][1] - one.mrr_by_kind["sentence"][0] == pytest.approx(0.00125)
    assert not kind_fails(one), one.reasons
    # three in 200: a loss of 0.0075 fails
    three = compare(_embedded([i not in (3, 50, 99) for i in range(n)], m), ref, check, "openvino", "int8")
    assert kind_fails(three) and "sentence MRR@10 drop 0.0075" in three.summary()
    # a loss under the bar (0.0025) from ranks that moved both ways: the check cannot tell it from a real
    # loss over the bar, so it fails (the margin)
    ref_mixed = _embedded([i not in range(0, 40, 4) for i in range(n)], m)  # fp32 itself misses 10
    mixed = compare(_embedded([i not in range(1, 44, 4) for i in range(n)], m), ref_mixed, check, "onnx", "int8")
    loss = mixed.mrr_by_kind["sentence"][1] - mixed.mrr_by_kind["sentence"][0]
    assert 0 < loss < MAX_KIND_MRR_DROP and kind_fails(mixed), mixed.summary()
    assert "its standard error" in mixed.summary()


class Timed:
    """A stand-in backend: the check set's embeddings of a real encoder (computed once), optionally noisy, that
    takes ``delay`` seconds per 100 passages: its measured speed is set by the test, not by a busy machine."""

    _memo: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __init__(self, inner, backend: str, precision: str, delay: float = 0.0, sigma: float = 0.0,
                 on_encode=None) -> None:
        self.inner, self.backend, self.precision, self.delay, self.sigma = inner, backend, precision, delay, sigma
        self.rng = np.random.default_rng(0)
        self.on_encode = on_encode

    def _vecs(self, texts, kind):
        key = kind + "\0" + "\0".join(texts)
        if key not in Timed._memo:
            fn = self.inner.encode_queries if kind == "q" else self.inner.encode_passages
            Timed._memo[key] = fn(list(texts))
        v = Timed._memo[key]
        if self.sigma:
            v = v + self.rng.normal(0, self.sigma, v.shape).astype(np.float32)
            v = v / np.linalg.norm(v, axis=1, keepdims=True)
        return v

    def encode_queries(self, texts):
        return self._vecs(texts, "q")

    def encode_passages(self, texts, batch_size=32):
        if self.on_encode:
            self.on_encode()
        time.sleep(self.delay * len(texts) / 100)
        return self._vecs(texts, "p")

    def clear_query_cache(self) -> None:
        pass


@pytest.fixture
def two_candidates(monkeypatch, encoder, tmp_path):
    """Candidates openvino int8 (broken: noisy, fast) and torch bf16 (faithful, faster than fp32) besides the
    fp32 reference (the slowest)."""
    monkeypatch.setenv("ESCO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(backend_choice, "candidates",
                        lambda device: [("openvino", "int8"), ("torch", "bf16"), ("torch", "fp32")])
    loads: list[str] = []
    delays = {"openvino:int8": 0.0, "torch:bf16": 0.02, "torch:fp32": 0.5}  # seconds per 100 passages

    def load(backend: str, precision: str):
        loads.append(f"{backend}:{precision}")
        name = f"{backend}:{precision}"
        return Timed(encoder, backend, precision, delay=delays[name], sigma=0.05 if backend == "openvino" else 0.0)

    return load, loads, delays


def test_auto_takes_the_fastest_candidate_that_passes_and_checks_once(two_candidates, minilm_path):
    load, loads, _ = two_candidates
    kw = dict(device="cpu", query_prompt="query: ", passage_prompt="passage: ", load=load)
    first = choose_backend(minilm_path, **kw)
    assert (first.backend, first.precision) == ("torch", "bf16")
    assert [(c.backend, c.precision, c.passed) for c in first.checks] == [("openvino", "int8", False),
                                                                          ("torch", "bf16", True)]
    assert first.encoder is not None and first.encoder.precision == "bf16"  # the checked model, not a reload
    assert loads == ["torch:fp32", "openvino:int8", "torch:bf16"]
    described = first.describe()
    assert described["chosen"] == "torch:bf16"
    speeds = described["passages_per_s"]
    assert speeds["torch:bf16"] > speeds["torch:fp32"] > 0 and speeds["openvino:int8"] > 0
    assert described["speedup_over_torch_fp32"]["torch:bf16"] > 1.5  # ~25x at rest, timed alternating with fp32
    assert described["speedup_over_torch_fp32"]["openvino:int8"] == 0  # failed the check: not worth timing
    assert described["cpu"] == hardware.cpu_info().describe() and described["cpu"]["model"]
    assert "torch bf16 on " in described["summary"] and "openvino int8" in described["summary"]

    (verdicts,) = list((backend_choice_cache() / "quality").glob("*.json"))
    saved = json.loads(verdicts.read_text())
    assert set(saved["checks"]) == {"openvino:int8", "torch:bf16"} and saved["chosen"] == "torch:bf16"
    assert saved["key"]["cpu"] == hardware.cpu_info().describe()
    assert saved["key"]["packages"]["torch"] == packages.package_version("torch")
    assert saved["reference_passages_per_s"] == speeds["torch:fp32"]

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


def test_a_cached_verdict_needs_no_candidate_lookup(two_candidates, minilm_path, monkeypatch):
    """With the verdict cached, the backends' packages are not even imported to list the candidates."""
    load, loads, _ = two_candidates
    kw = dict(device="cpu", query_prompt="query: ", passage_prompt="passage: ", load=load)
    choose_backend(minilm_path, **kw)

    def no_lookup(device):  # pragma: no cover - must not be called
        raise AssertionError("candidates() was called with a cached verdict")

    monkeypatch.setattr(backend_choice, "candidates", no_lookup)
    loads.clear()
    got = choose_backend(minilm_path, **kw)
    assert (got.backend, got.precision, loads) == ("torch", "bf16", [])


def test_a_candidate_slower_than_fp32_is_never_chosen(two_candidates, minilm_path):
    load, loads, delays = two_candidates
    delays["torch:bf16"] = 1.5  # faithful, but slower than the reference (what emulated bf16 is on AVX2)
    got = choose_backend(minilm_path, device="cpu", query_prompt="query: ", passage_prompt="passage: ", load=load)
    assert (got.backend, got.precision) == ("torch", "fp32")
    bf16 = next(c for c in got.checks if c.precision == "bf16")
    assert bf16.passed and 0 < bf16.speedup < 1.0
    assert got.encoder is None  # nothing faster was loaded: fp32 is loaded by the caller


def test_the_fastest_of_two_passing_candidates_wins(monkeypatch, encoder, minilm_path, tmp_path):
    monkeypatch.setenv("ESCO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(backend_choice, "candidates",
                        lambda device: [("openvino", "fp32"), ("openvino", "int8"), ("torch", "fp32")])
    delays = {"openvino:fp32": 0.02, "openvino:int8": 0.2, "torch:fp32": 0.5}  # int8 passes but is slower
    got = choose_backend(minilm_path, device="cpu", query_prompt="query: ", passage_prompt="passage: ",
                         load=lambda b, p: Timed(encoder, b, p, delay=delays[f"{b}:{p}"]))
    assert (got.backend, got.precision) == ("openvino", "fp32")
    assert all(c.passed for c in got.checks)


def test_the_check_leaves_the_stdout_of_other_threads_alone(two_candidates, minilm_path, capsys):
    """While the check runs, another thread of the host prints to stdout as always."""
    load, _, _ = two_candidates
    checking, printed = threading.Event(), threading.Event()

    def block_once():
        if not checking.is_set():
            checking.set()
            assert printed.wait(20), "the other thread never printed"

    def load_blocking(backend, precision):
        enc = load(backend, precision)
        enc.on_encode = block_once
        return enc

    def other_thread():
        checking.wait(20)
        print("a line of another thread")
        printed.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    choose_backend(minilm_path, device="cpu", query_prompt="query: ", passage_prompt="passage: ", load=load_blocking)
    thread.join(20)
    got = capsys.readouterr()
    assert "a line of another thread" in got.out and "a line of another thread" not in got.err


def backend_choice_cache() -> Path:
    from search.encoding.export_cache import cache_root

    return cache_root()


def test_no_candidate_but_fp32_means_no_check(monkeypatch, minilm_path, tmp_path):
    monkeypatch.setattr(backend_choice, "candidates", lambda device: [("torch", "fp32")])

    def load(backend, precision):  # pragma: no cover - must not be called
        raise AssertionError("nothing to check")

    # A cache of its own: a verdict that an earlier test left for this model would name other candidates.
    got = choose_backend(minilm_path, device="cpu", query_prompt="query: ", passage_prompt="passage: ", load=load,
                         cache_dir=tmp_path)
    assert (got.backend, got.precision, got.checks) == ("torch", "fp32", ())


def test_candidates_are_every_usable_backend_and_end_with_fp32(monkeypatch):
    monkeypatch.setattr(packages, "check_backend", lambda backend, precision: None)
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: True)
    assert backend_choice.candidates("cpu") == [("openvino", "fp32"), ("openvino", "int8"), ("openvino", "int8w"),
                                                ("onnx", "int8"), ("torch", "bf16"), ("torch", "fp32")]
    assert backend_choice.candidates("cuda:0") == [("torch", "fp16"), ("torch", "fp32")]

    def missing(backend, precision):
        raise ConfigError("needs the 'openvino' extra")

    monkeypatch.setattr(packages, "check_backend", missing)
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: False)
    assert backend_choice.candidates("cpu") == [("torch", "fp32")]


def test_a_broken_extra_is_a_warning_a_missing_one_is_not(monkeypatch, caplog):
    """An openvino install that cannot be imported must not make the fast encoder disappear silently."""
    def broken(backend, precision):
        raise ConfigError(f"ESCO_BACKEND={backend} needs the {backend!r} extra (openvino cannot be imported: "
                          f"ImportError: libopenvino.so.2026: cannot open shared object file)")

    monkeypatch.setattr(packages, "check_backend", broken)
    monkeypatch.setattr(packages, "backend_installed", lambda backend: backend == "openvino")
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: False)
    with caplog.at_level(logging.DEBUG, logger="search.encoding.choice"):
        assert backend_choice.candidates("cpu") == [("torch", "fp32")]
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1, [r.getMessage() for r in caplog.records]
    msg = warned[0].getMessage()
    assert "'openvino' extra is installed but cannot be used" in msg and "libopenvino.so" in msg
    assert "pip install 'esco-skill-search[openvino]'" in msg  # how to fix it
    assert any(r.levelno == logging.DEBUG and "onnx" in r.getMessage() for r in caplog.records)


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
    enc = load_encoder(SearchSettings(_env_file=None, model=minilm_path, device="cpu", precision="fp32"))  # type: ignore[call-arg]
    assert (enc.backend, enc.precision) == ("torch", "fp32") and "backend_choice" not in enc.describe()

    def missing(backend, precision):
        raise ConfigError(f"ESCO_BACKEND={backend} needs the {backend!r} extra")

    monkeypatch.setattr(packages, "check_backend", missing)
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
    load, loads, _ = two_candidates
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
