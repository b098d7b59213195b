"""Writes search/encoding/data/check_set.json: the held-out retrieval check that ESCO_BACKEND=auto runs once.

Label queries: ESCO alternative labels (unambiguous, unlike the preferred label), each relevant to its own
skill's passage, among the passages of other skills; none of these skills is in the int8 calibration set
(search/encoding/data/calibration.json), so the check is out of sample.

Sentence queries (text like the users': job-ad and course sentences, not short labels): the first sentence of
an ESCO occupation's description ("Bakers make a wide range of breads, pastries, and other baked goods."),
relevant to the occupation's *essential* skills. For each sampled occupation, SKILLS_PER_OCCUPATION of its
essential skills are added to the passages; a sentence query's relevant passages are all of its occupation's
essential skills among the passages (so they are multi-relevant, like real sentences that name several skills).
A backend whose vectors lose 0.01 MRR@10 on such queries fails the check (search.encoding.check). Run once from
the repository root:

    python scripts/make_backend_check_set.py ../shared/esco/v1.1.1
"""

from __future__ import annotations

import csv
import io
import random
import re
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_quality import labelled_set  # noqa: E402
from ingest.esco import read_release  # noqa: E402
from search.encoding.data import calibration_texts  # noqa: E402
from search.jsonfile import write_json_atomic  # noqa: E402
from search.schema import passage_text  # noqa: E402

N_QUERIES, N_DISTRACTORS, SEED = 200, 200, 2027
N_SENTENCES, SKILLS_PER_OCCUPATION = 150, 2
OUT = ROOT / "search" / "encoding" / "data" / "check_set.json"


def _csv(folder: Path, pattern: str, member: str) -> list[dict[str, str]]:
    (zpath,) = sorted(folder.glob(pattern))
    with zipfile.ZipFile(zpath) as z:
        return list(csv.DictReader(io.TextIOWrapper(z.open(member), encoding="utf-8")))


def first_sentence(text: str) -> str:
    """The first sentence of an ESCO description (at least 40 characters), whitespace folded."""
    text = " ".join(text.split())
    m = re.search(r"(?<=[a-z)])\.\s+(?=[A-Z])", text[40:])
    return text[: 40 + m.start() + 1] if m else text


def sentence_queries(release: str, records: list, taken: set[str], seed: int) -> tuple[list, list]:
    """(sentence, occupation's essential skill URIs) for N_SENTENCES occupations, and the skills to add."""
    folder = Path(release)
    occupations = _csv(folder, "*classification_en*.zip", "occupations_en.csv")
    relations = _csv(folder, "*relations*.zip", "occupationSkillRelations.csv")
    usable = {r.concept_uri for r in records}
    essential: dict[str, list[str]] = {}
    for rel in relations:
        if rel["relationType"] == "essential" and rel["skillUri"] in usable:
            essential.setdefault(rel["occupationUri"], []).append(rel["skillUri"])
    pool = sorted((o for o in occupations if len(first_sentence(o["description"]).split()) >= 6
                   and len(essential.get(o["conceptUri"], [])) >= 3), key=lambda o: o["conceptUri"])
    rng = random.Random(seed)
    chosen = rng.sample(pool, N_SENTENCES)
    added: list[str] = []
    for o in chosen:
        fresh = [u for u in sorted(essential[o["conceptUri"]]) if u not in taken]
        for uri in rng.sample(fresh, min(SKILLS_PER_OCCUPATION, len(fresh))):
            taken.add(uri)
            added.append(uri)
    return [(first_sentence(o["description"]), set(essential[o["conceptUri"]])) for o in chosen], added


def main(release: str) -> None:
    records = read_release([release], ["en"]).skills["en"]
    calibrated = {t.removeprefix("passage: ") for t in calibration_texts()}
    records = [r for r in records if passage_text(r.preferred_label, r.description) not in calibrated]
    pairs = labelled_set(records, N_QUERIES, SEED)
    by_uri = {r.concept_uri: r for r in records}
    wanted = [by_uri[uri] for _, uri in pairs]
    rest = [r for r in records if r.concept_uri not in {u for _, u in pairs}]
    distractors = random.Random(SEED + 1).sample(rest, N_DISTRACTORS)
    taken = {r.concept_uri for r in wanted + distractors}
    sentences, added = sentence_queries(release, records, taken, SEED + 2)
    pooled = wanted + distractors + [by_uri[u] for u in added]
    passages = [passage_text(r.preferred_label, r.description) for r in pooled]
    index = {r.concept_uri: i for i, r in enumerate(pooled)}
    queries = [{"text": q, "kind": "label", "relevant": [i]} for i, (q, _) in enumerate(pairs)]
    for text, uris in sentences:
        queries.append({"text": text, "kind": "sentence", "relevant": sorted(index[u] for u in uris if u in index)})
    doc = {
        "about": (
            "Held-out retrieval check of ESCO_BACKEND=auto (search.encoding.check): what a faster backend must keep. "
            f"Label queries: {N_QUERIES} ESCO alternative labels, label query i is relevant to passage i; the last "
            f"{N_DISTRACTORS} passages are distractors. Passages '<preferredLabel>: <description>' sampled (seed "
            f"{SEED}) from the ESCO v1.1.1 English release, none from the int8 calibration set (European Commission, "
            "ESCO; reused under the ESCO licence, https://esco.ec.europa.eu). "
            f"Sentence queries: the first sentences of {N_SENTENCES} ESCO occupations' descriptions (seed {SEED + 2}), "
            "each relevant to its occupation's essential skills among the passages; "
            f"{SKILLS_PER_OCCUPATION} essential skills of each were added to the passages. "
            "Written by scripts/make_backend_check_set.py."
        ),
        "passages": passages,
        "queries": queries,
    }
    write_json_atomic(OUT, doc)
    print(f"wrote {OUT}: {len(doc['queries'])} queries, {len(passages)} passages")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT.parent / "shared" / "esco" / "v1.1.1"))
