"""Would multi-representation (hybrid) retrieval improve ESCO occupation TITLE search?  numpy only.

Run from the project root: ``python -m benchmarks.occupation_titles`` (a few minutes of encoding on 2 cores the
first time; ``ESCO_BENCH_OUT`` names the folder of the cache and the tables, default
``benchmarks/results/occupation_titles``). Figures and the decision they feed: docs/occupations.md.

Representations per occupation (as for skills, search/hybrid.py):
  passage  `passage: <preferred label>: <description>` (search.schema.passage_text, the ingest's text)
  labels3  MaxSim over the first 3 labels of search.occupations.schema.occupation_labels (preferred, then
           alternatives in ESCO order, each followed by its gendered forms, then hidden), `query: <label>`
  labelsA  MaxSim over every label (same order)
  pref     the preferred label, `query: <label>` (= the first label row)
  bm25     qdrant_edge Bm25 over every label joined (search.hybrid.bm25_document), Qdrant's IDF over n occupations
Exact-label promotion (label_key of the query among the occupation's label keys) applies to every variant,
as search_occupations does today.

Embeddings are cached under the output folder's ``cache/`` (.npy + the texts they encode).
"""

from __future__ import annotations

import json
from collections.abc import Callable
import os
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import DEFAULT_RELEASE, RESULTS, e5_small
from ingest.esco.occupations import read_occupations
from search import hybrid
from search.occupations.schema import gendered_forms, occupation_labels
from search.schema import passage_text, point_id
from search.text import clean_text

ROOT = Path(os.environ.get("ESCO_BENCH_OUT") or RESULTS / "occupation_titles")
CACHE = ROOT / "cache"
ESCO = str(DEFAULT_RELEASE)
LANG = "en"
PREFETCH = 100
N_ALT, N_NOISY, N_DESC = 500, 300, 300
SEED_ALT, SEED_NOISY, SEED_DESC = 17, 1017, 2017

_ENC = None


def encoder():
    global _ENC
    if _ENC is None:
        import torch

        torch.set_num_threads(2)
        from search.encoding.encoder import SentenceTransformerEncoder

        _ENC = SentenceTransformerEncoder(str(e5_small()), backend="torch", precision="fp32", cache_size=0)
    return _ENC


def cached(name: str, texts: list[str], kind: str, timings: dict) -> np.ndarray:
    """Embeddings of ``texts`` (kind: passage | query), from the cache when the texts are the same."""
    CACHE.mkdir(parents=True, exist_ok=True)
    npy, js = CACHE / f"{name}.npy", CACHE / f"{name}.json"
    if npy.is_file() and js.is_file() and json.loads(js.read_text())["texts"] == texts:
        meta = json.loads(js.read_text())
        if "seconds" in meta:
            timings[name] = meta["seconds"]
        return np.load(npy)
    enc = encoder()
    t = time.perf_counter()
    if kind == "passage":  # as the ingest: batch_size 16 (IngestSettings.batch_size), sorted by length
        order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
        v = enc.encode_passages([texts[i] for i in order], batch_size=16)
        out = np.empty_like(v)
        out[order] = v
    else:  # label rows and queries: encode_queries (batch 32), as ingest/representations.py encodes label rows
        out = enc.encode_queries(texts)
    sec = time.perf_counter() - t
    timings[name] = sec
    np.save(npy, out.astype(np.float32))
    js.write_text(json.dumps({"texts": texts, "seconds": sec, "n": len(texts)}))
    print(f"  encoded {name}: {len(texts)} texts in {sec:.1f} s", flush=True)
    return out.astype(np.float32)


# ---------------------------------------------------------------------------------------------------------
class Data:
    def __init__(self) -> None:
        rel = read_occupations(ESCO, [LANG])
        self.occ = rel.occupations[LANG]
        self.n = len(self.occ)
        self.uris = [o.concept_uri for o in self.occ]
        self.pids = [point_id(u, LANG) for u in self.uris]
        self.labels = [occupation_labels(o.preferred_label, o.alt_labels, o.hidden_labels) for o in self.occ]
        self.passages = [passage_text(o.preferred_label, o.description) for o in self.occ]
        self.keys = [set(hybrid.label_key(x) for x in labs) for labs in self.labels]
        self.owners: dict[str, set[int]] = {}
        for i, ks in enumerate(self.keys):
            for k in ks:
                self.owners.setdefault(k, set()).add(i)
        self.all_label_texts = list(dict.fromkeys(x for labs in self.labels for x in labs))
        self.row_of = {t: j for j, t in enumerate(self.all_label_texts)}
        self.timings: dict[str, float] = {}

    def encode(self) -> None:
        t = self.timings
        self.P = cached("passages", self.passages, "passage", t)
        self.LR = cached("labels_all", self.all_label_texts, "query", t)
        first3 = list(dict.fromkeys(x for labs in self.labels for x in labs[: hybrid.MAX_LABEL_ROWS]))
        self.first3_texts = first3
        cached("labels_first3_timing", first3, "query", t)  # only for the encode time of 3 rows per occupation
        self.pref = self.LR[[self.row_of[labs[0]] for labs in self.labels]]
        # label row matrices (occupation after occupation) and their starts
        self.rows3 = [[self.row_of[x] for x in labs[:3]] for labs in self.labels]
        self.rowsA = [[self.row_of[x] for x in labs] for labs in self.labels]
        self.C = centroids(self.LR, self.rowsA)  # one dense vector per occupation: the mean of every label row

    def bm25(self) -> None:
        self.terms = hybrid.Bm25Terms(LANG, hybrid.DEFAULT_AVG_LEN)
        docs = [hybrid.bm25_document(labs) for labs in self.labels]
        self.avg_len = float(np.mean([self.terms.token_count(d) for d in docs]))
        self.terms = hybrid.Bm25Terms(LANG, self.avg_len)  # measured on occupations, as 7.3 was on skills
        self.doc_terms: list[dict[int, float]] = []
        post: dict[int, tuple[list[int], list[float]]] = {}
        for i, d in enumerate(docs):
            sv = self.terms.document(d, tie_break=self.pids[i])
            dt = dict(zip(sv.indices, sv.values))
            self.doc_terms.append(dt)
            for tt, w in dt.items():
                p = post.setdefault(tt, ([], []))
                p[0].append(i)
                p[1].append(w)
        self.post = {tt: (np.asarray(a, np.int64), np.asarray(w, np.float64)) for tt, (a, w) in post.items()}


# ---------------------------------------------------------------------------------------------------------
NOISE_POST = ["(m/f/d)", "(m/w/d)", "- London", ", Berlin", "(remote)", "- full time", "(part-time)", "- 6 month contract"]
NOISE_PRE = ["senior", "junior", "lead", "trainee", "experienced", "chief"]


def build_sets(d: Data) -> dict[str, list[dict]]:
    sets: dict[str, list[dict]] = {}

    def pick_alt(i: int, rng: random.Random) -> tuple[str, set[str]] | None:
        labs = d.labels[i]
        if len(labs) < 2:
            return None
        pref_key = hybrid.label_key(labs[0])
        alts = [clean_text(a) for a in d.occ[i].alt_labels]
        alts = [a for a in dict.fromkeys(alts) if a and hybrid.label_key(a) != pref_key
                and d.owners.get(hybrid.label_key(a)) == {i}]
        if not alts:
            return None
        q = rng.choice(alts)
        removed = {hybrid.label_key(q)} | {hybrid.label_key(g) for g in gendered_forms(q)}
        removed.discard(pref_key)
        return q, removed

    def sample(seed: int, n: int, make: Callable[[int, random.Random], dict | None]) -> list[dict]:
        """Up to ``n`` queries from the occupations in a shuffled order (``make`` skips one with None)."""
        rng = random.Random(seed)
        order = list(range(d.n))
        rng.shuffle(order)
        out: list[dict] = []
        for i in order:
            if len(out) >= n:
                break
            q = make(i, rng)
            if q is not None:
                out.append(q)
        return out

    def held_out(i: int, rng: random.Random) -> dict | None:  # (a) a held-out alternative label
        got = pick_alt(i, rng)
        return {"occ": i, "query": got[0], "removed": sorted(got[1]), "base": got[0]} if got else None

    def noisy(i: int, rng: random.Random) -> dict | None:  # (b) a noisy free title from a held-out alt label
        got = pick_alt(i, rng)
        if not got:
            return None
        q = got[0]
        style = rng.choice(["pre", "post", "both"])
        if style in ("pre", "both"):
            q = f"{rng.choice(NOISE_PRE)} {q}"
        if style in ("post", "both"):
            suf = rng.choice(NOISE_POST)
            q = f"{q}{suf}" if suf.startswith(",") else f"{q} {suf}"
        if rng.random() < 0.5:
            q = q[0].upper() + q[1:]
        return {"occ": i, "query": clean_text(q), "removed": sorted(got[1]), "base": got[0]}

    def first_sentence(i: int, rng: random.Random) -> dict | None:  # (c) of a description of >= 2 sentences
        desc = d.occ[i].description.strip()
        parts = re.split(r"(?<=[.!?])\s+(?=[A-Z])", desc, maxsplit=1)
        if len(parts) < 2 or len(parts[0].split()) < 5 or len(parts[1].split()) < 5:
            return None
        return {"occ": i, "query": clean_text(parts[0]), "removed": [],
                "rest_passage": passage_text(d.occ[i].preferred_label, parts[1])}

    sets["a: alt held out"] = sample(SEED_ALT, N_ALT, held_out)
    sets["b: noisy titles"] = sample(SEED_NOISY, N_NOISY, noisy)
    sets["c: description 1st sentence"] = sample(SEED_DESC, N_DESC, first_sentence)
    return sets


# ---------------------------------------------------------------------------------------------------------
def top(scores: np.ndarray, limit: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """Indices of the best ``limit`` scores (NaN excluded), ties by index (the reference orders ties by id)."""
    ok = ~np.isnan(scores)
    if allowed is not None:
        ok &= allowed
    cand = np.nonzero(ok)[0]
    o = np.lexsort((cand, -scores[cand]))
    return cand[o[:limit]]


def rrf(rankings: list[np.ndarray], k: int, weights: list[float]) -> dict[int, float]:
    out: dict[int, float] = {}
    for r, w in zip(rankings, weights):
        for pos, i in enumerate(r.tolist()):
            out[i] = out.get(i, 0.0) + 1.0 / ((pos + 1) / w + k - 1)  # Qdrant's weighted RRF
    return out


def centroids(LR: np.ndarray, rows: list[list[int]]) -> np.ndarray:
    c = np.stack([LR[r].sum(axis=0) for r in rows])
    return (c / np.linalg.norm(c, axis=1, keepdims=True)).astype(np.float32)


CAPS = {"L3": 3, "L5": 5, "L8": 8, "LA": None}


def maxsim(scores_rows: np.ndarray, rows: list[list[int]]) -> np.ndarray:
    flat = np.concatenate([np.asarray(r, np.int64) for r in rows])
    starts = np.cumsum([0] + [len(r) for r in rows[:-1]])
    return np.maximum.reduceat(scores_rows[flat], starts)


# Variants: (name, legs, labels candidates (None: full scan), k, weights). Legs: P, L3, LA, R (pref), B.
SINGLE = ["P", "L3", "L5", "L8", "LA", "LC", "R", "B"]
SINGLE_NAMES = {"P": "passage only (today)", "L3": "labels MaxSim, first 3", "L5": "labels MaxSim, first 5",
                "L8": "labels MaxSim, first 8", "LA": "labels MaxSim, all", "LC": "labels centroid (all), dense",
                "R": "pref only", "B": "BM25 only"}


def fusion_variants() -> list[tuple[str, tuple[str, ...], tuple[str, ...] | None, int]]:
    v = []
    for k in (10, 60):
        v += [
            (f"RRF P+L3 full, k={k}", ("P", "L3"), None, k),
            (f"RRF P+L3 rescore(P), k={k}", ("P", "L3"), ("P",), k),
            (f"RRF P+LA full, k={k}", ("P", "LA"), None, k),
            (f"RRF P+L3+B full, k={k}", ("P", "L3", "B"), None, k),
            (f"RRF P+L3+B rescore(P,B), k={k}", ("P", "L3", "B"), ("P", "B"), k),
            (f"RRF P+LA+B full, k={k}", ("P", "LA", "B"), None, k),
            (f"RRF P+LA+B rescore(P,B), k={k}", ("P", "LA", "B"), ("P", "B"), k),
            (f"RRF P+L5+B rescore(P,B), k={k}", ("P", "L5", "B"), ("P", "B"), k),
            (f"RRF P+L8+B rescore(P,B), k={k}", ("P", "L8", "B"), ("P", "B"), k),
            (f"RRF P+LC+B (centroid, dense scan), k={k}", ("P", "LC", "B"), None, k),
            (f"RRF P+pref, k={k}", ("P", "R"), None, k),
            (f"RRF P+pref+B, k={k}", ("P", "R", "B"), None, k),
        ]
    return v


WEIGHTS = [1.0, 0.999, 0.998]  # the skills' default: equal in effect, no swap ties


def evaluate(d: Data, sets: dict[str, list[dict]]) -> dict:
    idf = lambda df: float(hybrid.idf([df], d.n)[0])  # noqa: E731
    fus = fusion_variants()
    names = [SINGLE_NAMES[s] for s in SINGLE] + ["max(cos P, MaxSim L3)"] + [f[0] for f in fus]
    results: dict[str, dict[str, np.ndarray]] = {}
    for sname, qs in sets.items():
        texts = [q["query"] for q in qs]
        Q = cached(f"queries_{sname.split(':')[0]}", texts, "query", {})
        extra = None
        if sname.startswith("c"):
            extra = cached("desc_rest_passages", [q["rest_passage"] for q in qs], "passage", d.timings)
        SP = d.P @ Q.T  # (n, q)
        SR = d.pref @ Q.T
        SL = d.LR @ Q.T  # (label texts, q)
        SC = d.C @ Q.T
        ranks = {nm: np.zeros(len(qs), np.int64) for nm in names}
        if sname.startswith("c"):
            ranks["passage only, 1st sentence kept in passage"] = np.zeros(len(qs), np.int64)
        for qi, q in enumerate(qs):
            o = q["occ"]
            removed = set(q["removed"])
            kept = [x for x in d.labels[o] if hybrid.label_key(x) not in removed]
            legs: dict[str, np.ndarray] = {}
            legs["P"] = SP[:, qi].astype(np.float64).copy()
            p_leaky = legs["P"].copy()
            if extra is not None:
                legs["P"][o] = float(extra[qi] @ Q[qi])
            legs["R"] = SR[:, qi].astype(np.float64)
            sl = SL[:, qi].astype(np.float64)
            for leg, cap in CAPS.items():
                rows = [r[:cap] for r in d.rowsA] if cap else list(d.rowsA)
                rows[o] = [d.row_of[x] for x in (kept[:cap] if cap else kept)]
                legs[leg] = maxsim(sl, rows)
            legs["LC"] = SC[:, qi].astype(np.float64).copy()
            legs["LC"][o] = float(centroids(d.LR, [[d.row_of[x] for x in kept]])[0] @ Q[qi])
            # BM25 with occupation o's document rebuilt from its kept labels (df and IDF follow)
            qterms = list(dict.fromkeys(d.terms.query(q["query"]).indices))
            if removed:
                sv = d.terms.document(hybrid.bm25_document(kept), tie_break=d.pids[o])
                new_o = dict(zip(sv.indices, sv.values))
            else:
                new_o = d.doc_terms[o]
            b = np.full(d.n, np.nan)
            for tt in qterms:
                docs, w = d.post.get(tt, (np.zeros(0, np.int64), np.zeros(0)))
                keep = docs != o
                docs, w = docs[keep], w[keep]
                df = len(docs) + (1 if tt in new_o else 0)
                if df == 0:
                    continue
                f = idf(df)
                if len(docs):
                    b[docs] = np.where(np.isnan(b[docs]), 0.0, b[docs]) + f * w
                if tt in new_o:
                    b[o] = (0.0 if np.isnan(b[o]) else b[o]) + f * new_o[tt]
            legs["B"] = b
            if removed:  # lexical overlap of the query with the occupation's remaining labels (BM25 terms)
                bterms = set(d.terms.query(q["base"]).indices)  # the held-out label without the added noise
                q["overlap"] = len(bterms & set(new_o)) / max(1, len(bterms))
            # exact-label promotion, with o's removed keys taken out
            key = hybrid.label_key(q["query"])
            promoted = {i for i in d.owners.get(key, set()) if not (i == o and key in removed)}

            def final_rank(order_scores: dict[int, float] | np.ndarray) -> int:
                if isinstance(order_scores, np.ndarray):
                    s = order_scores.copy()
                    for i in promoted:
                        s[i] = (0.0 if np.isnan(s[i]) else s[i]) + 1000.0
                    t10 = top(s, 10).tolist()
                else:
                    s = dict(order_scores)
                    for i in promoted:
                        s[i] = s.get(i, 0.0) + 1000.0
                    t10 = sorted(s, key=lambda i: (-s[i], i))[:10]
                return t10.index(o) + 1 if o in t10 else 0

            for s in SINGLE:
                ranks[SINGLE_NAMES[s]][qi] = final_rank(legs[s])
            ranks["max(cos P, MaxSim L3)"][qi] = final_rank(np.maximum(legs["P"], legs["L3"]))
            if extra is not None:
                ranks["passage only, 1st sentence kept in passage"][qi] = final_rank(p_leaky)
            tops = {s: top(legs[s], PREFETCH) for s in ("P", "R", "B", "LC")}
            for name, lg, cand, k in fus:
                rk = []
                for s in lg:
                    if s in CAPS and cand is not None:
                        allowed = np.zeros(d.n, bool)
                        for c in cand:
                            allowed[tops[c]] = True
                        rk.append(top(legs[s], PREFETCH, allowed))
                    elif s in CAPS or s == "LC":
                        rk.append(top(legs[s], PREFETCH))
                    else:
                        rk.append(tops[s])  # P, R, B; LC handled above (full dense scan)
                ranks[name][qi] = final_rank(rrf(rk, k, WEIGHTS[: len(lg)]))
        results[sname] = ranks
        print(f"  evaluated {sname}: {len(qs)} queries", flush=True)
    return results


def metrics(r: np.ndarray) -> tuple[float, float]:
    rr = np.where(r > 0, 1.0 / np.maximum(r, 1), 0.0)
    return float(rr.mean()), float((r > 0).mean())


def boot_ci(r: np.ndarray, base: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % paired bootstrap interval of MRR@10(variant) - MRR@10(passage)."""
    rr = np.where(r > 0, 1.0 / np.maximum(r, 1), 0.0) - np.where(base > 0, 1.0 / np.maximum(base, 1), 0.0)
    g = np.random.default_rng(seed)
    idx = g.integers(0, len(rr), (n, len(rr)))
    m = rr[idx].mean(axis=1)
    return float(np.percentile(m, 2.5)), float(np.percentile(m, 97.5))


def encode_timing(d: Data, n: int = 300, rounds: int = 2) -> dict:
    """Encode times of the same occupations' passages, first-3 label rows and every label row, interleaved
    (the full-run times above ran at different machine loads); best of ``rounds``; cached in timing.json."""
    path = ROOT / "timing.json"
    if path.is_file():
        return json.loads(path.read_text())
    rng = random.Random(5)
    pick = rng.sample(range(d.n), n)
    kinds = {"passages": ([d.passages[i] for i in pick], "passage"),
             "label rows, first 3": ([x for i in pick for x in d.labels[i][:3]], "query"),
             "label rows, all": ([x for i in pick for x in d.labels[i]], "query")}
    enc = encoder()
    enc.encode_queries(["warm up"])
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, (texts, kind) in kinds.items():
            t = time.perf_counter()
            if kind == "passage":
                enc.encode_passages(sorted(texts, key=len), batch_size=16)
            else:
                enc.encode_queries(texts)
            best[name] = min(best.get(name, 1e9), time.perf_counter() - t)
    out = {"occupations": n, "texts": {k: len(v[0]) for k, v in kinds.items()}, "seconds": best}
    path.write_text(json.dumps(out, indent=1))
    return out


def search_costs(d: Data, Q: np.ndarray) -> dict[str, float]:
    """Median numpy time per query of each leg over every occupation (indicative only, shared CPU)."""
    Lall = d.LR[np.concatenate([np.asarray(r) for r in d.rowsA])]
    L3 = d.LR[np.concatenate([np.asarray(r) for r in d.rows3])]
    st3 = np.cumsum([0] + [len(r) for r in d.rows3[:-1]])
    stA = np.cumsum([0] + [len(r) for r in d.rowsA[:-1]])
    out = {}
    for name, fn in (("passage scan", lambda q: d.P @ q),
                     ("labels3 full MaxSim", lambda q: np.maximum.reduceat(L3 @ q, st3)),
                     ("labelsAll full MaxSim", lambda q: np.maximum.reduceat(Lall @ q, stA))):
        passes = []
        for _ in range(5):
            t = time.perf_counter()
            for q in Q[:200]:
                fn(q)
            passes.append((time.perf_counter() - t) / 200)
        out[name] = float(min(passes) * 1000)
    return out


def main() -> int:
    t0 = time.perf_counter()
    d = Data()
    print(f"{d.n} occupations, {len(d.all_label_texts)} distinct label texts", flush=True)
    d.encode()
    d.bm25()
    sets = build_sets(d)
    res = evaluate(d, sets)
    (ROOT / "sets.json").write_text(json.dumps(sets, indent=1, ensure_ascii=False))
    # table
    names = list(dict.fromkeys(nm for r in res.values() for nm in r))
    rows = []
    summary = {}
    for nm in names:
        row = [nm]
        summary[nm] = {}
        for sname, ranks in res.items():
            if nm not in ranks:
                row.append("—")
                continue
            m, rc = metrics(ranks[nm])
            b, _ = metrics(ranks["passage only (today)"])
            lo, hi = boot_ci(ranks[nm], ranks["passage only (today)"])
            summary[nm][sname] = {"mrr10": m, "recall10": rc, "ratio": m / b, "ci_diff": [lo, hi]}
            row.append(f"{m:.3f} / {rc:.3f} ({m / b:.2f}×)")
        rows.append(row)
    header = ["variant"] + [f"{s} ({len(sets[s])}) MRR@10 / R@10 (× passage)" for s in res]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    table = "\n".join(lines)
    print(table)
    np.savez(ROOT / "ranks.npz", **{f"{s}|{nm}": r for s, rr in res.items() for nm, r in rr.items()})
    # sets a, b split by the held-out label's BM25 terms found among the occupation's remaining labels
    sub_header = ["variant"]
    sub_masks = []
    for sname in [k for k in res if not k.startswith("c")]:
        ov = np.array([q["overlap"] for q in sets[sname]])
        for tag, m in (("every term elsewhere", ov >= 1.0), ("some term missing", ov < 1.0)):
            sub_masks.append((sname, tag, m))
            sub_header.append(f"{sname.split(':')[0]}: {tag} ({int(m.sum())})")
    sub_lines = ["| " + " | ".join(sub_header) + " |", "|" + "---|" * len(sub_header)]
    for nm in names:
        cells = [nm]
        for sname, tag, m in sub_masks:
            if nm not in res[sname]:
                cells.append("—")
                continue
            v, rc = metrics(res[sname][nm][m])
            b, _ = metrics(res[sname]["passage only (today)"][m])
            cells.append(f"{v:.3f} / {rc:.3f} ({v / b:.2f}×)")
        sub_lines.append("| " + " | ".join(cells) + " |")
    (ROOT / "table_overlap.md").write_text("\n".join(sub_lines) + "\n")
    print("\n".join(sub_lines))
    # paired bootstrap of MRR@10 differences between chosen variants
    pairs = [("RRF P+LA+B rescore(P,B), k=10", "RRF P+L3+B rescore(P,B), k=10"),
             ("RRF P+L8+B rescore(P,B), k=10", "RRF P+L3+B rescore(P,B), k=10"),
             ("RRF P+LC+B (centroid, dense scan), k=10", "RRF P+L3+B rescore(P,B), k=10"),
             ("RRF P+LA+B rescore(P,B), k=10", "RRF P+LC+B (centroid, dense scan), k=10"),
             ("RRF P+L3+B rescore(P,B), k=10", "RRF P+L3+B rescore(P,B), k=60")]
    pair_out = {}
    for x, y in pairs:
        for sname in res:
            lo, hi = boot_ci(res[sname][x], res[sname][y])
            dm = metrics(res[sname][x])[0] - metrics(res[sname][y])[0]
            pair_out[f"{x} - {y} | {sname}"] = [dm, lo, hi]
            print(f"{x} minus {y} | {sname}: {dm:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    rows3 = [len(r) for r in d.rows3]
    rowsA = [len(r) for r in d.rowsA]
    Qa = np.load(CACHE / "queries_a.npy")
    cost = {
        "occupations": d.n,
        "label rows per occupation, first 3 (mean)": float(np.mean(rows3)),
        "label rows per occupation, all (mean)": float(np.mean(rowsA)),
        "label rows total, first 3": int(sum(rows3)), "label rows total, all": int(sum(rowsA)),
        "distinct label texts encoded (all)": len(d.all_label_texts),
        "distinct label texts encoded (first 3)": len(d.first3_texts),
        "encode seconds": d.timings,
        "bm25 avg_len (distinct terms per occupation label document)": d.avg_len,
        "numpy ms per query (best of 5 passes)": search_costs(d, Qa),
        "paired bootstrap MRR@10 differences [mean, 2.5%, 97.5%]": pair_out,
        "encode timing, same 300 occupations, interleaved": encode_timing(d),
    }
    print(json.dumps(cost, indent=1))
    (ROOT / "results.json").write_text(json.dumps({"summary": summary, "cost": cost,
                                                   "sets": {k: len(v) for k, v in sets.items()}}, indent=1))
    (ROOT / "table.md").write_text(table + "\n")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
