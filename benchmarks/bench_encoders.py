"""Encoder throughput per backend/precision/batch size, on realistic ESCO passages, with agreement to torch fp32.

For each model (default: an XLM-R base with random weights, the real model's shape and compute; and the
multilingual-e5-small) it encodes the same ``--n`` passages ``passage: <preferredLabel>: <description>``
sampled from the real release through the project's own encoder (:class:`search.encoding.SentenceTransformerEncoder`),
as the ingest pipeline does: batches sorted by token length, one ``encode_passages`` call per batch.

* baseline: torch fp32, batch 32, batches in release (unsorted) order;
* a variant ending in ``:forward`` (``openvino:int8:16:forward``) times the model's forward pass alone, without
  tokenizing, pooling or normalizing: the backend's ceiling on this CPU, which no encoder built on it can pass;
* every variant: texts/s, tokens/s, the speed ratio to the baseline, the mean/min cosine of each embedding to
  the baseline's, the useful GFLOP/s (2 x non-embedding parameters per token, plus attention) and its share of
  the machine's fp32 matrix-multiply ceiling (measured first: torch fp32/bf16 matmuls of 768x3072-like shapes
  and a 2048 square one).

Backends whose packages are missing are skipped with the reason (ONNX and OpenVINO need different
transformers versions: see docs/benchmarks.md). Run: ``python -m benchmarks.bench_encoders [--n 512]``.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import time
from typing import Any

import numpy as np

from benchmarks.common import (
    quiet_logging,
    DEFAULT_RELEASE,
    esco_passages,
    esco_records,
    resolve_model,
    sample,
    table,
    write_result,
)

NAME = "bench_encoders"
DEFAULT_VARIANTS = [
    "torch:fp32:32:unsorted",  # the baseline: plain sentence-transformers, batch 32, no length sorting
    "auto:auto:16",  # the default: what ESCO_BACKEND=auto chose on this machine, at the ingest's batch size
    "torch:fp32:8", "torch:fp32:16", "torch:fp32:32",
    "torch:bf16:16",
    "onnx:fp32:16",
    "onnx:int8:8", "onnx:int8:16", "onnx:int8:32",
    "openvino:fp32:16",
    "openvino:bf16:8", "openvino:bf16:16", "openvino:bf16:32",
    "openvino:int8:8", "openvino:int8:16", "openvino:int8:32",
    "openvino:int8w:16",
]


# --- the machine's ceiling ------------------------------------------------------------------------------------
def matmul_ceiling(reps: int = 10) -> list[dict[str, Any]]:
    """GFLOP/s of torch matmuls: the FFN shapes of XLM-R base for a batch of 512 tokens, and a big square one.

    bf16 only where the CPU has bf16 instructions: emulated bf16 matmuls take minutes and measure nothing useful.
    """
    import torch

    shapes = [(512, 768, 3072), (512, 3072, 768), (512, 768, 768), (2048, 2048, 2048)]
    rows = []
    dtypes = [(torch.float32, "fp32")] + ([(torch.bfloat16, "bf16")] if bf16_supported() else [])
    for dtype, label in dtypes:
        for m, k, n in shapes:
            a = torch.randn(m, k).to(dtype)
            b = torch.randn(k, n).to(dtype)
            a @ b  # warm-up
            best = float("inf")
            for _ in range(reps):
                t = time.perf_counter()
                a @ b
                best = min(best, time.perf_counter() - t)
            rows.append({"dtype": label, "lib": "torch", "shape": f"{m}x{k} @ {k}x{n}",
                         "gflops": 2 * m * k * n / best / 1e9})
    # numpy's BLAS too: torch's fp32 GEMM (MKL) is not the fastest on every CPU (AMD)
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    a @ a
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t)
    rows.append({"dtype": "fp32", "lib": "numpy", "shape": "2048x2048 @ 2048x2048", "gflops": 2 * 2048**3 / best / 1e9})
    rows += _openvino_ceiling(reps)
    return rows


def _openvino_ceiling(reps: int) -> list[dict[str, Any]]:
    """The same matmuls compiled by OpenVINO (oneDNN, AVX-512 / AMX kernels), f32 and bf16: often the highest."""
    try:
        import openvino as ov
        import openvino.opset13 as ops  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001 - not installed: torch and numpy only
        return []
    rows = []
    core = ov.Core()
    rng = np.random.default_rng(0)
    for hint, label in (("f32", "fp32"),) + ((("bf16", "bf16"),) if bf16_supported() else ()):
        for m, k, n in ((512, 768, 3072), (2048, 2048, 2048)):
            x = ops.parameter([m, k], ov.Type.f32, name="x")
            w = ops.constant(rng.standard_normal((k, n), dtype=np.float32))
            model = ov.Model([ops.matmul(x, w, False, False)], [x], "mm")
            compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint,
                                                         "PERFORMANCE_HINT": "LATENCY"})
            req = compiled.create_infer_request()
            a = rng.standard_normal((m, k), dtype=np.float32)
            req.infer({0: a})
            best = float("inf")
            for _ in range(reps):
                t = time.perf_counter()
                req.infer({0: a})
                best = min(best, time.perf_counter() - t)
            rows.append({"dtype": label, "lib": "openvino", "shape": f"{m}x{k} @ {k}x{n}",
                         "gflops": 2 * m * k * n / best / 1e9})
    return rows


def bf16_supported() -> bool:
    """Native bf16 (AVX512-BF16 or AMX): elsewhere bf16 is emulated, slow, and skipped."""
    from search.encoding.hardware import cpu_has_bf16

    return cpu_has_bf16()


# --- model compute ---------------------------------------------------------------------------------------------
def model_shape(path: str) -> dict[str, int]:
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(path)
    h, i, n = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    per_layer = 4 * h * h + 4 * h + 2 * h * i + i + h + 4 * h  # attention, FFN, two layer norms
    return {"hidden": h, "intermediate": i, "layers": n, "non_embedding_params": n * per_layer}


def useful_flops(token_counts: list[int], shape: dict[str, int]) -> float:
    """FLOPs of the forward pass over the real (unpadded) tokens: dense layers plus attention scores/values."""
    p, h, n = shape["non_embedding_params"], shape["hidden"], shape["layers"]
    return float(sum(2 * p * t + 4 * n * h * t * t for t in token_counts))


# --- one variant -------------------------------------------------------------------------------------------------
def parse_variant(spec: str) -> dict[str, Any]:
    parts = spec.split(":")
    backend, precision, batch = parts[0], parts[1], int(parts[2])
    flags = set(parts[3:])
    unknown = flags - {"unsorted", "forward"}
    if unknown:
        raise SystemExit(f"variant {spec!r}: unknown flag(s) {sorted(unknown)}; use 'unsorted' or 'forward'")
    return {"spec": spec, "backend": backend, "precision": precision, "batch_size": batch,
            "sorted": "unsorted" not in flags, "forward": "forward" in flags}


def load_encoder(path: str, backend: str, precision: str) -> tuple[Any, float]:
    """The encoder of a variant; ``auto:auto`` is what the default settings load (``ESCO_BACKEND=auto``)."""
    from search.encoding import SentenceTransformerEncoder

    t = time.perf_counter()
    if (backend, precision) == ("auto", "auto"):
        from search.encoding import load_encoder as load_default
        from search.settings import SearchSettings

        enc = load_default(SearchSettings(_env_file=None, model=path, device="cpu", query_cache_size=0))  # type: ignore[call-arg]
    else:
        enc = SentenceTransformerEncoder(path, device="cpu", backend=backend, precision=precision, cache_size=0)
    return enc, time.perf_counter() - t


def encode(enc: Any, texts: list[str], lengths: list[int], batch_size: int, sort: bool, forward: bool = False
           ) -> tuple[np.ndarray, list[float]]:
    """Encode ``texts`` batch by batch as the ingest does; returns the embeddings and each batch's seconds.

    ``forward``: time only the model's forward pass of each batch (the transformer module of the
    sentence-transformers model: the backend's inference, without tokenizing, pooling or normalizing, which are
    done outside the clock). This is the ceiling of the backend on this CPU: no encoder built on it can go faster.
    """
    order = sorted(range(len(texts)), key=lambda i: lengths[i]) if sort else list(range(len(texts)))
    warm = [texts[i] for i in order[len(order) // 2 : len(order) // 2 + batch_size]]
    enc.encode_passages(warm, batch_size=batch_size)  # compile / allocate first
    out = np.zeros((len(texts), enc.dimension), dtype=np.float32)
    times = []
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        if forward:
            out[idx], secs = _forward_only(enc, [texts[i] for i in idx])
            times.append(secs)
            continue
        t = time.perf_counter()
        out[idx] = enc.encode_passages([texts[i] for i in idx], batch_size=batch_size)
        times.append(time.perf_counter() - t)
    return out, times


def _forward_only(enc: Any, batch: list[str]) -> tuple[np.ndarray, float]:
    """One batch through the model's modules; only the first (the transformer's forward) is timed."""
    import torch

    st = enc._st  # noqa: SLF001 - the benchmark looks inside the project's encoder on purpose
    features = st.preprocess([enc.passage_prompt + t for t in batch])
    features = {k: (v.to(st.device) if hasattr(v, "to") else v) for k, v in features.items()}
    with torch.inference_mode():
        t = time.perf_counter()
        features = st[0](features)
        secs = time.perf_counter() - t
        for module in list(st)[1:]:
            features = module(features)
    emb = features["sentence_embedding"].float().cpu().numpy()
    return emb / np.linalg.norm(emb, axis=1, keepdims=True), secs


def bench_model(
    model: str, texts: list[str], variants: list[dict[str, Any]], ceiling_fp32: float, rounds: int
) -> list[dict]:
    """Load every variant's encoder once, then time them round-robin ``rounds`` times.

    A variant's time is the sum over its batches of each batch's fastest round: on a shared, noisy machine
    this keeps what the variant costs and drops what other processes cost it (round-robin spreads slow
    spells over all variants; the plain sum of each round is kept in the results too).
    """
    path = resolve_model(model)
    shape = model_shape(path)
    encoders: dict[tuple[str, str], Any] = {}
    rows: dict[str, dict[str, Any]] = {}
    for v in variants:
        key = (v["backend"], v["precision"])
        row: dict[str, Any] = {"model": model, "variant": v["spec"], "backend": v["backend"],
                               "precision": v["precision"], "batch": v["batch_size"],
                               "order": "sorted" if v["sorted"] else "unsorted"}
        rows[v["spec"]] = row
        if v["precision"] == "bf16" and not bf16_supported():
            row["skipped"] = "this CPU has no native bf16 (avx512_bf16/amx): emulated, not measured"
        elif key not in encoders:
            try:
                encoders[key], load_s = load_encoder(path, *key)
                row["load_s"] = round(load_s, 1)
                if key == ("auto", "auto"):
                    enc_auto = encoders[key]
                    row["chosen"] = f"{enc_auto.backend}:{enc_auto.precision}"
                    row["choice"] = (enc_auto.backend_choice or {}).get("summary", "torch fp32 (nothing else to try)")
                    print(f"  auto chose {row['chosen']}: {row['choice']}", flush=True)
            except Exception as exc:  # noqa: BLE001 - a missing backend is reported, not fatal
                encoders[key] = None
                row["skipped"] = f"{type(exc).__name__}: {str(exc)[:300]}"
                print(f"  skip {key}: {row['skipped']}", flush=True)
        elif encoders[key] is None:
            row["skipped"] = "see the first variant of this backend"
    runnable = [v for v in variants if "skipped" not in rows[v["spec"]]]
    base = runnable[0]
    enc0 = encoders[(base["backend"], base["precision"])]
    lengths = [min(n, enc0.max_seq_length) for n in enc0.token_counts(texts, enc0.passage_prompt)]
    flops = useful_flops(lengths, shape)
    times: dict[str, list[list[float]]] = {v["spec"]: [] for v in runnable}
    embs: dict[str, np.ndarray] = {}
    for r in range(rounds):
        for v in runnable:
            enc = encoders[(v["backend"], v["precision"])]
            emb, batch_s = encode(enc, texts, lengths, v["batch_size"], v["sorted"], v["forward"])
            times[v["spec"]].append(batch_s)
            embs.setdefault(v["spec"], emb)
            print(f"  round {r + 1}/{rounds} {model:12s} {v['spec']:26s} {len(texts) / sum(batch_s):7.1f} texts/s",
                  flush=True)

    def best(spec: str) -> float:
        return float(np.sum(np.min(np.asarray(times[spec]), axis=0)))

    ref = embs[base["spec"]]
    base_s = best(base["spec"])
    for v in runnable:
        secs = best(v["spec"])
        emb = embs[v["spec"]]
        cos = np.sum(emb * ref, axis=1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(ref, axis=1))
        gflops = flops / secs / 1e9
        rows[v["spec"]].update({
            "seconds": round(secs, 2), "seconds_each_round": [round(sum(t), 2) for t in times[v["spec"]]],
            "texts_per_s": len(texts) / secs, "tokens_per_s": sum(lengths) / secs, "speedup": base_s / secs,
            "cos_mean": float(cos.mean()), "cos_min": float(cos.min()), "useful_gflops": gflops,
            "share_of_fp32_ceiling": gflops / ceiling_fp32 if ceiling_fp32 else None,
        })
    encoders.clear()
    gc.collect()
    return [rows[v["spec"]] for v in variants]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="xlmr-random,e5-small", help="comma list: xlmr-random, e5-small, or paths")
    ap.add_argument("--n", type=int, default=128, help="passages sampled from the release (default 128)")
    ap.add_argument("--release", default=str(DEFAULT_RELEASE), help="ESCO release zip(s) folder")
    ap.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                    help="comma list of backend:precision:batch[:unsorted][:forward] (forward: the model's "
                         "forward pass alone, the backend's ceiling); the first is the baseline")
    ap.add_argument("--backends", default="", help="only these backends (comma list; the baseline always runs)")
    ap.add_argument("--out", default=NAME, help="results/<out>.json")
    ap.add_argument("--rounds", type=int, default=2, help="timed rounds per variant, round-robin; best counts")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ceiling-only", action="store_true", help="only the matrix-multiply ceiling")
    args = ap.parse_args(argv)
    quiet_logging()

    if args.ceiling_only:
        rows_c = matmul_ceiling(reps=20)
        print(table(rows_c))
        print(f"wrote {write_result(args.out if args.out != NAME else 'bench_ceiling', {'ceiling': rows_c})}")
        return 0
    variants = [parse_variant(s) for s in args.variants.split(",") if s]
    if args.backends:
        keep = set(args.backends.split(","))
        variants = variants[:1] + [v for v in variants[1:] if v["backend"] in keep or v["backend"] == "auto"]
    texts = sample(esco_passages(esco_records(args.release)), args.n, args.seed)
    random.Random(args.seed).shuffle(texts)

    from search.encoding.hardware import cpu_info

    cpu = cpu_info().describe()
    load_before = os.getloadavg()
    print(f"CPU {cpu['model']} ({', '.join(cpu['flags'])}), {os.cpu_count()} cores", flush=True)
    print(f"load average {load_before}; matrix-multiply ceiling:", flush=True)
    ceiling = matmul_ceiling()
    print(table(ceiling), flush=True)
    fp32_ceiling = max(r["gflops"] for r in ceiling if r["dtype"] == "fp32")
    rows: list[dict[str, Any]] = []
    for model in args.models.split(","):
        print(f"\n{model}: {len(texts)} passages", flush=True)
        rows += bench_model(model, texts, variants, fp32_ceiling, args.rounds)
    # measured again at the end: the best of both runs is the ceiling (a busy spell only lowers it)
    again = matmul_ceiling()
    for r, a in zip(ceiling, again):
        r["gflops"] = max(r["gflops"], a["gflops"])
    print(table(ceiling), flush=True)
    best_fp32 = max(r["gflops"] for r in ceiling if r["dtype"] == "fp32")
    for r in rows:
        if r.get("useful_gflops"):
            r["share_of_fp32_ceiling"] = r["useful_gflops"] / best_fp32
    fp32_ceiling = best_fp32
    cols = ["model", "variant", "chosen", "texts_per_s", "tokens_per_s", "speedup", "cos_mean", "cos_min", "useful_gflops",
            "share_of_fp32_ceiling", "load_s", "skipped"]
    print("\n" + table([{c: r.get(c) for c in cols} for r in rows], cols))
    path = write_result(args.out, {"cpu": cpu, "cores": os.cpu_count(), "n_passages": len(texts), "rounds": args.rounds,
                                   "load_average_before_after": [load_before, os.getloadavg()],
                                   "release": args.release, "ceiling": ceiling,
                                   "fp32_ceiling_gflops": fp32_ceiling, "rows": rows})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
