"""The encoder benchmark's forward-only variant measures the real model: the same vectors, a part of the time."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_encoders import _forward_only, encode, parse_variant


def test_variant_flags_are_parsed_and_unknown_ones_refused() -> None:
    v = parse_variant("openvino:int8:16:forward")
    assert (v["backend"], v["precision"], v["batch_size"], v["sorted"], v["forward"]) == ("openvino", "int8", 16,
                                                                                           True, True)
    assert parse_variant("torch:fp32:32:unsorted")["sorted"] is False
    with pytest.raises(SystemExit, match="forwrd"):
        parse_variant("torch:fp32:32:forwrd")


def test_forward_only_gives_the_encoders_own_vectors(encoder) -> None:
    texts = ["Bake bread and pastries.", "Operate a forklift in a warehouse and keep the stock records up to date.",
             "machine learning"]
    emb, secs = _forward_only(encoder, texts)
    want = np.asarray(encoder.encode_passages(texts, batch_size=len(texts)), dtype=np.float32)
    assert secs > 0
    assert emb.shape == want.shape
    np.testing.assert_allclose(emb, want, atol=1e-5)
    got, times = encode(encoder, texts, [len(t) for t in texts], batch_size=2, sort=True, forward=True)
    assert len(times) == 2
    np.testing.assert_allclose(got, want, atol=1e-5)
