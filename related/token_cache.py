"""Token cache: each entry's term counts kept in the database, so a rerun tokenises only the
entries that are new or edited.

Tokenising is most of a run (MeCab reads every character), while an edit touches a few
entries. The cache sits between entries and the TF-IDF matrix:

    entries -> keys -> (cached counts | tokenise the misses) -> count matrix -> TF-IDF ...

A row is keyed by a hash of the entry's content (title, body, tags, category) AND of
everything that decides its terms: the tokenizer settings, related's version, and the
MeCab and unidic-lite versions. Change any of them and every key changes, so a stale row
can never be used, only ignored and later deleted. Entry ids are not part of the key: two
entries with the same content share a row, and a renumbered entry is still a hit.

It lives in two tables next to the results (``token_cache_table`` and the same name with
``_terms``), not in a file: the database is the one thing every place this job runs (a CI
runner that starts empty, a container without a volume, a laptop) already shares. Rows hold
term ids (int32) and counts (float32 when that is exact, else float64) as little-endian
blobs, about 1.5 KB per 6 KB entry; the terms table maps ids to strings once. Loading 100k
cached entries is then a few array operations instead of 19 million Python strings.

The matrix built from cached rows is the one built without the cache (same sorted columns, same
values: ``vectorize.count_matrix`` of the per-entry Counters), so results equal a run without
the cache exactly; tests check that.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata

import numpy as np
import scipy.sparse as sp

from related import __version__
from related.config import TokenizerSettings
from related.db import CachedTokens, TokenCacheUpdate
from related.entries import Entry
from related.memory import return_free_memory
from related.tokenize import WORKER_CHUNK, packed_count_chunks, user_dictionary_digest

log = logging.getLogger("related")

_IDS = np.dtype("<i4")
_COUNTS_EXACT = (np.dtype("<f4"), np.dtype("<f8"))

# The terms table is append-only between rewrites; once it holds this many times the terms the
# current entries use (edits and deletions leave old terms behind), the next write renumbers
# everything from the current entries alone.
_REWRITE_WHEN_TERMS_EXCEED = 2.0
_REWRITE_MIN_TERMS = 10_000
# With ``release``, freed text is handed back to the OS every this many chunks of entries
# (~13,000 entries; one malloc_trim takes milliseconds).
_TRIM_EVERY_CHUNKS = 200


@dataclass(frozen=True)
class CachedCounts:
    """The count matrix (rows in entry order, columns = sorted terms), how many entries came
    from the cache, and the update that brings the cache up to date with these entries."""

    matrix: sp.csr_matrix
    terms: list[str]
    update: TokenCacheUpdate
    tokenised: frozenset[int] = frozenset()  # rows that were not in the cache

    @property
    def misses(self) -> int:
        return len(self.tokenised)

    @property
    def hits(self) -> int:
        return self.matrix.shape[0] - self.misses


def tokenizer_key(settings: TokenizerSettings) -> bytes:
    """Everything besides an entry's content that decides its terms."""
    relevant = {
        "settings": dataclasses.asdict(settings),
        "user_dictionary": user_dictionary_digest(settings),
        "related": __version__,
        "mecab-python3": _version("mecab-python3"),
        "unidic-lite": _version("unidic-lite"),
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).digest()


def entry_keys(content_hashes: Sequence[bytes], settings: TokenizerSettings) -> list[bytes]:
    salt = tokenizer_key(settings)
    return [
        hashlib.blake2b(content, digest_size=16, key=salt).digest() for content in content_hashes
    ]


def encode_counts(term_ids: np.ndarray, counts: np.ndarray) -> tuple[bytes, bytes]:
    """One entry's row: term ids as int32, counts as float32 when that loses nothing."""
    as_float32 = counts.astype(_COUNTS_EXACT[0])
    exact = np.array_equal(as_float32, counts)
    return (
        term_ids.astype(_IDS).tobytes(),
        (as_float32 if exact else counts.astype(_COUNTS_EXACT[1])).tobytes(),
    )


def decode_counts(
    ids_blob: bytes, counts_blob: bytes, *, n_terms: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """The arrays of a row, or None if the blobs do not fit together or name a term id
    outside 0..n_terms-1 (a cache row is never trusted blindly)."""
    if len(ids_blob) % _IDS.itemsize:
        return None
    ids = np.frombuffer(ids_blob, _IDS)
    if ids.size and ids.view(np.uint32).max() >= n_terms:  # negative ids wrap around: caught
        return None
    for dtype in _COUNTS_EXACT:
        if len(counts_blob) == ids.size * dtype.itemsize:
            return ids, np.frombuffer(counts_blob, dtype)
    return None


def count_entries(
    entries: Sequence[Entry],
    settings: TokenizerSettings,
    *,
    workers: int = 1,
    on_entries: Callable[[int], None] | None = None,
    chunk_size: int = WORKER_CHUNK,
) -> tuple[sp.csr_matrix, list[str]]:
    """The count matrix of the entries (rows in the order given) and its sorted terms, without
    a token cache: ``count_entries_cached`` from an empty cache, keeping nothing to write."""
    found = count_entries_cached(
        entries,
        settings,
        CachedTokens.empty(),
        want_update=False,
        workers=workers,
        on_entries=on_entries,
        chunk_size=chunk_size,
    )
    return found.matrix, found.terms


def count_entries_cached(
    entries: Sequence[Entry] | list[Entry | None],
    settings: TokenizerSettings,
    cached: CachedTokens,
    *,
    content_hashes: Sequence[bytes] | None = None,
    release: bool = False,
    want_update: bool = True,
    workers: int = 1,
    on_entries: Callable[[int], None] | None = None,
    chunk_size: int = WORKER_CHUNK,
) -> CachedCounts:
    """The count matrix of ``entries``, tokenising only those whose key is not in ``cached``.

    Equal to ``vectorize.count_matrix(tokenize_entries(entries, settings))``, value for value.
    ``content_hashes`` (``Entry.content_hash()`` of each entry) saves hashing them again.
    ``release``: ``entries`` is a list handed over to this function, which replaces each entry
    by None as soon as its counts are known or it is on its way to a worker, so the text of
    all entries is never held next to all their counts (0.95 GB at 100k entries).
    ``want_update=False``: no cache will be written (token_cache = false), so none is built.
    """
    advance = on_entries or (lambda n: None)
    if content_hashes is None:
        content_hashes = [entry.content_hash() for entry in entries if entry is not None]
    keys = entry_keys(content_hashes, settings)
    term_id = {term: i for i, term in enumerate(cached.terms)}
    row_ids: list[np.ndarray] = [_NO_IDS] * len(keys)
    row_counts: list[np.ndarray] = [_NO_COUNTS] * len(keys)
    missing: dict[bytes, list[int]] = {}  # key -> rows with that content
    broken: set[bytes] = set()  # rows in the cache that do not decode: replaced
    for row, key in enumerate(keys):
        blob = cached.rows.get(key)
        decoded = decode_counts(*blob, n_terms=len(cached.terms)) if blob is not None else None
        if decoded is None:
            missing.setdefault(key, []).append(row)
            if blob is not None:
                broken.add(key)
        else:
            row_ids[row], row_counts[row] = decoded
            if release:
                entries[row] = None  # type: ignore[index]
    misses = sum(len(rows) for rows in missing.values())
    advance(len(keys) - misses)

    # An empty cache (first run, or one found damaged) is written whole from the matrix below;
    # encoding rows one by one as they are tokenised would only be thrown away.
    rewrite = not cached.terms
    new_terms: list[tuple[int, str]] = []
    new_rows: list[tuple[bytes, bytes, bytes]] = []
    to_tokenise = list(missing)  # one entry per distinct content, in order

    def pending() -> Iterator[Entry]:
        for key in to_tokenise:
            rows = missing[key]
            entry = entries[rows[0]]
            assert entry is not None
            if release:
                for row in rows:
                    entries[row] = None  # type: ignore[index]
            yield entry

    done = 0
    for chunk_terms, lengths, ids, values in packed_count_chunks(
        pending(), settings, count=len(to_tokenise), workers=workers, chunk_size=chunk_size
    ):
        # Loops in C (this process's time is taken from the workers'): new terms first, in
        # the chunk's order (its terms are distinct), then every term's id.
        for term in list(itertools.filterfalse(term_id.__contains__, chunk_terms)):
            term_id[term] = len(term_id)
            new_terms.append((term_id[term], term))
        # int32: a third of the memory
        to_cache_id = np.fromiter(map(term_id.__getitem__, chunk_terms), _IDS, len(chunk_terms))
        ends = np.cumsum(lengths)
        for j, end in enumerate(ends.tolist()):
            start = end - int(lengths[j])
            key = to_tokenise[done + j]
            entry_ids, entry_counts = to_cache_id[ids[start:end]], values[start:end]
            if not rewrite:
                new_rows.append((key, *encode_counts(entry_ids, entry_counts)))
            for row in missing[key]:
                row_ids[row], row_counts[row] = entry_ids, entry_counts
        done += len(lengths)
        advance(sum(len(missing[to_tokenise[i]]) for i in range(done - len(lengths), done)))
        if release and done // chunk_size % _TRIM_EVERY_CHUNKS == 0:
            return_free_memory()  # the text of the entries sent so far, before it piles up
    if release:
        return_free_memory()  # all the text, before the matrix below needs fresh pages

    all_terms = [*cached.terms, *(term for _, term in new_terms)]
    matrix, terms, used = _matrix_from_rows(row_ids, row_counts, all_terms)
    del row_ids, row_counts  # views into the cached blobs and tokeniser output: now copied
    current = set(keys)
    stale = [key for key in cached.rows if key not in current or key in broken]
    # Rewriting also clears whatever rows a damaged cache still had.
    bloated = len(all_terms) > max(_REWRITE_MIN_TERMS, _REWRITE_WHEN_TERMS_EXCEED * used)
    if not want_update:
        update = TokenCacheUpdate(new_terms=[], new_rows=[], stale_keys=[])
    elif rewrite or bloated:
        update = _rewrite(matrix, terms, keys)
    else:
        update = TokenCacheUpdate(new_terms=new_terms, new_rows=new_rows, stale_keys=stale)
    return CachedCounts(
        matrix=matrix,
        terms=terms,
        update=update,
        tokenised=frozenset(row for rows in missing.values() for row in rows),
    )


_NO_IDS = np.zeros(0, dtype=_IDS)
_NO_COUNTS = np.zeros(0, dtype=np.float64)


def _matrix_from_rows(
    row_ids: Sequence[np.ndarray], row_counts: Sequence[np.ndarray], terms_by_id: Sequence[str]
) -> tuple[sp.csr_matrix, list[str], int]:
    """CSR matrix with columns in sorted term order, as count_matrix builds it (every id
    already checked by decode_counts). Also returns the number of distinct terms used."""
    n_rows = len(row_ids)
    lengths = np.fromiter((len(a) for a in row_ids), dtype=np.int64, count=n_rows)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    # int32 ids and float64 counts, each concatenated once: at 100k entries (19M counts)
    # every extra int64 copy would cost 150 MB at the run's peak.
    ids = np.concatenate(row_ids, dtype=np.int32) if n_rows else np.zeros(0, np.int32)
    counts = np.concatenate(row_counts, dtype=np.float64) if n_rows else np.zeros(0, np.float64)
    used_ids = np.flatnonzero(np.bincount(ids, minlength=len(terms_by_id)))
    used_terms = [terms_by_id[i] for i in used_ids.tolist()]
    order = sorted(range(len(used_terms)), key=used_terms.__getitem__)
    column_of_id = np.full(len(terms_by_id), -1, dtype=np.int32)
    column_of_id[used_ids[order]] = np.arange(len(order), dtype=np.int32)
    np.take(column_of_id, ids, out=ids)  # in place: ids become column indices
    matrix = sp.csr_matrix((counts, ids, indptr), shape=(n_rows, len(order)), copy=False)
    matrix.sort_indices()
    return matrix, [used_terms[i] for i in order], len(used_terms)


def _rewrite(matrix: sp.csr_matrix, terms: list[str], keys: list[bytes]) -> TokenCacheUpdate:
    """The whole cache again from the current entries: term id = matrix column."""
    rows: dict[bytes, tuple[bytes, bytes, bytes]] = {}
    for row, key in enumerate(keys):
        if key not in rows:
            start, end = matrix.indptr[row], matrix.indptr[row + 1]
            rows[key] = (key, *encode_counts(matrix.indices[start:end], matrix.data[start:end]))
    return TokenCacheUpdate(
        new_terms=list(enumerate(terms)), new_rows=list(rows.values()), stale_keys=[], rewrite=True
    )


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"
