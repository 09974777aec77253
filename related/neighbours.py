"""Top-k cosine neighbours from an L2-normalised CSR matrix, in row blocks.

Rows are L2-normalised, so cosine similarity is the dot product. Scores are computed one block
of rows at a time, never as a dense N x N matrix; a block has at most ``block_cells`` cells.

Ranking rules, in this order, in every mode:
  * an entry is never its own neighbour (excluded by index, even if a duplicate scores 1.0);
  * scores must be > 0 and >= min_score;
  * order is score descending, ties broken by neighbour index ascending (entries are sorted
    by id, so this is id ascending) - the same result on every run and every machine.

Every reported score is exact: ``X[i] @ X[j]`` in float64, the same number scipy's
``(X @ X.T)[i, j]`` gives, clipped to 1.0. The modes differ in how candidates are found.

``exact``: all pairs. The few common terms (in more than ``DENSE_SHARE`` of the entries) do
almost all of the multiply-adds of a sparse product, so they are multiplied as a dense float32
block by BLAS, and the rare ones as a sparse product added to it. One block of rows is in
flight at a time: the threads share its sparse product and candidate scoring, BLAS uses every
core for its dense product, and memory stays at one block whatever the number of threads.
From these approximate scores, every neighbour that could reach a row's top k is kept (see
``_float32_margin``), and only those candidates are scored exactly and ranked. The result
equals ranking the full float64 product; tests compare it with a dense reference.

``pruned``: candidates come from each entry's ``strong_terms`` heaviest terms found in at most
``max_df`` of the entries (a sparse product of those terms only, never an N-wide row per
entry); each entry's ``candidates`` best candidates by that partial score are scored exactly
on all terms and ranked. It skips the common terms' quadratic cost, so it can
miss a neighbour that shares only common terms (recall@10 against ``exact`` is measured in
bench/). Entries left with fewer than top_k candidates are searched exactly.

A matrix with negative weights (not TF-IDF) takes a plain float64 sparse product in both modes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import blas

DEFAULT_BLOCK_CELLS = 20_000_000
# Exact mode holds one float32 block of approximate scores, whatever the number of threads:
# BLAS streams the whole dense part once per block, so it runs faster on taller blocks (measured
# in bench/README.md), up to this many cells, which bounds the block's memory. The threads share
# a block in parts of a few rows.
EXACT_BLOCK_ROWS = 512
EXACT_BLOCK_CELLS = 25_600_000
EXACT_PART_ROWS = 32
# Pruned mode: cells of one float32 block of partial scores (16 MB), per worker thread.
PRUNED_BLOCK_CELLS = 4_000_000
# Candidate pairs scored exactly at a time, from at most PAIR_SOURCES source rows: ~10 MB of
# gathered target rows at 200 terms per row, and a few MB of the sources' dense rows.
PAIR_CHUNK = 4096
PAIR_SOURCES = 64
MODES = ("exact", "pruned")

# Terms in more than this share of entries are multiplied densely in exact mode. Dense costs
# n^2 per term, sparse about df^2 at a far higher cost per multiply-add (scipy's product spends
# it on building its output), so the cut is a few percent of n. bench/, at 100k entries: 3% and
# 5% equally fast (226 / 240 s), but 5%'s dense copy is 130 MB smaller (745 terms, not 1,072);
# at 10k 3% is ~20% faster, a fraction of a second.
DENSE_SHARE = 0.05
# Lower bound of a row's k-th best approximate score: the k-th largest of the maxima of
# disjoint column groups (each maximum is a different cell, so k of them are >= the bound).
_BOUND_GROUPS = 64


@dataclass(frozen=True)
class Pruning:
    """How ``pruned`` mode finds candidates (defaults: recall@10 >= 0.98 in bench/)."""

    max_df: float = 0.01  # ignore terms in more than this share of entries for candidates,
    min_ceiling: int = 200  # ... or in more than this many, whichever is larger: on small
    # corpora a share alone leaves too few terms (manpages-ja, 924 entries, at 2%: 18) and the
    # search is cheap anyway; from 20,000 entries on the share decides. The candidate search
    # costs about the sum of the kept terms' df squared, so the ceiling sets its cost: at 100k
    # entries (bench/) 1% costs 0.37 of 2% for recall@10 0.9965 instead of 0.9974; 0.5% costs
    # 0.13 but recall falls to 0.992, and to 0.80 without the title vector (2%: 0.91).
    strong_terms: int = 60  # per entry, the heaviest remaining terms used for candidates
    candidates: int = 50  # per entry, candidates scored exactly (at least top_k)


@dataclass(frozen=True)
class Neighbours:
    """Pairs as parallel arrays of row indices into the matrix; ``rank`` counts from 1."""

    source: np.ndarray  # int64
    target: np.ndarray  # int64
    score: np.ndarray  # float64
    rank: np.ndarray  # int16

    def __len__(self) -> int:
        return len(self.source)


def top_k_neighbours(
    matrix: sp.csr_matrix,
    *,
    top_k: int,
    min_score: float = 0.0,
    block_cells: int = DEFAULT_BLOCK_CELLS,
    on_rows: Callable[[int], None] | None = None,
    mode: str = "exact",
    pruning: Pruning | None = None,
    workers: int = 1,
) -> Neighbours:
    """Each row's ``top_k`` most similar other rows. ``on_rows(n)`` reports progress.

    ``workers`` threads work on blocks side by side (0: one per CPU core); the result does not
    depend on it.
    """
    if mode not in MODES:
        raise ValueError(f"Unknown neighbour mode {mode!r}. Use one of: {', '.join(MODES)}.")
    if workers < 0:
        raise ValueError(f"workers must be >= 0 (0 = one per CPU core), not {workers}.")
    pruning = pruning or Pruning()
    if pruning.candidates < 1 or pruning.strong_terms < 1 or not 0 < pruning.max_df <= 1:
        raise ValueError(f"Invalid pruning settings: {pruning}.")
    matrix = sp.csr_matrix(matrix, dtype=np.float64)
    if not matrix.has_canonical_format:
        # Sorted, unique column indices: exact scores then sum terms in column order.
        matrix = matrix.copy()
        matrix.sum_duplicates()
    n = matrix.shape[0]
    if n == 0 or top_k < 1 or matrix.nnz == 0:
        empty = np.zeros(0, dtype=np.int64)
        if on_rows is not None and n:
            on_rows(n)
        return Neighbours(empty, empty.copy(), np.zeros(0), np.zeros(0, dtype=np.int16))
    search = _Search(
        matrix,
        top_k=top_k,
        min_score=min_score,
        block_cells=block_cells,
        workers=workers or _cpus(),
    )
    if mode == "pruned" and matrix.data.min() >= 0:
        parts = list(search.pruned(pruning, on_rows))
    else:
        parts = list(search.exact(np.arange(n), on_rows))
    source, target, score = (np.concatenate(p) for p in zip(*parts, strict=True))
    return _ranked(source, target, score, top_k=top_k)


class _Search:
    """One matrix, the blocks it is cut into, and the exact scoring of candidate pairs."""

    def __init__(
        self,
        matrix: sp.csr_matrix,
        *,
        top_k: int,
        min_score: float,
        block_cells: int,
        workers: int,
    ):
        self.matrix, self.top_k, self.min_score = matrix, top_k, min_score
        self.n = matrix.shape[0]
        self.block_rows = max(1, min(self.n, block_cells // self.n))
        self.exact_rows = max(
            1, min(self.block_rows, EXACT_BLOCK_ROWS, EXACT_BLOCK_CELLS // self.n)
        )
        self.pruned_rows = max(1, min(self.block_rows, PRUNED_BLOCK_CELLS // self.n))
        self.workers = workers
        self.df = np.bincount(matrix.indices, minlength=matrix.shape[1])

    def _map_blocks(
        self,
        work: Callable[[np.ndarray], tuple],
        rows: np.ndarray,
        size: int,
        on_rows: Callable[[int], None] | None,
    ) -> Iterator[tuple]:
        """``work(block)`` for each block of ``rows``, in ``workers`` threads, results in order.

        Threads are enough: BLAS, scipy's sparse kernels and numpy release the GIL.
        """
        blocks = list(_blocks(rows, size))
        with _thread_map(self.workers if len(blocks) > 1 else 1) as run:
            for block, result in zip(blocks, run(work, blocks), strict=True):
                yield result
                if on_rows is not None:
                    on_rows(len(block))

    # -- exact ---------------------------------------------------------------------------------

    def exact(
        self, rows: np.ndarray, on_rows: Callable[[int], None] | None
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Exact top-k candidates of ``rows``, one block at a time."""
        if self.matrix.data.min() < 0:
            yield from self._exact_sparse(rows, on_rows)  # the float32 bound needs scores >= 0
            return
        matrix, n = self.matrix, self.n
        is_dense = self.df > DENSE_SHARE * n
        is_rare = ~is_dense
        dense, rare_t = _split_columns(matrix, is_dense)
        margin = _float32_margin(matrix, dense.shape[1])
        # A score > 0 means two rows share a term, in float32 as in float64 (sums of products
        # of non-negative weights), so the floor never lets a zero through.
        tiny = np.finfo(np.float32).tiny
        buffer = np.empty((self.exact_rows, n), dtype=np.float32)  # the one block in flight

        def rare_scores(part: tuple[np.ndarray, np.ndarray]) -> None:
            approx, sources = part
            # The sources' rare columns are cut out again per part rather than kept from
            # _split_columns: a little time instead of memory the memory goal has no margin
            # for (both measured in bench/README.md).
            (_float32_columns(matrix[sources], is_rare) @ rare_t).toarray(out=approx)

        def candidates(part: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, ...]:
            approx, sources = part
            approx[np.arange(len(sources)), sources] = -np.inf
            floor = np.maximum(_kth_lower_bound(approx, self.top_k), self.min_score) - margin
            hit_rows, targets = np.nonzero(approx >= np.maximum(floor, tiny)[:, None])
            return self._scored(sources[hit_rows], targets)

        with _thread_map(self.workers) as run:
            for block in _blocks(rows, self.exact_rows):
                approx = buffer[: len(block)]
                # Parts of a few dozen rows: scipy's sparse product runs fastest on those, and
                # the threads share the work evenly.
                step = EXACT_PART_ROWS
                parts = [
                    (approx[c : c + step], block[c : c + step]) for c in range(0, len(block), step)
                ]
                list(run(rare_scores, parts))
                if dense.shape[1]:
                    # approx += dense[block] @ dense.T, in place: BLAS sees the C-ordered block
                    # as its Fortran-ordered transpose; it uses every core itself.
                    out = blas.sgemm(
                        1.0, dense.T, dense[block].T, trans_a=1, beta=1.0, c=approx.T, overwrite_c=1
                    )
                    if not np.shares_memory(out, approx):  # BLAS made a copy after all
                        approx[...] = out.T
                found = list(run(candidates, parts))
                yield tuple(np.concatenate(p) for p in zip(*found, strict=True))
                if on_rows is not None:
                    on_rows(len(block))

    def _exact_sparse(
        self, rows: np.ndarray, on_rows: Callable[[int], None] | None
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Any sign of data: the float64 sparse product of each block, ranked vectorised."""
        if len(rows) <= self.block_rows:
            # One block (pruned mode's few leftover rows): every row times the block's rows
            # is one pass over the matrix, cheaper than transposing it (bench/README.md). The
            # same products summed in the same column order: bit for bit equal.
            def product_of(block: np.ndarray) -> sp.coo_matrix:
                return (self.matrix @ self.matrix[block].T).T.tocoo()
        else:
            transposed = self.matrix.T.tocsr()

            def product_of(block: np.ndarray) -> sp.coo_matrix:
                return (self.matrix[block] @ transposed).tocoo()

        def work(block: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            product = product_of(block)
            source = block[product.row].astype(np.int64)
            keep = (product.col != source) & (product.data > 0) & (product.data >= self.min_score)
            source, target, score = source[keep], product.col[keep], product.data[keep]
            order = np.lexsort((target, -score, source))
            best = order[_rank_within(source[order]) < self.top_k]
            return source[best], target[best].astype(np.int64), score[best]

        yield from self._map_blocks(work, rows, self.block_rows, on_rows)

    # -- pruned --------------------------------------------------------------------------------

    def pruned(
        self, pruning: Pruning, on_rows: Callable[[int], None] | None
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        strong = _strong_terms(self.matrix, self.df, pruning, self.n)
        strong_t = strong.T.tocsr()
        per_row = max(pruning.candidates, self.top_k)

        def candidates(block: np.ndarray) -> tuple[np.ndarray, ...]:
            b = len(block)
            # Sparse, not a dense b x n block: at a low df ceiling most cells are zero, and
            # every pass over n columns per row would cost more than the product itself.
            partial = strong[block] @ strong_t
            rows = _value_rows(partial)
            # An entry is not its own candidate. Its best per_row + 1 hold its per_row best
            # others whether or not they hold itself, so itself is dropped from those few
            # rather than looked for among all of the product's values (a gather and a
            # compare per value).
            chosen = _best_per_row(partial.indptr, rows, partial.indices, partial.data, per_row + 1)
            chosen = chosen[partial.indices[chosen] != block[rows[chosen]]]
            chosen = chosen[_rank_within(rows[chosen]) < per_row]
            short = block[np.bincount(rows[chosen], minlength=b) < self.top_k]
            # Every candidate pair is held until all are scored: 32-bit rows halve that.
            index = np.int32 if self.n < 2**31 else np.int64
            return block[rows[chosen]].astype(index), partial.indices[chosen].astype(index), short

        everything = np.arange(self.n)
        # The progress bar counts rows: finding candidates takes ~40% of the time (bench/, 100k
        # entries), scoring them the rest, so each phase moves its share of the bar.
        first = self.n * 2 // 5
        found = self._map_blocks(
            candidates, everything, self.pruned_rows, _phase_progress(on_rows, self.n, first)
        )
        source, target, short = (np.concatenate(p) for p in zip(*found, strict=True))
        # Sources ascend. Similar entries tend to find each other (i -> j and j -> i: ~40% of
        # the pairs at 100k), and X @ X.T is symmetric bit for bit (the same products summed
        # in the same column order), so each unordered pair is scored once.
        key = np.minimum(source, target).astype(np.int64) * self.n + np.maximum(source, target)
        pairs, of_pair = np.unique(key, return_inverse=True)
        del key
        low, high = pairs // self.n, pairs % self.n
        del pairs

        def scored(block: np.ndarray) -> tuple[np.ndarray]:
            part = _rows_in(low, block)
            return (self._raw_scores(low[part], high[part]),)

        scores = self._map_blocks(
            scored, everything, self.pruned_rows, _phase_progress(on_rows, self.n, self.n - first)
        )
        score = np.concatenate([s for (s,) in scores])[of_pair]
        keep = (score > 0) & (score >= self.min_score)
        source, target, score = source[keep], target[keep], score[keep]

        def best(block: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            part = _rows_in(source, block)
            return _best_pairs(source[part], target[part], score[part], top_k=self.top_k)

        yield from self._map_blocks(best, everything, self.pruned_rows, None)
        if len(short):
            yield from self._exact_sparse(short, None)

    # -- shared --------------------------------------------------------------------------------

    def _scored(
        self, source: np.ndarray, target: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact float64 scores of candidate pairs, filtered by > 0 and min_score."""
        source, target = source.astype(np.int64), target.astype(np.int64)
        score = self._raw_scores(source, target)
        keep = (score > 0) & (score >= self.min_score)
        return source[keep], target[keep], score[keep]

    def _raw_scores(self, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        score = np.empty(len(source))
        for part in _pair_chunks(source):
            score[part] = pair_scores(self.matrix, source[part], target[part])
        return score


def pair_scores(matrix: sp.csr_matrix, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``matrix[s] @ matrix[t]`` for each pair, in float64, bit for bit scipy's (X @ X.T)[s, t].

    ``matrix`` must be canonical (sorted, unique column indices). The sources' rows are made
    dense on the columns they use (plus one zero column for every other term); each target row
    is then one row of a sparse matrix whose column numbers point into its source's dense row,
    so a single sparse matrix-vector product gathers, multiplies and sums every pair in C. Each
    pair's products are summed in the target row's column order starting from 0, as scipy's
    product sums them in column order; products with the zero column add exact zeros.
    """
    sources, local = np.unique(source, return_inverse=True)
    rows = matrix[sources]
    columns = np.unique(rows.indices)
    width = len(columns) + 1
    # Cell numbers in 32 bits where they fit: the passes over the gathered target rows are
    # memory-bound, and 32-bit cells made scoring ~15% faster at 100k entries.
    cell = np.int32 if len(sources) * width < 2**31 else np.int64
    # Local column of every term: 1.. for the sources' terms, 0 (always zero) for the rest.
    lookup = np.zeros(matrix.shape[1], dtype=cell)
    lookup[columns] = np.arange(1, width, dtype=cell)
    dense = np.zeros((len(sources), width))
    dense[_value_rows(rows), lookup[rows.indices]] = rows.data
    targets = matrix[target]
    cells = lookup[targets.indices]
    cells += np.repeat(local.astype(cell) * cell(width), np.diff(targets.indptr))
    gathered = sp.csr_matrix((targets.data, cells, targets.indptr), shape=(len(target), dense.size))
    return gathered @ dense.ravel()


def _pair_chunks(source: np.ndarray) -> Iterator[np.ndarray]:
    """Positions of the pairs, grouped by source, at most PAIR_SOURCES sources and PAIR_CHUNK
    pairs at a time: the sources' dense rows and the gathered target rows stay small."""
    order = np.argsort(source, kind="stable")
    ordered = source[order]
    first_of_source = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    cuts = np.union1d(first_of_source[::PAIR_SOURCES], np.arange(0, len(source), PAIR_CHUNK))
    for start, stop in zip(cuts, np.r_[cuts[1:], len(source)], strict=True):
        yield order[start:stop]


def _split_columns(matrix: sp.csr_matrix, is_dense: np.ndarray) -> tuple[np.ndarray, sp.csr_matrix]:
    """float32 copies: the ``is_dense`` columns as a dense array (in column order), and the
    transpose of the others as CSR (terms x rows; the dense terms' rows left empty)."""
    dense = np.zeros((matrix.shape[0], int(is_dense.sum())), dtype=np.float32)
    dense_column = np.cumsum(is_dense) - 1
    is_rare = ~is_dense
    rare_parts, start = [], 0
    # Small chunks: their index temporaries (~40 bytes per nonzero) would otherwise be this
    # function's peak, above the dense copy, at 10k entries.
    for part in _row_chunks(matrix, 1024):
        rows = _value_rows(part)
        in_dense = is_dense[part.indices]
        block = dense[start : start + part.shape[0]]
        block[rows[in_dense], dense_column[part.indices[in_dense]]] = part.data[in_dense]
        rare_parts.append(_float32_columns(part, is_rare))
        start += part.shape[0]
    rare = sp.vstack(rare_parts, format="csr")
    del rare_parts
    return dense, rare.T.tocsr()


def _float32_columns(rows: sp.csr_matrix, keep: np.ndarray) -> sp.csr_matrix:
    """``rows`` in float32 with only the columns where ``keep`` is True (same shape)."""
    kept = keep[rows.indices]
    row_of = _value_rows(rows)
    return sp.csr_matrix(
        (
            rows.data[kept].astype(np.float32),
            rows.indices[kept],
            _indptr(row_of[kept], rows.shape[0]),
        ),
        shape=rows.shape,
    )


def _best_pairs(
    source: np.ndarray, target: np.ndarray, score: np.ndarray, *, top_k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each source's top_k pairs by score desc, target asc, sorted that way; duplicates out."""
    order = np.lexsort((target, -score, source))
    source, target, score = source[order], target[order], score[order]
    unique = np.ones(len(source), dtype=bool)
    unique[1:] = (source[1:] != source[:-1]) | (target[1:] != target[:-1])
    source, target, score = source[unique], target[unique], score[unique]
    keep = _rank_within(source) < top_k
    return source[keep], target[keep], score[keep]


def _ranked(source: np.ndarray, target: np.ndarray, score: np.ndarray, *, top_k: int) -> Neighbours:
    """Rank every source's pairs by score desc, target asc; keep top_k. Duplicates removed."""
    source, target, score = _best_pairs(source, target, score, top_k=top_k)
    return Neighbours(
        source=source.astype(np.int64),
        target=target.astype(np.int64),
        # Rounding can put identical entries a hair above 1.0; cosine never is.
        score=np.minimum(score, 1.0),
        rank=(_rank_within(source) + 1).astype(np.int16),
    )


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _rank_within(sorted_source: np.ndarray) -> np.ndarray:
    """0-based position of each element within its run of equal (sorted) sources."""
    return np.arange(len(sorted_source)) - np.searchsorted(sorted_source, sorted_source)


def _blocks(rows: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _rows_in(sorted_rows: np.ndarray, block: np.ndarray) -> slice:
    """The slice of ascending ``sorted_rows`` that falls in the contiguous ``block`` of rows."""
    # Bounds in the array's own dtype: otherwise numpy converts the whole array per call.
    bounds = np.array([block[0], block[-1] + 1], dtype=sorted_rows.dtype)
    return slice(*np.searchsorted(sorted_rows, bounds))


def _best_per_row(
    indptr: np.ndarray, rows: np.ndarray, columns: np.ndarray, values: np.ndarray, k: int
) -> np.ndarray:
    """Positions of each CSR row's ``k`` largest values > 0 (ties: smaller column first), row
    by row; ``rows`` is the row of each value. A row's values are cut into groups first; the
    k-th largest group maximum is at most the row's k-th largest value, so only values above
    it are sorted."""
    counts = np.diff(indptr)
    groups = _bound_groups(k)
    floor = np.zeros(len(counts), dtype=values.dtype)
    big = np.flatnonzero(counts >= groups)  # every group of such a row is non-empty
    if len(big):
        # Group starts plus the row's end, so no group runs into the next row's values.
        bounds = (np.arange(groups + 1) * counts[big][:, None]) // groups + indptr[big][:, None]
        padded = np.append(values, values.dtype.type(0))  # the last end may be len(values)
        maxima = np.maximum.reduceat(padded, bounds.ravel()).reshape(len(big), groups + 1)
        floor[big] = _kth_largest(maxima[:, :groups], k)
    # One comparison: a floor of at least the smallest positive value also keeps zeros out.
    np.maximum(floor, np.nextafter(values.dtype.type(0), values.dtype.type(1)), out=floor)
    above = np.flatnonzero(values >= floor[rows])
    order = np.lexsort((columns[above], -values[above], rows[above]))
    return above[order[_rank_within(rows[above][order]) < k]]


def _kth_lower_bound(approx: np.ndarray, k: int) -> np.ndarray:
    """Per row, a value at most the row's k-th largest (-inf or 0 when it can't tell)."""
    b, n = approx.shape
    groups = _bound_groups(k)
    if n < groups:
        return np.zeros(b, dtype=approx.dtype)
    # Groups of consecutive columns, each non-empty; reduceat reads the block in place.
    return _kth_largest(np.maximum.reduceat(approx, (np.arange(groups) * n) // groups, axis=1), k)


def _bound_groups(k: int) -> int:
    """Column groups per row for the k-th-best lower bounds: enough that k of them hold
    a row's best values."""
    return max(_BOUND_GROUPS, 4 * k)


def _kth_largest(maxima: np.ndarray, k: int) -> np.ndarray:
    """Per row, the k-th largest of disjoint groups' maxima: each is a different cell, so k
    cells are at least this, and it is at most the row's k-th largest value."""
    groups = maxima.shape[1]
    return np.partition(maxima, groups - k, axis=1)[:, groups - k]


def _float32_margin(matrix: sp.csr_matrix, dense_terms: int) -> float:
    """Twice the worst error of a float32 score, so no true top-k neighbour is cut.

    A score sums at most m = dense_terms + longest row products of rows with L2 norm 1;
    rounding inputs, products and sums in float32 errs by at most (m + 2) * 2**-24 (Higham's
    bound, first order). The approximate k-th score and each candidate's can each be off by
    that much, hence twice.
    """
    longest = int(np.diff(matrix.indptr).max())
    return 2.0 * (dense_terms + longest + 2) * 2.0**-24


def _strong_terms(matrix: sp.csr_matrix, df: np.ndarray, pruning: Pruning, n: int) -> sp.csr_matrix:
    """Each row's ``strong_terms`` heaviest terms with 2 <= df <= the df ceiling, float32."""
    usable = (df >= 2) & (df <= max(pruning.min_ceiling, pruning.max_df * n))
    parts = []
    for part in _row_chunks(matrix):
        rows = _value_rows(part)
        ok = usable[part.indices] & (part.data != 0)
        rows, columns, weights = rows[ok], part.indices[ok], part.data[ok]
        order = np.lexsort((columns, -weights, rows))
        best = np.sort(order[_rank_within(rows[order]) < pruning.strong_terms])
        parts.append(
            sp.csr_matrix(
                (
                    weights[best].astype(np.float32),
                    columns[best],
                    _indptr(rows[best], part.shape[0]),
                ),
                shape=part.shape,
            )
        )
    return sp.vstack(parts, format="csr")


def _row_chunks(matrix: sp.csr_matrix, size: int = 8192) -> Iterator[sp.csr_matrix]:
    """Row slices, so per-nonzero temporaries stay small at any corpus size."""
    for start in range(0, matrix.shape[0], size):
        yield matrix[start : start + size]


def _value_rows(matrix: sp.csr_matrix) -> np.ndarray:
    """The row of each stored value of a CSR matrix (int32: half the memory of int64)."""
    return np.repeat(np.arange(matrix.shape[0], dtype=np.int32), np.diff(matrix.indptr))


def _indptr(rows: np.ndarray, n: int) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])


def _phase_progress(
    on_rows: Callable[[int], None] | None, total: int, width: int
) -> Callable[[int], None] | None:
    """Rows done in a phase of ``total`` rows, reported as the same share of ``width`` rows of
    the progress bar: a phase that ends has reported exactly ``width``."""
    if on_rows is None:
        return None
    done = 0

    def advance(rows: int) -> None:
        nonlocal done
        before = width * done // total
        done += rows
        if moved := width * done // total - before:
            on_rows(moved)

    return advance


@contextmanager
def _thread_map(workers: int) -> Iterator[Callable]:
    """``map`` over ``workers`` threads (plain ``map`` for one), results in order."""
    if workers <= 1:
        yield map
        return
    pool = ThreadPoolExecutor(workers)
    try:
        yield pool.map
    finally:
        pool.shutdown(cancel_futures=True)
