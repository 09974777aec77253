"""Top-k cosine neighbours from an L2-normalised CSR matrix, in row blocks.

Rows are L2-normalised, so cosine similarity is the dot product. The product ``X @ X.T`` is
computed one block of rows at a time (never a dense N x N matrix); the block height is chosen
so a block has at most ``block_cells`` candidate cells, which bounds memory at any corpus size.

Ranking rules, in this order:
  * an entry is never its own neighbour (excluded by index, even if a duplicate scores 1.0);
  * scores must be > 0 and >= min_score;
  * order is score descending, ties broken by neighbour index ascending (entries are sorted
    by id, so this is id ascending) - the same result on every run and every machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

DEFAULT_BLOCK_CELLS = 20_000_000


@dataclass(frozen=True)
class Neighbours:
    """Pairs as parallel arrays of row indices into the matrix; ``rank`` counts from 1."""

    source: np.ndarray  # int64
    target: np.ndarray  # int64
    score: np.ndarray  # float64
    rank: np.ndarray  # int16

    def __len__(self) -> int:
        return len(self.source)


def top_k_of_row(
    candidates: np.ndarray, scores: np.ndarray, *, top_k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``top_k`` best (candidate, score) by score desc then candidate asc. Pure function."""
    if len(scores) > top_k:
        # argpartition finds the k-th best score; everything at least that good competes, so
        # ties at the boundary are settled by the sort below, not by argpartition's whim.
        threshold = np.partition(scores, len(scores) - top_k)[len(scores) - top_k]
        competing = scores >= threshold
        candidates, scores = candidates[competing], scores[competing]
    order = np.lexsort((candidates, -scores))[:top_k]
    return candidates[order], scores[order]


def top_k_neighbours(
    matrix: sp.csr_matrix,
    *,
    top_k: int,
    min_score: float = 0.0,
    block_cells: int = DEFAULT_BLOCK_CELLS,
    on_rows: Callable[[int], None] | None = None,
) -> Neighbours:
    """Each row's ``top_k`` most similar other rows. ``on_rows(n)`` reports progress."""
    n = matrix.shape[0]
    if n == 0 or top_k < 1:
        empty = np.zeros(0, dtype=np.int64)
        return Neighbours(empty, empty.copy(), np.zeros(0), np.zeros(0, dtype=np.int16))
    transposed = matrix.T.tocsr()
    block_rows = max(1, min(n, block_cells // max(n, 1)))

    sources, targets, scores, ranks = [], [], [], []
    for start in range(0, n, block_rows):
        stop = min(n, start + block_rows)
        block = (matrix[start:stop] @ transposed).tocsr()
        for offset in range(stop - start):
            row = start + offset
            lo, hi = block.indptr[offset], block.indptr[offset + 1]
            candidates, values = block.indices[lo:hi], block.data[lo:hi]
            keep = (candidates != row) & (values > 0) & (values >= min_score)
            best, best_scores = top_k_of_row(candidates[keep], values[keep], top_k=top_k)
            sources.append(np.full(len(best), row, dtype=np.int64))
            targets.append(best.astype(np.int64))
            # Rounding can put identical entries a hair above 1.0; cosine never is.
            scores.append(np.minimum(best_scores, 1.0))
            ranks.append(np.arange(1, len(best) + 1, dtype=np.int16))
        if on_rows is not None:
            on_rows(stop - start)
    return Neighbours(
        source=np.concatenate(sources),
        target=np.concatenate(targets),
        score=np.concatenate(scores),
        rank=np.concatenate(ranks),
    )
