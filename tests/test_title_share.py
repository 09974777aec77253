"""title_share: the title as a separately normalised vector with a fixed weight."""

from __future__ import annotations

import json

import numpy as np

from related.config import VectorSettings
from related.vectorize import add_field_vectors, build_tfidf, count_matrix


def test_matches_the_formula_on_a_small_example():
    counts = [{"a": 3, "b": 1, "c": 2}, {"a": 1, "b": 4}, {"c": 1, "d": 2}]
    titles = [{"b": 1}, {"a": 2, "zzz": 5}, {}]  # zzz is not a column: ignored
    tfidf = build_tfidf(counts, VectorSettings())
    title_matrix, title_terms = count_matrix(titles)
    combined = add_field_vectors(tfidf, title_matrix, title_terms, share=0.3, sublinear_tf=True)

    x = tfidf.matrix.toarray()
    column = {t: i for i, t in enumerate(tfidf.terms)}
    expected = []
    for row, title in zip(x, titles, strict=True):
        field = np.zeros(len(column))
        for term, n in title.items():
            if term in column:
                field[column[term]] = (1 + np.log(n)) * tfidf.idf[column[term]]
        if field.any():
            field /= np.linalg.norm(field)
        mixed = row + 0.3 * field
        expected.append(mixed / np.linalg.norm(mixed))
    assert np.allclose(combined.matrix.toarray(), np.array(expected))
    assert np.allclose(np.linalg.norm(combined.matrix.toarray(), axis=1), 1.0)
    assert combined.terms == tfidf.terms
    assert np.array_equal(tfidf.matrix.toarray(), x)  # input untouched


def test_run_with_title_share_changes_scores_and_explain_still_adds_up(invoke, sample_sqlite):
    from conftest import sqlite_rows

    flags = ("--database-url", sample_sqlite, "--source-where", "published = 1")
    assert invoke("run", *flags, "--title-share", "0").exit_code == 0
    plain = {(a, b): s for a, b, s, _ in sqlite_rows(sample_sqlite)}
    result = invoke("run", *flags, "--title-share", "0.3", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["skipped"] is None  # a settings change is a change
    shared = {(a, b): s for a, b, s, _ in sqlite_rows(sample_sqlite)}
    assert shared != plain
    a, b = max((pair for pair in shared if pair[0] == 1), key=shared.get)
    explained = invoke(
        "explain", str(a), str(b), *flags, "--title-share", "0.3", "--format", "json"
    )
    assert abs(json.loads(explained.stdout)["score"] - shared[(a, b)]) < 1e-9
    bad = invoke("run", *flags, "--title-share", "-1")
    assert bad.exit_code == 2 and "title_share = -1.0 must be between 0 and 10" in bad.stderr


def test_row_range_shares_arrays_and_equals_slicing():
    import scipy.sparse as sp

    from related.pipeline import row_range

    matrix = sp.random(7, 5, density=0.5, format="csr", random_state=1)
    for start, stop in ((0, 7), (0, 3), (3, 7), (2, 2)):
        part = row_range(matrix, start, stop)
        assert np.array_equal(part.toarray(), matrix[start:stop].toarray())
    assert np.shares_memory(row_range(matrix, 3, 7).data, matrix.data)
