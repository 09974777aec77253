"""The job's own tables, declared once. Each dialect turns a logical kind into its type name
and a TableSpec into its CREATE TABLE; the store checks existing tables against the same
declarations."""

from __future__ import annotations

from dataclasses import dataclass

# Logical column kinds. "id" is the source's id type, whatever it is (integer, text, uuid...).
KINDS = ("id", "serial", "integer", "rank", "score", "text", "timestamp", "key", "blob")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    nullable: bool = False


@dataclass(frozen=True)
class TableSpec:
    """A table of the job's: its columns and primary key (a serial column is its own key)."""

    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


RUN_LOG = TableSpec(
    (
        Column("run_id", "serial"),
        Column("results_table", "text"),
        Column("started_at", "timestamp"),
        Column("finished_at", "timestamp", nullable=True),
        Column("status", "text"),
        *(
            Column(name, "integer", nullable=True)
            for name in (
                "entries",
                "pairs",
                "rows_inserted",
                "rows_updated",
                "rows_deleted",
                "rows_total",
            )
        ),
        *(
            Column(name, "text", nullable=True)
            for name in ("settings_fingerprint", "input_fingerprint", "version", "message")
        ),
    )
)

TOKEN_CACHE_ROWS = TableSpec(
    (Column("key", "key"), Column("term_ids", "blob"), Column("counts", "blob")),
    primary_key=("key",),
)
TOKEN_CACHE_TERMS = TableSpec(
    (Column("term_id", "integer"), Column("term", "text")), primary_key=("term_id",)
)

# Results are written to a private temporary table first, then published in one transaction.
STAGING_TABLE = "related_staging"
STAGING = TableSpec(
    (
        Column("entry_id", "id"),
        Column("related_id", "id"),
        Column("score", "score"),
        Column("rank", "rank"),
    ),
    primary_key=("entry_id", "related_id"),
)


def results_spec(related_column: str, has_rank: bool) -> TableSpec:
    """The results table: ours (entry_id, related_entry_id, score, rank) or Lokka's
    similarities (entry_id, similar_entry_id, score)."""
    columns = [Column("entry_id", "id"), Column(related_column, "id"), Column("score", "score")]
    if has_rank:
        columns.append(Column("rank", "rank"))
    return TableSpec(tuple(columns), primary_key=("entry_id", related_column))
