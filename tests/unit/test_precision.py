"""The ``auto`` precision and what it costs in embedding quality."""

from __future__ import annotations

import numpy as np
import pytest

from search.encoding import SentenceTransformerEncoder, cpu_has_bf16, resolve_precision


@pytest.mark.parametrize(
    ("backend", "device", "bf16", "expected"),
    [
        ("torch", "cuda", False, "fp16"),
        ("torch", "cuda:1", True, "fp16"),
        ("torch", "cpu", True, "bf16"),
        ("torch", "cpu", False, "fp32"),
        ("torch", "mps", False, "fp32"),
        ("onnx", "cpu", False, "int8"),
        ("openvino", "cpu", True, "int8"),
    ],
)
def test_auto_resolves_to_the_fastest_precision_that_kept_quality(monkeypatch, backend, device, bf16, expected):
    monkeypatch.setattr("search.encoding.encoder.cpu_has_bf16", lambda: bf16)
    assert resolve_precision("auto", backend, device) == expected
    assert resolve_precision("fp32", backend, device) == "fp32"  # an explicit choice stays


def test_auto_on_this_cpu_embeds_like_fp32(minilm_path):
    auto = SentenceTransformerEncoder(minilm_path, device="cpu", cache_size=0)
    fp32 = SentenceTransformerEncoder(minilm_path, device="cpu", precision="fp32", cache_size=0)
    assert auto.precision == ("bf16" if cpu_has_bf16() else "fp32")
    assert auto.describe()["precision"] == auto.precision  # recorded with the collection
    texts = ["bake bread: Perform all the steps of baking bread.", "Python (computer programming): software."]
    cos = np.sum(auto.encode_passages(texts) * fp32.encode_passages(texts), axis=1)
    assert np.all(cos > 0.995), cos
