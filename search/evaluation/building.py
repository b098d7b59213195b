"""Labelled sets built from ESCO itself: an alternative label of each sampled skill as the query."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

from search.evaluation.labelled import LabelIndex, LabelledQuery, LabelledSet, LabelledSetError, fold_label
from search.stores import Store

logger = logging.getLogger(__name__)

__all__ = ["build_labelled_set", "write_labelled_jsonl"]


def build_labelled_set(
    store: Store,
    collection: str,
    n: int = 500,
    seed: int = 0,
    language: str | None = None,
    *,
    index: LabelIndex | None = None,
) -> LabelledSet:
    """A labelled set made from ESCO itself: an alternative label of each sampled skill as the query.

    For ``n`` skills sampled (with ``seed``) among those with a usable alternative label in ``language``
    (default: ``en`` when indexed, else the collection's first language), one alternative label is the
    query and the skill's concept URI the only relevant answer. An alternative label is usable when it
    differs from the skill's preferred label (ignoring case) and names no other skill (as a preferred or
    alternative label): such a query would have several right answers.

    Raises:
        LabelledSetError: the language is not in the collection, or no skill has a usable label.
    """
    idx = index or LabelIndex.from_store(store, collection)
    langs = sorted({r[1] for r in idx.records})
    if language is None:
        language = "en" if "en" in langs else (langs[0] if langs else "en")
    if language not in langs:
        raise LabelledSetError(
            f"language {language!r} is not in collection {collection!r} (it holds {', '.join(langs) or 'nothing'})"
        )
    # Which concepts each folded label names, over the chosen language.
    names: dict[str, set[str]] = {}
    for uri, lang, pref, alts in idx.records:
        if lang != language:
            continue
        for lab in (pref, *alts):
            if lab.strip():
                names.setdefault(fold_label(lab), set()).add(uri)
    candidates: list[tuple[str, str, list[str]]] = []
    ambiguous = 0
    for uri, lang, pref, alts in sorted(r for r in idx.records if r[1] == language):
        usable = []
        for a in dict.fromkeys(a.strip() for a in alts if a.strip()):
            if fold_label(a) == fold_label(pref):
                continue
            if names.get(fold_label(a), set()) != {uri}:
                ambiguous += 1
                continue
            usable.append(a)
        if usable:
            candidates.append((uri, pref, sorted(usable)))
    if not candidates:
        raise LabelledSetError(f"no skill of collection {collection!r} in {language!r} has a usable alternative label")
    rng = random.Random(seed)
    if n >= len(candidates):
        if n > len(candidates):
            logger.warning("only %d skills have a usable alternative label; the set has %d queries, not %d",
                           len(candidates), len(candidates), n)
        chosen = list(candidates)
    else:
        chosen = rng.sample(candidates, n)
    queries = []
    for i, (uri, pref, usable) in enumerate(chosen, start=1):
        queries.append(LabelledQuery(rng.choice(usable), frozenset({uri}), i))
    skills_in_lang = len({r[0] for r in idx.records if r[1] == language})
    return LabelledSet(
        name=f"esco-alt-labels-{language}-n{len(queries)}-seed{seed}",
        queries=queries,
        source=f"collection {collection!r}, alternative labels in {language!r}",
        info={"language": language, "seed": seed, "skills": skills_in_lang,
              "skills_with_usable_alt_label": len(candidates), "alt_labels_skipped_as_ambiguous": ambiguous,
              "preferred_labels": {q.line: c[1] for q, c in zip(queries, chosen)}},
    )


def write_labelled_jsonl(labelled: LabelledSet, path: str | Path) -> Path:
    """Write a labelled set as JSONL (``{"query", "relevant", ...}``), readable by :func:`load_labelled`."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    prefs = labelled.info.get("preferred_labels", {})
    with out.open("w", encoding="utf-8") as f:
        for q in labelled.queries:
            obj: dict[str, Any] = {"query": q.query, "relevant": sorted(q.relevant)}
            if q.line in prefs:
                obj["preferred_label"] = prefs[q.line]
            f.write(json.dumps(obj, ensure_ascii=False) + "\n")
    return out
