"""Write docs/settings.md from the settings classes themselves (names, defaults, descriptions).

    python -m scripts.make_settings_doc          # rewrite docs/settings.md
    python -m scripts.make_settings_doc --check  # exit 1 when docs/settings.md is out of date

tests/unit/test_settings_doc.py runs the check, so a setting cannot be added without its line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "settings.md"


def _classes():
    from ingest.settings import IngestSettings
    from search.http.settings import ServiceSettings
    from search.settings import SearchSettings

    return [
        ("Search and shared (`search`, `esco-search`, and the worker)", SearchSettings, None),
        ("Worker only (`esco-ingest`)", IngestSettings, SearchSettings),
        ("HTTP service (`esco-search serve`)", ServiceSettings, None),
    ]


def _default(field) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    else:
        value = field.default
    if value is None or value == ():
        return "–"
    if hasattr(value, "get_secret_value"):
        return "(secret)"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    return f"`{value}`"


def render() -> str:
    out = [
        "# Settings",
        "",
        "Environment variables (a `.env` file in the working directory is read too). Generated from the settings",
        "classes by `python -m scripts.make_settings_doc`; do not edit by hand.",
        "",
    ]
    for title, cls, parent in _classes():
        prefix = cls.model_config.get("env_prefix", "")
        out += [f"## {title}", "", "| variable | default | meaning |", "|---|---|---|"]
        for name, field in cls.model_fields.items():
            if parent is not None and name in parent.model_fields:
                continue
            desc = (field.description or "").replace("|", "\\|").replace("\n", " ")
            out.append(f"| `{prefix}{name.upper()}` | {_default(field)} | {desc} |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when docs/settings.md is out of date")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        if not DOC.exists() or DOC.read_text(encoding="utf-8") != text:
            print(f"{DOC} is out of date: run python -m scripts.make_settings_doc", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
