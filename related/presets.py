"""Known blog schemas, so their users need no hand-written source_query.

Lokka (a Sinatra blog engine) keeps posts and pages in ``entries`` with a ``type`` column
('Post' / 'Page'), a boolean ``draft``, tags denormalised in ``frozen_tag_list`` (comma
separated) and a ``category_id`` into ``categories``. Its themes read related posts from
``similarities(entry_id, similar_entry_id, score)``: pair the preset with
``results_layout = "lokka"`` and ``results_table = "similarities"``.

WordPress keeps posts in ``wp_posts`` (published posts: ``post_status = 'publish'`` and
``post_type = 'post'``), and tags and categories as terms: ``wp_terms`` (the name),
``wp_term_taxonomy`` (``post_tag`` or ``category``) and ``wp_term_relationships`` (which
post has which). ``table_prefix`` replaces ``wp_``. Results go to ``related_entries``.
"""

from __future__ import annotations

from related.config import validate_table_prefix

_LOKKA_SELECT = (
    "SELECT e.id AS id, e.title AS title, e.body AS body, e.frozen_tag_list AS tags, "
    "c.title AS category, e.updated_at AS updated_at "
    "FROM entries e LEFT JOIN categories c ON c.id = e.category_id "
)
_LOKKA = {
    "postgresql": _LOKKA_SELECT + "WHERE e.type = 'Post' AND e.draft IS NOT TRUE",
    # DataMapper stores SQLite booleans as 't'/'f'; older databases hold 0/1.
    "sqlite": _LOKKA_SELECT
    + "WHERE e.type = 'Post' AND (e.draft IS NULL OR e.draft IN (0, 'f', 'false'))",
    # MySQL: DataMapper's booleans are TINYINT(1).
    "mysql": _LOKKA_SELECT + "WHERE e.type = 'Post' AND (e.draft IS NULL OR e.draft = 0)",
}

# Each post's term names of one taxonomy, comma separated, sorted by name. (SQLite's
# group_concat takes ORDER BY only from 3.44 on: there, the order it reads them in.)
_JOIN_TERMS = {
    "postgresql": "string_agg(t.name, ',' ORDER BY t.name)",
    "sqlite": "group_concat(t.name, ',')",
    "mysql": "GROUP_CONCAT(t.name ORDER BY t.name SEPARATOR ',')",
}


def _wordpress(backend: str, prefix: str) -> str:
    def terms_of(taxonomy: str) -> str:
        return (
            f"(SELECT {_JOIN_TERMS[backend]} FROM {prefix}term_relationships r "
            f"JOIN {prefix}term_taxonomy x ON x.term_taxonomy_id = r.term_taxonomy_id "
            f"JOIN {prefix}terms t ON t.term_id = x.term_id "
            f"WHERE r.object_id = p.ID AND x.taxonomy = '{taxonomy}')"
        )

    return (
        f"SELECT p.ID AS id, p.post_title AS title, p.post_content AS body, "
        f"{terms_of('post_tag')} AS tags, {terms_of('category')} AS category, "
        f"p.post_modified_gmt AS updated_at FROM {prefix}posts p "
        "WHERE p.post_status = 'publish' AND p.post_type = 'post'"
    )


PRESETS = ("lokka", "wordpress")


def preset_query(preset: str, backend: str, table_prefix: str = "wp_") -> str:
    """The SELECT of ``preset`` for ``backend`` ('sqlite', 'postgresql' or 'mysql')."""
    if preset == "lokka":
        return _LOKKA[backend]
    return _wordpress(backend, validate_table_prefix(table_prefix))
