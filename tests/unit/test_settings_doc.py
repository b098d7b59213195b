"""docs/settings.md is generated from the settings classes: a setting without its line fails here."""

from __future__ import annotations

from scripts import make_settings_doc


def test_settings_doc_is_current() -> None:
    assert make_settings_doc.DOC.read_text(encoding="utf-8") == make_settings_doc.render(), (
        "docs/settings.md is out of date: run python -m scripts.make_settings_doc"
    )


def test_every_setting_has_a_line_and_a_meaning() -> None:
    text = make_settings_doc.render()
    for _title, cls, parent in make_settings_doc._classes():
        prefix = cls.model_config.get("env_prefix", "")
        for name, field in cls.model_fields.items():
            if parent is not None and name in parent.model_fields:
                continue
            assert f"`{prefix}{name.upper()}`" in text
            assert field.description, f"{cls.__name__}.{name} has no description for docs/settings.md"
