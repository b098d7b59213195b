"""``esco-ingest``: ingest an ESCO release; ``esco-ingest list`` and ``esco-ingest rollback`` manage releases.

Usage::

    esco-ingest --release ../shared/esco/v1.1.1 --language en --language de [--limit N] [--esco-version v1.1.1]
    esco-ingest list
    esco-ingest rollback [--to COLLECTION]

Settings come from ``ESCO_*`` environment variables and ``.env`` (see the README).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from search.errors import SearchError

logger = logging.getLogger("ingest")

EXIT_USER_ERROR = 2


def _settings_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err.get("loc", ()))
        name = f"ESCO_{loc.upper()}" if loc else "settings"
        parts.append(f"{name}: {err.get('msg')}")
    return "invalid settings: " + "; ".join(parts)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="esco-ingest",
        description="Ingest an official ESCO CSV release into Qdrant (a new versioned collection behind an alias).",
        epilog="Subcommands: `esco-ingest list` shows the collections; `esco-ingest rollback [--to NAME]` "
        "serves the previous one. Settings: ESCO_* environment variables (README).",
    )
    p.add_argument("--release", nargs="+", required=True, metavar="PATH",
                   help="the release's zips and/or folders (v1.1.x: classification + relations zips; v1.2.x: one zip)")
    p.add_argument("--language", action="append", metavar="CODE",
                   help="ESCO language code, repeatable (default: en)")
    p.add_argument("--esco-version", help="the release's version when its file names do not carry it, e.g. v1.2.0")
    p.add_argument("--limit", type=int, help="only the first N skills per language (a quick trial)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar, warnings only")
    p.add_argument("--no-occupations", action="store_true",
                   help="skip the occupations collection (ESCO_OCCUPATION_COLLECTION), written after the skills by default")
    return p


def _print_summary(s: dict) -> None:
    print(f"collection   {s['collection']}  (alias {s['alias']!r} now serves it)")
    print(f"ESCO         {s['esco_version']}  languages {', '.join(s['languages'])}")
    for lang in s["languages"]:
        print(f"  {lang}: {s['skills_read'][lang]} skills read, {s['points_written'][lang]} points written")
    print(f"passages     {s['encoded']} encoded, {s['reused']} vectors reused, {s['resumed_points']} already written "
          f"(resume), {s['truncated_passages']} truncated to the model's limit")
    if len(s.get("representations") or []) > 1:
        print(f"vectors      {', '.join(s['representations'])}; label rows of {s['labels_encoded']} skills encoded, "
              f"{s['labels_reused']} reused")
    print(f"vs previous  unchanged {s['unchanged']}, changed {s['changed']}, new {s['new']}, removed {s['removed']}"
          f"  (previous: {s['previous_collection'] or '-'})")
    enc = s.get("encoder") or {}
    if enc:
        how = "chosen by ESCO_BACKEND=auto: measured here, checked against fp32" if enc.get("backend_choice") else "as set"
        print(f"encoder      {enc['model']}  {enc.get('backend')} {enc.get('precision')}  ({how})")
        summary = (enc.get("backend_choice") or {}).get("summary")
        if summary:
            print(f"backend      {summary}")
    sec = s["seconds"]
    print("seconds      " + ", ".join(f"{k} {v:.1f}" for k, v in sec.items()))
    if s["pruned"]:
        print(f"pruned       {', '.join(s['pruned'])}")
    warnings = (s.get("read_stats") or {}).get("warnings") or []
    for w in warnings[:20]:
        print(f"warning      {w}")
    o = s.get("occupations")
    if o:
        print(f"occupations  {o['collection']} (alias {o['alias']!r}): {o['points']} points, {o['encoded']} encoded, "
              f"{o['reused']} reused; unchanged {o['unchanged']}, changed {o['changed']}, new {o['new']}, "
              f"removed {o['removed']}")


def _manage(argv: Sequence[str]) -> int:
    from ingest.collections import list_collections, rollback
    from ingest.settings import IngestSettings
    from search.stores import open_store

    p = argparse.ArgumentParser(prog=f"esco-ingest {argv[0]}")
    if argv[0] == "rollback":
        p.add_argument("--to", help="the collection to serve (default: the previous complete one)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv[1:])
    settings = IngestSettings()
    store = open_store(settings)
    try:
        if argv[0] == "list":
            rows = list_collections(store)
            if args.json:
                print(json.dumps(rows, indent=2))
            elif not rows:
                print(f"no collections in {store.describe()}")
            else:
                for r in rows:
                    mark = f"<- {r['served_by']}" if r["served_by"] else ""
                    print(f"{r['collection']:<70} {r['status']:<9} {r['esco_version'] or '?':<8} "
                          f"{','.join(r['languages'] or []):<10} {r['points']:>7} pts  {r['model']}  {mark}")
        else:
            old, new = rollback(store, settings.collection, args.to, lock_folder=settings.lock_folder,
                                stale_seconds=settings.lock_stale_seconds)
            print(f"alias {settings.collection!r}: {old} -> {new}")
    finally:
        store.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``esco-ingest``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    quiet = "--quiet" in argv
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "sentence_transformers", "transformers", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if argv and argv[0] in ("list", "rollback"):
            return _manage(argv)
        args = _parser().parse_args(argv)
        from tqdm.contrib.logging import logging_redirect_tqdm

        from ingest.build import run
        from ingest.settings import IngestSettings

        from search.cli.common import quiet_model_loading

        from ingest.space import sigbus_message

        from ingest.occupations import run_occupations

        from search.encoding import SharedEncoder

        settings = IngestSettings()
        languages = args.language or ["en"]
        quiet_model_loading()
        encoder = SharedEncoder(settings)  # one model load for the skills and the occupations
        # The skills, then the occupations (their own alias). A full disk under a memory-mapped write of
        # the embedded store: one line, not a bare "Bus error".
        with logging_redirect_tqdm(), sigbus_message(settings.store_path):
            summary = run(settings, args.release, languages, esco_version=args.esco_version, limit=args.limit,
                          encoder=encoder, progress=not quiet and not args.json)  # type: ignore[arg-type]
            occ = None if args.no_occupations else run_occupations(
                settings, args.release, languages, esco_version=args.esco_version, encoder=encoder)  # type: ignore[arg-type]
        out = summary.to_dict()
        if occ is not None:
            out["occupations"] = occ.to_dict()
        if args.json:
            print(json.dumps(out, indent=2))
        else:
            _print_summary(out)
        return 0
    except SearchError as exc:
        print(f"esco-ingest: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except ValidationError as exc:
        print(f"esco-ingest: error: {_settings_error(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("esco-ingest: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except OSError as exc:  # disk full, permission denied, ...: nothing served changed; rerun resumes
        print(f"esco-ingest: error: {exc.strerror or exc} ({exc.filename or type(exc).__name__}); the alias "
              f"still serves the previous collection; fix the cause and run the same command again to resume",
              file=sys.stderr)
        return EXIT_USER_ERROR
