"""The token cache: a rerun tokenises only new and edited entries, and its results are exactly
those of a run without the cache, on real SQLite files and a real PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import sqlite3

import numpy as np
import psycopg
import pytest

from related.config import Settings, TokenizerSettings
from related.db import CachedTokens, connect
from related.entries import Entries, Entry
from related.token_cache import count_entries_cached, decode_counts, encode_counts
from related.tokenize import tokenize_entries
from related.vectorize import count_matrix
from tests.conftest import load_sample_into_postgres
from tests.corpus import synthetic_entries


def corpus(n: int = 60) -> Entries:
    return Entries(
        items=tuple(Entry(i, title, body) for i, title, body in synthetic_entries(n, seed=3)),
        id_type="INTEGER",
    )


def reference_counts(entries) -> tuple:
    """The count matrix built without the cache machinery: a Counter per entry, stacked."""
    return count_matrix(tokenize_entries(entries, TokenizerSettings()))


def assert_same_matrix(a, b) -> None:
    assert a.shape == b.shape
    assert np.array_equal(a.indptr, b.indptr)
    assert np.array_equal(a.indices, b.indices)
    assert np.array_equal(a.data, b.data)


@pytest.mark.parametrize("workers", [1, 2])
def test_counts_from_an_empty_cache_equal_counters_stacked(workers):
    entries = corpus()
    expected, terms = reference_counts(entries.items)
    found = count_entries_cached(
        entries.items, TokenizerSettings(), CachedTokens.empty(), workers=workers, chunk_size=7
    )
    assert found.terms == terms
    assert_same_matrix(found.matrix, expected)
    assert (found.hits, found.misses) == (0, len(entries))
    assert found.update.rewrite and len(found.update.new_rows) == len(entries)


def as_cache(update) -> CachedTokens:
    """What the database would hold after writing ``update`` to an empty cache."""
    return CachedTokens(
        terms=tuple(term for _, term in sorted(update.new_terms)),
        rows={key: (ids, counts) for key, ids, counts in update.new_rows},
    )


def test_cached_counts_with_edits_equal_a_fresh_count():
    entries = corpus()
    first = count_entries_cached(entries.items, TokenizerSettings(), CachedTokens.empty())
    items = list(entries.items)
    items[5] = dataclasses.replace(items[5], body=items[5].body + " 新しい段落：量子暗号と格子")
    items[9] = dataclasses.replace(items[9], title="まったく別の題名")
    del items[20]
    items.append(Entry(999, "追加された記事", "焙煎したコーヒー豆を挽いてドリップで淹れる。"))
    edited = Entries(items=tuple(items), id_type="INTEGER")

    second = count_entries_cached(edited.items, TokenizerSettings(), as_cache(first.update))
    expected, terms = reference_counts(edited.items)
    assert second.terms == terms
    assert_same_matrix(second.matrix, expected)
    assert (second.hits, second.misses) == (len(edited) - 3, 3)
    update = second.update
    assert not update.rewrite and len(update.new_rows) == 3 and len(update.stale_keys) == 3
    assert {term for _, term in update.new_terms} >= {"量子", "格子"}
    assert all(term_id >= len(first.update.new_terms) for term_id, _ in update.new_terms)


def test_tokenizer_settings_change_every_key():
    entries = corpus(20)
    first = count_entries_cached(entries.items, TokenizerSettings(), CachedTokens.empty())
    other = TokenizerSettings(stop_words=("設定",))
    second = count_entries_cached(entries.items, other, as_cache(first.update))
    assert second.hits == 0 and len(second.update.stale_keys) == len(entries)
    assert "設定" not in second.terms and "設定" in first.terms


def test_a_bloated_terms_table_is_rewritten():
    entries = corpus(20)
    first = count_entries_cached(entries.items, TokenizerSettings(), CachedTokens.empty())
    cache = as_cache(first.update)
    junk = tuple(f"古い語{i}" for i in range(20_000))
    bloated = CachedTokens(terms=cache.terms + junk, rows=cache.rows)
    again = count_entries_cached(entries.items, TokenizerSettings(), bloated)
    assert again.hits == len(entries) and again.update.rewrite
    assert [term for _, term in again.update.new_terms] == again.terms
    assert_same_matrix(again.matrix, first.matrix)


def test_rows_that_do_not_decode_are_tokenised_again():
    entries = corpus(10)
    first = count_entries_cached(entries.items, TokenizerSettings(), CachedTokens.empty())
    cache = as_cache(first.update)
    key = first.update.new_rows[4][0]
    ids, counts = cache.rows[key]
    damaged = CachedTokens(terms=cache.terms, rows={**cache.rows, key: (ids, counts[:-3])})
    again = count_entries_cached(entries.items, TokenizerSettings(), damaged)
    assert (again.hits, again.misses) == (9, 1)
    assert key in again.update.stale_keys and key in {r[0] for r in again.update.new_rows}
    assert_same_matrix(again.matrix, first.matrix)
    # A row pointing at a term id the terms table lacks: that entry is tokenised again.
    out_of_range = np.array([len(cache.terms) + 5], dtype="<i4").tobytes()
    broken = CachedTokens(
        terms=cache.terms, rows={**cache.rows, key: (out_of_range, np.ones(1, "<f4").tobytes())}
    )
    rebuilt = count_entries_cached(entries.items, TokenizerSettings(), broken)
    assert (rebuilt.hits, rebuilt.misses) == (9, 1) and key in rebuilt.update.stale_keys
    assert_same_matrix(rebuilt.matrix, first.matrix)


def test_released_entries_are_let_go_and_counted_the_same():
    entries = corpus(30)
    expected = count_entries_cached(entries.items, TokenizerSettings(), CachedTokens.empty())
    half = CachedTokens(
        terms=as_cache(expected.update).terms,
        rows=dict(list(as_cache(expected.update).rows.items())[::2]),
    )
    handed = list(entries.items)
    found = count_entries_cached(
        handed, TokenizerSettings(), half, release=True, workers=2, chunk_size=4
    )
    assert handed == [None] * len(entries)
    assert found.hits == 15 and found.misses == 15
    assert_same_matrix(found.matrix, expected.matrix)


def test_counts_are_stored_as_float32_only_when_exact():
    ids = np.array([3, 1, 2])
    whole = np.array([1.0, 3.0, 6.0])
    fractional = np.array([1.0, 0.1, 2.5])
    for counts, size in ((whole, 4), (fractional, 8)):
        ids_blob, counts_blob = encode_counts(ids, counts)
        assert len(counts_blob) == 3 * size
        decoded_ids, decoded = decode_counts(ids_blob, counts_blob, n_terms=4)
        assert decoded_ids.tolist() == [3, 1, 2] and np.array_equal(decoded, counts)
        assert decode_counts(ids_blob, counts_blob, n_terms=3) is None  # id 3 unknown
    negative = np.array([-1], dtype="<i4").tobytes()
    assert decode_counts(negative, np.ones(1, "<f4").tobytes(), n_terms=10) is None
    assert decode_counts(b"\x00" * 5, b"", n_terms=10) is None
    assert decode_counts(b"\x00" * 8, b"\x00" * 12, n_terms=10) is None


# -- end to end, through the CLI, on both databases ---------------------------------------------


def sqlite_sql(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(url[len("sqlite:///") :]) as conn:
        rows = conn.execute(statement.replace("%s", "?"), params).fetchall()
    conn.close()
    return rows


def pg_sql(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


RESULTS = "SELECT entry_id, related_entry_id, score, rank FROM {} ORDER BY 1, 4"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_reruns_tokenise_only_edits_and_match_a_run_without_cache(invoke, backend, request):
    if backend == "postgres":
        url = request.getfixturevalue("pg_url")
        load_sample_into_postgres(url)
        run_sql = pg_sql
        flags = ("--tags-column", "tags", "--source-where", "published")
    else:
        url = request.getfixturevalue("sample_sqlite")
        run_sql = sqlite_sql
        flags = ("--tags-column", "tags", "--source-where", "published = 1")

    def run(*extra: str) -> dict:
        result = invoke("run", "--database-url", url, *flags, "--format", "json", *extra)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    first = run()
    assert first["cache_hits"] == 0 and "cache_write" in first["seconds"]
    entries = first["entries"]
    # A row per entry and one per title (title_share, on by default, counts titles alone too).
    assert run_sql(url, "SELECT count(*) FROM related_token_cache") == [(2 * entries,)]

    run_sql(url, "UPDATE entries SET body = body || %s WHERE id = 2", (" 追記：焙煎と抽出",))
    run_sql(url, "UPDATE entries SET title = %s WHERE id = 5", ("題名だけ変えた",))
    run_sql(url, "DELETE FROM entries WHERE id = 7")
    second = run()
    assert second["entries"] == entries - 1
    assert second["cache_hits"] == entries - 3  # 2 edited, 1 deleted
    assert run_sql(url, "SELECT count(*) FROM related_token_cache") == [(2 * (entries - 1),)]
    cached_results = run_sql(url, RESULTS.format("related_entries"))

    # The same entries without the cache, into another table: exactly the same rows.
    plain = run("--no-token-cache", "--results-table", "plain_results")
    assert plain["cache_hits"] == 0 and "cache_read" not in plain["seconds"]
    assert run_sql(url, RESULTS.format("plain_results")) == cached_results

    unchanged = run("--force")
    assert unchanged["cache_hits"] == entries - 1 and "cache_write" not in unchanged["seconds"]
    assert unchanged["write"]["updated"] == 0 and unchanged["write"]["inserted"] == 0
    text = invoke("run", "--database-url", url, *flags, "--force").stdout
    assert f"token cache: terms of {entries - 1} entries reused, 0 tokenised" in text


def test_dry_run_reads_the_cache_but_writes_nothing(invoke, sample_sqlite):
    result = invoke("run", "--database-url", sample_sqlite, "--dry-run", "--format", "json")
    assert json.loads(result.stdout)["cache_hits"] == 0
    tables = {r[0] for r in sqlite_sql(sample_sqlite, "SELECT name FROM sqlite_master")}
    assert not any(name.startswith("related_token_cache") for name in tables)
    assert invoke("run", "--database-url", sample_sqlite).exit_code == 0
    again = invoke("run", "--database-url", sample_sqlite, "--dry-run", "--format", "json")
    report = json.loads(again.stdout)
    assert report["cache_hits"] == report["entries"] > 0


def test_a_cache_that_cannot_be_written_costs_a_warning_not_the_run(invoke, sample_sqlite):
    # An unknown schema: SQLite refuses both reading and creating the cache tables.
    result = invoke(
        "run", "--database-url", sample_sqlite, "--token-cache-table", "nowhere.token_cache"
    )
    assert result.exit_code == 0, result.output
    assert "token cache 'nowhere.token_cache'" in result.stderr
    assert "The run goes on" in result.stderr
    assert sqlite_sql(sample_sqlite, "SELECT count(*) FROM related_entries")[0][0] > 0


def test_library_settings_switch_the_cache_off(sample_sqlite):
    from related.pipeline import run_job

    settings = Settings(database_url=sample_sqlite)
    off = dataclasses.replace(settings, run=dataclasses.replace(settings.run, token_cache=False))
    report = run_job(off)
    assert report.cache_hits == 0 and "cache_write" not in report.seconds
    with connect(sample_sqlite) as db:
        assert db.read_token_cache("related_token_cache") is None


def test_eval_and_explain_read_the_cache_and_agree_with_the_run(invoke, sample_sqlite, tmp_path):
    flags = ("--database-url", sample_sqlite, "--source-where", "published = 1")
    assert invoke("run", *flags).exit_code == 0
    (a, b, score, _), *_ = sqlite_sql(
        sample_sqlite, "SELECT entry_id, related_entry_id, score, rank FROM related_entries"
    )
    rows_before = sqlite_sql(sample_sqlite, "SELECT count(*) FROM related_token_cache")
    explained = json.loads(invoke("explain", str(a), str(b), *flags, "--format", "json").stdout)
    assert abs(explained["score"] - score) < 1e-12
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps({str(a): [b]}), encoding="utf-8")
    stored = invoke("eval", "--truth", str(truth), *flags, "--format", "json")
    fresh = invoke("eval", "--truth", str(truth), *flags, "--dry-run", "--format", "json")
    assert json.loads(stored.stdout) == json.loads(fresh.stdout)
    # Both only read it.
    assert sqlite_sql(sample_sqlite, "SELECT count(*) FROM related_token_cache") == rows_before


def test_without_an_update_nothing_is_encoded_and_the_counts_are_the_same():
    entries = corpus(20)
    expected, terms = reference_counts(entries.items)
    found = count_entries_cached(
        entries.items, TokenizerSettings(), CachedTokens.empty(), want_update=False
    )
    assert found.terms == terms and found.update.empty
    assert_same_matrix(found.matrix, expected)


def test_content_hash_tells_apart_every_field_and_ignores_id_and_updated_at():
    entry = Entry(1, "タイトル", "本文", ("tag",), None)
    others = [
        Entry(1, "タイトル", "本文", ("tag",), ""),  # no category vs an empty one
        Entry(1, "タイトル本文", "", ("tag",), None),  # text moved between fields
        Entry(1, "タイトル", "本文tag", (), None),
        Entry(1, "タイトル", "本文", ("tag", ""), None),
        Entry(1, "タイトル", "本文", ("ta", "g"), None),
        Entry(1, "タイトル", "本文", (), "tag"),
        Entry(1, "タイトル", "本文\ud800", ("tag",), None),  # a lone surrogate hashes too
    ]
    hashes = {entry.content_hash(), *(other.content_hash() for other in others)}
    assert len(hashes) == 1 + len(others)
    same = Entry(2, "タイトル", "本文", ("tag",), None, updated_at="2026-01-01")
    assert same.content_hash() == entry.content_hash()
