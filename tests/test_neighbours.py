import numpy as np
import pytest
import scipy.sparse as sp

from related.neighbours import top_k_neighbours, top_k_of_row
from related.vectorize import l2_normalise_rows


def brute_force(matrix: sp.csr_matrix, top_k: int, min_score: float = 0.0):
    """Reference: dense cosine matrix and a full sort by (score desc, index asc)."""
    dense = (matrix @ matrix.T).toarray()
    expected = []
    for i, row in enumerate(dense):
        pairs = [(-s, j) for j, s in enumerate(row) if j != i and s > 0 and s >= min_score]
        for rank, (neg, j) in enumerate(sorted(pairs)[:top_k], start=1):
            expected.append((i, j, -neg, rank))
    return expected


def as_tuples(result):
    return list(
        zip(
            result.source.tolist(),
            result.target.tolist(),
            result.score.tolist(),
            result.rank.tolist(),
            strict=True,
        )
    )


def random_tfidf(seed: int, n: int = 150, terms: int = 80, density: float = 0.05):
    rng = np.random.default_rng(seed)
    matrix = sp.random(n, terms, density=density, format="csr", random_state=rng)
    l2_normalise_rows(matrix)
    return matrix


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("block_cells", [1, 1_000, 20_000_000])
def test_matches_brute_force_on_random_data(seed, block_cells):
    matrix = random_tfidf(seed)
    result = as_tuples(top_k_neighbours(matrix, top_k=5, block_cells=block_cells))
    expected = brute_force(matrix, 5)
    assert [r[:2] + r[3:] for r in result] == [e[:2] + e[3:] for e in expected]
    assert np.allclose([r[2] for r in result], [min(e[2], 1.0) for e in expected])


def test_min_score_filters_and_k_larger_than_corpus():
    matrix = random_tfidf(3, n=30)
    result = as_tuples(top_k_neighbours(matrix, top_k=100, min_score=0.2))
    expected = brute_force(matrix, 100, min_score=0.2)
    assert [r[:2] for r in result] == [e[:2] for e in expected]
    assert all(r[2] >= 0.2 for r in result)


def test_self_excluded_even_for_identical_entries_and_ties_by_index():
    # rows 0, 1, 2 identical; row 3 unrelated. Ties among equal scores go to the lower index.
    matrix = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=float))
    l2_normalise_rows(matrix)
    result = as_tuples(top_k_neighbours(matrix, top_k=1))
    assert [(s, t, r) for s, t, _, r in result] == [(0, 1, 1), (1, 0, 1), (2, 0, 1)]
    assert all(score <= 1.0 for _, _, score, _ in result)


def test_top_k_of_row_boundary_ties_are_deterministic():
    candidates = np.array([9, 3, 7, 1, 5])
    scores = np.array([0.5, 0.5, 0.9, 0.5, 0.5])
    best, best_scores = top_k_of_row(candidates, scores, top_k=3)
    assert best.tolist() == [7, 1, 3]
    assert best_scores.tolist() == [0.9, 0.5, 0.5]


def test_empty_inputs():
    assert len(top_k_neighbours(sp.csr_matrix((0, 0)), top_k=5)) == 0
    zero_rows = sp.csr_matrix((4, 3))
    assert len(top_k_neighbours(zero_rows, top_k=5)) == 0


def test_progress_callback_counts_every_row():
    seen = []
    top_k_neighbours(random_tfidf(4, n=50), top_k=3, block_cells=500, on_rows=seen.append)
    assert sum(seen) == 50 and len(seen) == 5
