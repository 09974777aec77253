import numpy as np
import pytest
import scipy.sparse as sp

from related.config import Settings, VectorSettings
from related.entries import Entries, Entry
from related.errors import SourceError
from related.explain import (
    Explanation,
    OneSidedTerm,
    SharedTerm,
    explain_entries,
    explain_pair,
    format_explanation,
    row_of,
)
from related.vectorize import TfidfMatrix, build_tfidf, l2_normalise_rows


def hand_made_matrix() -> TfidfMatrix:
    terms = ("coffee", "bean", "roast", "bike", "chain", "grind")
    dense = np.array(
        [
            [3.0, 2.0, 0.0, 0.0, 0.0, 1.0],  # A: coffee, bean, grind
            [1.0, 2.0, 2.0, 0.0, 0.0, 0.0],  # B: coffee, bean, roast
            [0.0, 0.0, 0.0, 2.0, 1.0, 0.0],  # C: bike, chain
        ]
    )
    matrix = sp.csr_matrix(dense)
    l2_normalise_rows(matrix)
    return TfidfMatrix(matrix=matrix, terms=terms, idf=np.ones(len(terms)))


def test_contributions_sum_to_the_cosine_and_are_sorted():
    tfidf = hand_made_matrix()
    explanation = explain_pair(tfidf, 0, 1)
    a, b = np.array([3, 2, 0, 0, 0, 1]) / np.sqrt(14), np.array([1, 2, 2, 0, 0, 0]) / 3
    cosine = float(a @ b)  # (3 + 4) / (3 * sqrt(14))
    assert explanation.score == pytest.approx(cosine)
    assert explanation.score == pytest.approx(7 / (3 * np.sqrt(14)))
    assert sum(s.contribution for s in explanation.shared) == pytest.approx(cosine)
    assert [s.term for s in explanation.shared] == ["bean", "coffee"]  # 4/.. before 3/..
    assert explanation.shared[0] == SharedTerm("bean", pytest.approx(2 / np.sqrt(14)), 2 / 3)
    assert explanation.only_a == (OneSidedTerm("grind", pytest.approx(1 / np.sqrt(14))),)
    assert explanation.only_b == (OneSidedTerm("roast", pytest.approx(2 / 3)),)


def test_unrelated_rows_share_nothing():
    explanation = explain_pair(hand_made_matrix(), 0, 2, limit=1)
    assert explanation.score == 0.0
    assert explanation.shared == ()
    assert [t.term for t in explanation.only_a] == ["coffee"]  # limit=1 keeps the strongest
    assert [t.term for t in explanation.only_b] == ["bike"]


def test_row_outside_the_matrix_is_an_index_error():
    with pytest.raises(IndexError, match="row 3 is outside the matrix"):
        explain_pair(hand_made_matrix(), 0, 3)


def test_matches_the_dot_product_on_random_tfidf():
    rng = np.random.default_rng(11)
    dense = rng.integers(0, 4, size=(30, 50)) * (rng.random((30, 50)) < 0.3)
    counts = [{f"t{j:02d}": int(v) for j, v in enumerate(row) if v} for row in dense]
    tfidf = build_tfidf(counts, VectorSettings())
    similarities = (tfidf.matrix @ tfidf.matrix.T).toarray()
    for a, b in [(0, 1), (2, 7), (5, 5), (29, 3)]:
        explanation = explain_pair(tfidf, a, b, limit=100)
        assert explanation.score == pytest.approx(similarities[a, b])
        assert sum(s.contribution for s in explanation.shared) == pytest.approx(similarities[a, b])
        contributions = [s.contribution for s in explanation.shared]
        assert contributions == sorted(contributions, reverse=True)
        row_a = set(tfidf.matrix[a].indices)
        row_b = set(tfidf.matrix[b].indices)
        assert len(explanation.shared) == len(row_a & row_b)
        assert len(explanation.only_a) == len(row_a - row_b)


def test_format_explanation():
    explanation = explain_pair(hand_made_matrix(), 0, 1)
    text = format_explanation(explanation, entry_a=1, entry_b=2, limit=1)
    assert text.splitlines() == [
        "1 ~ 2: cosine 0.624, 2 shared terms",
        "  shared term             weight A  weight B  contribution  share",
        "  bean                       0.535     0.667        0.3563  57.1%",
        "  ... 1 more shared terms contribute 0.2673",
        "  only in 1: grind 0.267",
        "  only in 2: roast 0.667",
    ]
    empty = Explanation(0.0, (), (), ())
    assert "(no shared terms: the entries are unrelated)" in format_explanation(empty)


def test_to_dict_includes_contributions():
    payload = explain_pair(hand_made_matrix(), 0, 1).to_dict()
    assert payload["shared"][0]["term"] == "bean"
    assert payload["shared"][0]["contribution"] == pytest.approx(4 / (3 * np.sqrt(14)))


ENTRIES = Entries(
    items=(
        Entry(1, "コーヒーの淹れ方", "ハンドドリップでコーヒー豆を挽いて淹れる。"),
        Entry(2, "コーヒー豆の焙煎", "コーヒー豆を焙煎して挽く。"),
        Entry(3, "自転車の整備", "自転車のチェーンに油を差す。"),
    ),
    id_type="INTEGER",
)


def test_explain_entries_with_real_mecab():
    explanation = explain_entries(ENTRIES, Settings(), "1", "2")
    terms = [s.term for s in explanation.shared]
    assert "コーヒー" in terms
    assert sum(s.contribution for s in explanation.shared) == pytest.approx(explanation.score)
    assert explain_entries(ENTRIES, Settings(), 1, 3).shared == ()


def test_row_of_unknown_or_malformed_id():
    assert row_of(ENTRIES, "3") == 2
    with pytest.raises(SourceError) as info:
        row_of(ENTRIES, "99")
    assert str(info.value) == (
        "Entry 99 is not among the 3 entries read. Check the id, source_table and source_where."
    )
    with pytest.raises(SourceError, match="Entry id 'abc' is not an integer; ids are."):
        row_of(ENTRIES, "abc")
