import math

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfTransformer

from related.config import VectorSettings
from related.errors import SourceError
from related.vectorize import build_tfidf, count_matrix, tfidf_from_counts


def test_hand_computed_example():
    # Three entries; "a" in all three, "b" in two, "c" in one.
    counts = [{"a": 1, "b": 2}, {"a": 1, "c": 1}, {"a": 3, "b": 1}]
    tfidf = build_tfidf(counts, VectorSettings(sublinear_tf=False))
    assert tfidf.terms == ("a", "b", "c")
    n = 3
    idf = {t: math.log((1 + n) / (1 + df)) + 1 for t, df in {"a": 3, "b": 2, "c": 1}.items()}
    raw = np.array([1 * idf["a"], 2 * idf["b"], 0.0])
    expected_row0 = raw / np.linalg.norm(raw)
    assert np.allclose(tfidf.matrix.toarray()[0], expected_row0)
    assert idf["a"] == pytest.approx(1.0)
    assert np.allclose(tfidf.idf, [idf["a"], idf["b"], idf["c"]])
    assert np.allclose(sp.linalg.norm(tfidf.matrix, axis=1), 1.0)


def test_sublinear_tf_uses_one_plus_log_count():
    tfidf = build_tfidf([{"x": 8.0, "y": 1.0}, {"y": 1.0}], VectorSettings(sublinear_tf=True))
    row = tfidf.matrix.toarray()[0]
    idf_x, idf_y = math.log(3 / 2) + 1, 1.0
    expected = np.array([(1 + math.log(8)) * idf_x, 1 * idf_y])
    assert np.allclose(row, expected / np.linalg.norm(expected))


@pytest.mark.parametrize("sublinear", [False, True])
def test_equals_scikit_learn_reference_on_random_counts(sublinear):
    rng = np.random.default_rng(7)
    dense = rng.integers(0, 4, size=(60, 40)) * (rng.random((60, 40)) < 0.2)
    counts = [{f"t{j:02d}": int(v) for j, v in enumerate(row) if v} for row in dense]
    ours = build_tfidf(counts, VectorSettings(sublinear_tf=sublinear))
    reference = TfidfTransformer(smooth_idf=True, sublinear_tf=sublinear, norm="l2")
    used = [j for j in range(40) if dense[:, j].any()]
    expected = reference.fit_transform(sp.csr_matrix(dense[:, used].astype(float)))
    assert ours.terms == tuple(f"t{j:02d}" for j in used)
    assert np.allclose(ours.matrix.toarray(), expected.toarray())


def test_min_df_and_max_df_prune_columns():
    counts = [{"common": 1, "rare": 1}, {"common": 1, "pair": 1}, {"common": 1, "pair": 1}]
    assert build_tfidf(counts, VectorSettings(min_df=2)).terms == ("common", "pair")
    assert build_tfidf(counts, VectorSettings(max_df=0.7)).terms == ("pair", "rare")


def test_nothing_left_after_pruning_is_a_clear_error():
    with pytest.raises(SourceError, match="No terms remain after pruning.*Lower min_df"):
        build_tfidf([{"a": 1}, {"b": 1}], VectorSettings(min_df=2))


def test_entries_without_terms_keep_zero_rows_and_input_is_untouched():
    counts_matrix, terms = count_matrix([{}, {"a": 2}, {}])
    before = counts_matrix.copy()
    tfidf = tfidf_from_counts(counts_matrix, terms, VectorSettings())
    assert tfidf.matrix.getnnz(axis=1).tolist() == [0, 1, 0]
    assert (counts_matrix != before).nnz == 0
