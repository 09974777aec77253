"""Entries as read from the source, checked once so every later stage can trust them."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from related.errors import SourceError

EntryId = int | str


@dataclass(frozen=True)
class Entry:
    id: EntryId
    title: str
    body: str
    tags: tuple[str, ...] = ()
    category: str | None = None
    updated_at: Any = None

    def content_hash(self) -> bytes:
        """SHA-256 of everything that can change the entry's terms (not its id, not
        updated_at)."""
        # Each field length-prefixed, so no two different entries frame the same bytes; no
        # JSON: escaping 6 KB of text cost twice the hashing (0.40 -> 0.15 s per 10k entries).
        digest = hashlib.sha256(len(self.tags).to_bytes(4, "little"))
        absent = self.category is None
        for text in (self.title, self.body, *self.tags, "" if absent else self.category):
            data = text.encode("utf-8", errors="surrogatepass")
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
        digest.update(b"\x00" if absent else b"\x01")  # None is not ""
        return digest.digest()


@dataclass(frozen=True)
class Entries:
    """The entries of one run, sorted by id (so "id ascending" is index order everywhere).

    ``id_type`` is the SQL type for id columns of the results table, as the database named it
    (``INTEGER``/``TEXT`` for SQLite; ``integer``, ``bigint``, ``text``, ``uuid``... for
    PostgreSQL), so results keep the source's id type.
    """

    items: tuple[Entry, ...]
    id_type: str

    def __len__(self) -> int:
        return len(self.items)

    @property
    def ids(self) -> list[EntryId]:
        return [entry.id for entry in self.items]

    @functools.cached_property
    def content_hashes(self) -> tuple[bytes, ...]:
        """``Entry.content_hash()`` of every entry, computed once (the run fingerprint and the
        token cache both need them; hashing 600 MB of text takes a second)."""
        return tuple(entry.content_hash() for entry in self.items)


def split_tags(value: Any, separator: str) -> tuple[str, ...]:
    """Tags arrive as one delimited string, an array, or NULL."""
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        parts: Iterable[Any] = value
    else:
        parts = str(value).split(separator)
    return tuple(str(p).strip() for p in parts if p is not None and str(p).strip())


def entries_from_rows(
    rows: Iterable[Sequence[Any]],
    *,
    columns: Sequence[str],
    id_type: str,
    tags_separator: str,
    source_name: str,
) -> Entries:
    """Build checked Entries from rows whose columns are named id, title, body[, tags]...

    Raises SourceError (exit 2) for what the user must fix in the source: no rows, NULL or
    duplicate ids, ids mixing integers and text. NULL titles and bodies become '' with a warning.
    """
    position = {name: i for i, name in enumerate(columns)}
    by_id: dict[Any, Entry] = {}
    for row in rows:
        entry_id = row[position["id"]]
        if entry_id is None:
            raise SourceError(
                f"{source_name}: an entry has a NULL id. Filter it out or fix the row."
            )
        if not isinstance(entry_id, int | str) or isinstance(entry_id, bool):
            entry_id = str(entry_id)  # uuid.UUID and friends: compared and written as text
        if entry_id in by_id:
            raise SourceError(
                f"{source_name}: duplicate entry id {entry_id!r}. Ids must be unique; if a custom "
                "source_query joins tags or categories, aggregate them (GROUP BY id)."
            )
        title = row[position["title"]]
        body = row[position["body"]]
        tags = row[position["tags"]] if "tags" in position else None
        category = row[position["category"]] if "category" in position else None
        by_id[entry_id] = Entry(
            id=entry_id,
            title=_as_text(title),
            body=_as_text(body),
            tags=split_tags(tags, tags_separator),
            category=_as_text(category) or None,
            updated_at=row[position["updated_at"]] if "updated_at" in position else None,
        )
    if not by_id:
        raise SourceError(
            f"{source_name} returned no entries. Check source_table / source_where / "
            "source_query; the previous results were left as they were."
        )
    kinds = {type(i) for i in by_id}
    if len(kinds) > 1:
        sample = {k.__name__: next(i for i in by_id if type(i) is k) for k in kinds}
        raise SourceError(
            f"{source_name}: entry ids mix integers and text (e.g. {sample}). Cast them to one "
            "type in source_query."
        )
    return Entries(items=tuple(by_id[i] for i in sorted(by_id)), id_type=id_type)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)
