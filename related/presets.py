"""Known blog schemas, so their users need no hand-written source_query.

Lokka (a Sinatra blog engine) keeps posts and pages in ``entries`` with a ``type`` column
('Post' / 'Page'), a boolean ``draft``, tags denormalised in ``frozen_tag_list`` (comma
separated) and a ``category_id`` into ``categories``. Its themes read related posts from
``similarities(entry_id, similar_entry_id, score)``: pair the preset with
``results_layout = "lokka"`` and ``results_table = "similarities"``.
"""

from __future__ import annotations

_LOKKA_SELECT = (
    "SELECT e.id AS id, e.title AS title, e.body AS body, e.frozen_tag_list AS tags, "
    "c.title AS category, e.updated_at AS updated_at "
    "FROM entries e LEFT JOIN categories c ON c.id = e.category_id "
)

PRESET_QUERIES: dict[str, dict[str, str]] = {
    "lokka": {
        "postgresql": _LOKKA_SELECT + "WHERE e.type = 'Post' AND e.draft IS NOT TRUE",
        # DataMapper stores SQLite booleans as 't'/'f'; older databases hold 0/1.
        "sqlite": _LOKKA_SELECT
        + "WHERE e.type = 'Post' AND (e.draft IS NULL OR e.draft IN (0, 'f', 'false'))",
    }
}


def preset_query(preset: str, dialect: str) -> str:
    return PRESET_QUERIES[preset][dialect]
