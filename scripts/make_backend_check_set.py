"""Writes search/encoding/data/check_set.json: the held-out retrieval check that ESCO_BACKEND=auto runs once.

Label queries: ESCO alternative labels (unambiguous, unlike the preferred label), each relevant to its own
skill's passage, among the passages of other skills; none of these skills is in the int8 calibration set
(search/encoding/data/calibration.json), so the check is out of sample. Run once from the repository root:

    python scripts/make_backend_check_set.py ../shared/esco/v1.1.1
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_quality import labelled_set  # noqa: E402
from ingest.esco import read_release  # noqa: E402
from search.encoding.data import calibration_texts  # noqa: E402
from search.jsonfile import write_json_atomic  # noqa: E402
from search.schema import passage_text  # noqa: E402

N_QUERIES, N_DISTRACTORS, SEED = 200, 200, 2027
OUT = ROOT / "search" / "encoding" / "data" / "check_set.json"


def main(release: str) -> None:
    records = read_release([release], ["en"]).skills["en"]
    calibrated = {t.removeprefix("passage: ") for t in calibration_texts()}
    records = [r for r in records if passage_text(r.preferred_label, r.description) not in calibrated]
    pairs = labelled_set(records, N_QUERIES, SEED)
    by_uri = {r.concept_uri: r for r in records}
    wanted = [by_uri[uri] for _, uri in pairs]
    rest = [r for r in records if r.concept_uri not in {u for _, u in pairs}]
    distractors = random.Random(SEED + 1).sample(rest, N_DISTRACTORS)
    passages = [passage_text(r.preferred_label, r.description) for r in wanted + distractors]
    doc = {
        "about": (
            "Held-out retrieval check of ESCO_BACKEND=auto (search.encoding.check): what a faster backend must keep. "
            f"Label queries: {N_QUERIES} ESCO alternative labels, label query i is relevant to passage i; the last "
            f"{N_DISTRACTORS} passages are distractors. Passages '<preferredLabel>: <description>' sampled (seed "
            f"{SEED}) from the ESCO v1.1.1 English release, none from the int8 calibration set (European Commission, "
            "ESCO; reused under the ESCO licence, https://esco.ec.europa.eu). Written by "
            "scripts/make_backend_check_set.py."
        ),
        "passages": passages,
        "queries": [{"text": q, "kind": "label", "relevant": [i]} for i, (q, _) in enumerate(pairs)],
    }
    write_json_atomic(OUT, doc)
    print(f"wrote {OUT}: {len(doc['queries'])} queries, {len(passages)} passages")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT.parent / "shared" / "esco" / "v1.1.1"))
