"""Writes search/backend_check_set.py: the held-out retrieval check that ESCO_BACKEND=auto runs once per model.

ESCO alternative labels (unambiguous, unlike the preferred label) as queries, each relevant to its own skill's
passage, among the passages of other skills; none of these skills is in the int8 calibration set
(search/backend_calibration.py), so the check is out of sample. Run once from the repository root:

    python scripts/make_backend_check_set.py ../shared/esco/v1.1.1
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_quality import labelled_set  # noqa: E402
from ingest.esco_csv import read_release  # noqa: E402
from search.backend_calibration import CALIBRATION_TEXTS  # noqa: E402
from search.schema import passage_text  # noqa: E402

N_QUERIES, N_DISTRACTORS, SEED = 200, 200, 2027


def main(release: str) -> None:
    records = read_release([release], ["en"]).skills["en"]
    calibrated = {t.removeprefix("passage: ") for t in CALIBRATION_TEXTS}
    records = [r for r in records if passage_text(r.preferred_label, r.description) not in calibrated]
    pairs = labelled_set(records, N_QUERIES, SEED)
    by_uri = {r.concept_uri: r for r in records}
    wanted = [by_uri[uri] for _, uri in pairs]
    rest = [r for r in records if r.concept_uri not in {u for _, u in pairs}]
    distractors = random.Random(SEED + 1).sample(rest, N_DISTRACTORS)
    passages = [passage_text(r.preferred_label, r.description) for r in wanted + distractors]
    lines = [
        '"""Held-out retrieval check of ESCO_BACKEND=auto (search.backends.check_quality): what a faster backend',
        "must keep.",
        "",
        f"{N_QUERIES} ESCO alternative labels (queries) and the passages of {N_QUERIES + N_DISTRACTORS} skills"
        f" (``<preferredLabel>: <description>``): query i",
        f"is relevant to passage i; the last {N_DISTRACTORS} passages are distractors. Sampled (seed {SEED}) from"
        " the ESCO v1.1.1",
        "English release, none from the int8 calibration set (European Commission, ESCO; reused under the ESCO",
        "licence, https://esco.ec.europa.eu). Written by scripts/make_backend_check_set.py.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        '__all__ = ["CHECK_PASSAGES", "CHECK_QUERIES"]',
        "",
        "CHECK_QUERIES: tuple[str, ...] = (",
        *(f"    {q!r}," for q, _ in pairs),
        ")",
        "",
        "CHECK_PASSAGES: tuple[str, ...] = (",
        *(f"    {p!r}," for p in passages),
        ")",
        "",
    ]
    out = ROOT / "search" / "backend_check_set.py"
    out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {out}: {len(pairs)} queries, {len(passages)} passages")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT.parent / "shared" / "esco" / "v1.1.1"))
