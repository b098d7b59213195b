"""What the benchmarks share: the models, ESCO passages from the real release, tables and JSON results."""

from __future__ import annotations

import json
import logging
import os
import platform
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MODELS = ROOT / ".models"
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_RELEASE = SHARED / "esco" / "v1.1.1"
E5_SMALL = MODELS / "multilingual-e5-small"
XLMR_RANDOM = MODELS / "xlmr-base-random"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# --- models ---------------------------------------------------------------------------------------------
def e5_small() -> Path:
    """multilingual-e5-small, built once from ../shared/models into .models/."""
    if (E5_SMALL / "model.safetensors").exists():
        return E5_SMALL
    script = SHARED / "models" / "build-multilingual-e5-small"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    subprocess.run(["bash", str(script), str(E5_SMALL)], check=True, env=env)
    return E5_SMALL


def xlmr_base_random() -> Path:
    """An XLM-R base (the real model's architecture) with random weights, saved once under .models/.

    12 layers, hidden 768, intermediate 3072, 12 heads, vocabulary 250002, 514 positions; Transformer + mean
    Pooling + Normalize, as the real model's card lists; the tokenizer is multilingual-e5-small's (the same
    XLM-R sentencepiece vocabulary). Same compute as the real model; its embeddings mean nothing.
    """
    if (XLMR_RANDOM / "modules.json").exists():
        return XLMR_RANDOM
    import shutil

    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    src = e5_small()
    tmp = XLMR_RANDOM.with_name(XLMR_RANDOM.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    torch.manual_seed(0)
    cfg = XLMRobertaConfig(
        vocab_size=250002, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0,
        eos_token_id=2, hidden_act="gelu",
    )
    XLMRobertaModel(cfg).save_pretrained(tmp)
    # The classic sentence-transformers layout (as the e5-small folder has it), readable by 5.x and 6.x alike.
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "modules.json",
                 "sentence_bert_config.json", "config_sentence_transformers.json"):
        if (src / name).exists():
            shutil.copy(src / name, tmp / name)
    shutil.copytree(src / "2_Normalize", tmp / "2_Normalize")
    pooling = json.loads((src / "1_Pooling" / "config.json").read_text())
    pooling["word_embedding_dimension"] = 768
    (tmp / "1_Pooling").mkdir()
    (tmp / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))
    (tmp / "README.md").write_text("XLM-R base shape with random weights (benchmarks only): see benchmarks/common.py\n")
    shutil.rmtree(XLMR_RANDOM, ignore_errors=True)
    tmp.rename(XLMR_RANDOM)
    return XLMR_RANDOM


def resolve_model(name: str) -> str:
    """``e5-small`` / ``xlmr-random`` or a path / hub id."""
    if name in ("e5-small", "e5_small", "multilingual-e5-small"):
        return str(e5_small())
    if name in ("xlmr-random", "xlmr-base-random", "xlmr"):
        return str(xlmr_base_random())
    return name


# --- ESCO -----------------------------------------------------------------------------------------------
def esco_records(release: str | Path = DEFAULT_RELEASE, language: str = "en") -> list[Any]:
    """The skills of a real release (zip or folder), read with the project's own reader."""
    from ingest.esco import read_release

    rel = read_release([release], [language])
    return list(rel.skills.get(language, []))


def esco_passages(records: Sequence[Any]) -> list[str]:
    """Passage bodies ``<preferredLabel>: <description>`` (the encoder adds ``passage: ``)."""
    from search.schema import passage_text

    return [passage_text(r.preferred_label, r.description) for r in records]


def sample(items: Sequence[Any], n: int, seed: int = 0) -> list[Any]:
    items = list(items)
    if n >= len(items):
        return items
    return random.Random(seed).sample(items, n)


# --- output ---------------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                            "platform": platform.platform(), "load_average": os.getloadavg()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
        info["cpu_flags"] = sorted(f for f in flags if f.startswith(("avx512", "amx", "avx_vnni", "avx2")))
    except OSError:
        pass
    for mod in ("torch", "transformers", "sentence_transformers", "openvino", "nncf", "optimum", "onnxruntime",
                "qdrant_client", "qdrant_edge"):
        try:
            m = __import__(mod)
            info[mod] = getattr(m, "__version__", None) or getattr(m, "get_version", lambda: "?")()
        except Exception:  # noqa: BLE001 - absent or broken: not reported
            pass
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A plain-text table of ``rows`` (floats rounded for reading)."""
    if not rows:
        return "(no rows)"
    cols = list(columns or rows[0].keys())

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
        return "" if v is None else str(v)

    cells = [[fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    out = ["  ".join(c.ljust(w) for c, w in zip(cols, widths)), "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(out)


def write_result(name: str, data: dict[str, Any]) -> Path:
    """``benchmarks/results/<name>.json`` with the machine, the command line and a timestamp."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "command": " ".join(["python", "-m", f"benchmarks.{Path(sys.argv[0]).stem}", *sys.argv[1:]]),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        **data,
    }
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n")
    return path


def percentile(values: Sequence[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


def quiet_logging() -> None:
    """Warnings only, and nothing below errors from the model libraries, whose info lines break tables."""
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("transformers", "sentence_transformers", "optimum", "nncf"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
