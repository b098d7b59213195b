"""Build the document-level development sets for extraction (JSONL ``{"text": ..., "relevant": [URIs], ...}``).

* ``jobads-docs.jsonl``: consecutive distinct sentences of ``../shared/eval/jobads-validation`` (TECH and HOUSE,
  each file in its own order, so a document mostly holds sentences of one posting) grouped by ``--size``;
  labels are merged and resolved to URIs through the preferred labels of ESCO v1.1.0 (the labels' release);
  markers (``LABEL NOT PRESENT``, ``UNDERSPECIFIED``) carry no skill, and their sentences stay in the text
  as the noise of a real ad. Documents without any resolved skill are left out. Each row also keeps its
  ``sentences`` (text and relevant URIs) for the per-sentence baseline.
* ``esco-docs.jsonl``: one course-like document per occupation of the release: a title, a lead-in and
  ``--skills`` of its essential skills, each written as one of its *alternative* labels (never the
  preferred label or the description, which the index holds), as bullets, numbered items, a line list or
  sentences in turn. Relevant: those skills.
* ``*-boilerplate.jsonl``: the same documents with three boilerplate sentences
  (benchmarks/data/boilerplate_en.json: company blurbs, benefits, equal opportunity) mixed in; relevant
  unchanged. Compare each with its plain set: boilerplate should add nothing.

    python scripts/make_document_sets.py [--out benchmarks/results/documents] [--size 5] [--occupations 300]

The sets are derived from data outside the project: they are written to a git-ignored folder, never committed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import re
import sys
import zipfile
from pathlib import Path
from collections.abc import Iterable
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
JOBADS = SHARED / "eval" / "jobads-validation"
RELEASE = SHARED / "esco" / "v1.1.0"
BOILERPLATE = ROOT / "benchmarks" / "data" / "boilerplate_en.json"
MARKERS = {"LABEL NOT PRESENT", "UNDERSPECIFIED", ""}


def _zip_csv(release: Path, name: str) -> list[dict[str, str]]:
    for z in sorted(release.glob("*.zip")):
        with zipfile.ZipFile(z) as zf:
            if name in zf.namelist():
                with zf.open(name) as f:
                    return list(csv.DictReader(io.TextIOWrapper(f, encoding="utf-8")))
    raise SystemExit(f"{name} is not in any zip of {release}: give --release the ESCO v1.1.0 folder")


def skills(release: Path) -> list[dict[str, str]]:
    return _zip_csv(release, "skills_en.csv")


def _detokenize(s: str) -> str:
    """Undo the set's tokenizer spacing (``word .``, ``( x )``)."""
    s = re.sub(r"\s+([.,;:!?)])", r"\1", s.strip())
    return re.sub(r"\(\s+", "(", s)


def jobad_documents(release: Path, size: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    by_label: dict[str, str] = {}
    folded: dict[str, str] = {}
    for r in skills(release):
        by_label[r["preferredLabel"]] = r["conceptUri"]
        folded.setdefault(r["preferredLabel"].casefold().strip(), r["conceptUri"])
    stats = {"labels": 0, "resolved": 0, "unresolved": 0, "markers": 0}
    docs: list[dict[str, Any]] = []
    for name in ("tech", "house"):
        path = JOBADS / f"{name}_validation_annotations.csv"
        if not path.exists():
            raise SystemExit(f"{path} is missing: the job-ad sets live in ../shared/eval/jobads-validation")
        sentences: dict[str, set[str]] = {}
        with path.open(encoding="utf-8") as f:
            for row in csv.DictReader(f):
                sent = row["sentence"].strip()
                if not sent:
                    continue
                rel = sentences.setdefault(sent, set())
                label = row["label"].strip()
                if label in MARKERS:
                    stats["markers"] += 1
                    continue
                stats["labels"] += 1
                uri = by_label.get(label) or folded.get(label.casefold())
                if uri:
                    stats["resolved"] += 1
                    rel.add(uri)
                else:
                    stats["unresolved"] += 1
        items = list(sentences.items())
        for i in range(0, len(items), size):
            group = items[i:i + size]
            sents = [{"text": _detokenize(s), "relevant": sorted(r)} for s, r in group]
            relevant = sorted(set().union(*(set(s["relevant"]) for s in sents)))
            if not relevant:
                continue
            docs.append({"id": f"{name}-{i // size}", "text": _join(s["text"] for s in sents),
                         "relevant": relevant, "sentences": sents, "source": f"jobads-validation/{name}"})
    return docs, stats


def _join(sentences: Iterable[str]) -> str:
    """Sentences as an ad shows them: one that ends with a full stop flows on in the paragraph, one without
    (a heading, an item of a list) ends its line."""
    out = ""
    for s in sentences:
        out += s + (" " if s[-1:] in ".!?" else "\n")
    return out.strip()


def _alt(row: dict[str, str], rng: random.Random) -> str | None:
    alts = [a.strip() for a in row.get("altLabels", "").split("\n") if a.strip()]
    alts = [a for a in alts if a.casefold() != row["preferredLabel"].casefold()]
    return rng.choice(alts) if alts else None


def esco_documents(release: Path, n_occupations: int, n_skills: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    sk = {r["conceptUri"]: r for r in skills(release)}
    occs = {r["conceptUri"]: r for r in _zip_csv(release, "occupations_en.csv")}
    essential: dict[str, list[str]] = {}
    for r in _zip_csv(release, "occupationSkillRelations.csv"):
        if r["relationType"] == "essential" and r["skillUri"] in sk:
            essential.setdefault(r["occupationUri"], []).append(r["skillUri"])
    candidates = sorted(o for o, s in essential.items() if len(s) >= n_skills and o in occs)
    rng.shuffle(candidates)
    docs = []
    for k, occ in enumerate(candidates[:n_occupations]):
        chosen = []
        for uri in rng.sample(sorted(essential[occ]), len(essential[occ])):
            alt = _alt(sk[uri], rng)
            if alt:
                chosen.append((uri, alt))
            if len(chosen) == n_skills:
                break
        if len(chosen) < 3:
            continue
        title = f"Training course for the job of {occs[occ]['preferredLabel']}"
        form = k % 4
        lead, items = [("Participants learn to:", "- {a}"), ("Learning outcomes:", "{i}. {a}"),
                       ("What you will need", "{a}"), ("", "The course covers {a}.")][form]
        lines = [items.format(i=i + 1, a=a) for i, (_, a) in enumerate(chosen)]
        body = (lead + "\n" + "\n".join(lines)) if lead else " ".join(lines)
        text = f"{title}\n\n{body}"
        sents = [{"text": title, "relevant": []}] + ([{"text": lead, "relevant": []}] if lead else [])
        sents += [{"text": ln if form == 3 else a, "relevant": [u]} for ln, (u, a) in zip(lines, chosen)]
        docs.append({"id": f"esco-{k}", "text": text, "relevant": sorted(u for u, _ in chosen), "sentences": sents,
                     "source": f"esco v1.1.0 occupation {occ}", "form": ["bullets", "numbered", "lines", "sentences"][form]})
    return docs


def with_boilerplate(docs: list[dict[str, Any]], seed: int, n: int = 3) -> list[dict[str, Any]]:
    """The documents with ``n`` boilerplate sentences: one before the text, the rest after it."""
    pool = json.loads(BOILERPLATE.read_text(encoding="utf-8"))["sentences"]
    rng = random.Random(seed)
    out = []
    for d in docs:
        picked = rng.sample(pool, n)
        text = picked[0] + "\n\n" + d["text"] + "\n\n" + " ".join(picked[1:])
        row = {k: v for k, v in d.items() if k != "sentences"}
        row.update(text=text, id=d["id"] + "-bp", boilerplate=picked)
        if "sentences" in d:  # the baseline searches the boilerplate sentences too
            row["sentences"] = ([{"text": picked[0], "relevant": []}] + d["sentences"]
                                + [{"text": p, "relevant": []} for p in picked[1:]])
        out.append(row)
    return out


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "documents")
    p.add_argument("--release", type=Path, default=RELEASE, help="ESCO v1.1.0 folder (the job-ad labels' release)")
    p.add_argument("--size", type=int, default=5, help="job-ad sentences per document")
    p.add_argument("--occupations", type=int, default=150, help="ESCO documents (one per occupation)")
    p.add_argument("--skills", type=int, default=6, help="skills per ESCO document")
    p.add_argument("--seed", type=int, default=15)
    a = p.parse_args(argv)
    jobs, stats = jobad_documents(a.release, a.size)
    esco = esco_documents(a.release, a.occupations, a.skills, a.seed)
    sets = {"jobads-docs": jobs, "jobads-docs-boilerplate": with_boilerplate(jobs, a.seed),
            "esco-docs": esco, "esco-docs-boilerplate": with_boilerplate(esco, a.seed)}
    for name, rows in sets.items():
        write_jsonl(rows, a.out / f"{name}.jsonl")
        n_rel = sum(len(r["relevant"]) for r in rows)
        print(f"{name}: {len(rows)} documents, {n_rel} relevant skills -> {a.out / (name + '.jsonl')}")
    print(f"job-ad labels: {stats}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
