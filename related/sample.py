"""The sample corpus shipped in the package, and the SQLite database `related demo` builds."""

from __future__ import annotations

import json
import sqlite3
from importlib import resources
from pathlib import Path
from typing import Any

from related.config import SourceSettings

# The demo reads what a typical blog schema offers: tags as a comma-separated string and a
# "published" flag. (The category column is there too, but left out so the text decides.)
SAMPLE_SOURCE = SourceSettings(tags_column="tags", source_where="published = 1")


def sample_entries() -> list[dict[str, Any]]:
    text = resources.files("related").joinpath("data/sample_entries.json").read_text("utf-8")
    return json.loads(text)


def create_sample_database(path: Path) -> int:
    """(Re)create the ``entries`` table at ``path`` with the sample corpus; return its size.

    Only the ``entries`` table is replaced; results from an earlier demo stay until the job
    rewrites them, like on a real blog.
    """
    entries = sample_entries()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE IF EXISTS entries")
        conn.execute(
            "CREATE TABLE entries (id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT NOT NULL,"
            " tags TEXT, category TEXT, published INTEGER NOT NULL DEFAULT 1, updated_at TEXT)"
        )
        conn.executemany(
            "INSERT INTO entries VALUES (:id, :title, :body, :tags, :category, :published, "
            ":updated_at)",
            [{**e, "published": int(e["published"])} for e in entries],
        )
    conn.close()
    return len(entries)
