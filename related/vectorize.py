"""TF-IDF: weighted term counts in, an L2-normalised sparse matrix out.

TF-IDF is "count, then reweight". For entry d and term t, with N entries and df(t) the number
of entries containing t:

    tf(t, d)  = 1 + ln(count(t, d))   if sublinear_tf and count >= 1, else count(t, d)
    idf(t)    = ln((1 + N) / (1 + df(t))) + 1          (smoothed, never zero)
    w(t, d)   = tf(t, d) * idf(t), then each row is divided by its L2 norm

so the cosine similarity of two entries is the dot product of their rows. ``count`` already
includes field weights (a title term counts ``title_weight`` times). This equals
scikit-learn's TfidfVectorizer(smooth_idf=True, norm="l2", sublinear_tf=...) on the same
counts; tests check it against that reference. Entries without terms keep an all-zero row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from related.config import VectorSettings
from related.errors import SourceError


@dataclass(frozen=True)
class TfidfMatrix:
    matrix: sp.csr_matrix  # entries x terms, float64, rows L2-normalised (or all zero)
    terms: tuple[str, ...]  # column index -> term
    idf: np.ndarray  # per column

    @property
    def nnz(self) -> int:
        return int(self.matrix.nnz)


def count_matrix(term_counts: Sequence[Mapping[str, float]]) -> tuple[sp.csr_matrix, list[str]]:
    """Stack per-entry term counts into a CSR matrix; terms are numbered in sorted order."""
    vocabulary = sorted({term for counts in term_counts for term in counts})
    column = {term: i for i, term in enumerate(vocabulary)}
    indptr = np.zeros(len(term_counts) + 1, dtype=np.int64)
    indices: list[int] = []
    data: list[float] = []
    for row, counts in enumerate(term_counts):
        indices.extend(column[t] for t in counts)
        data.extend(counts.values())
        indptr[row + 1] = len(indices)
    matrix = sp.csr_matrix(
        (np.asarray(data, dtype=np.float64), np.asarray(indices, dtype=np.int32), indptr),
        shape=(len(term_counts), len(vocabulary)),
    )
    matrix.sort_indices()
    return matrix, vocabulary


def document_frequency(counts: sp.csr_matrix) -> np.ndarray:
    return np.bincount(counts.indices, minlength=counts.shape[1])


def tfidf_from_counts(
    counts: sp.csr_matrix, terms: Sequence[str], settings: VectorSettings
) -> TfidfMatrix:
    """Prune by document frequency, weight, and L2-normalise rows. ``counts`` is not modified."""
    n_entries = counts.shape[0]
    df = document_frequency(counts)
    keep = (df >= settings.min_df) & (df <= settings.max_df * n_entries)
    if counts.shape[1] and not keep.any():
        raise SourceError(
            f"No terms remain after pruning (min_df={settings.min_df}, max_df={settings.max_df}, "
            f"{n_entries} entries). Lower min_df or raise max_df."
        )
    kept_columns = np.flatnonzero(keep)
    weights = counts[:, kept_columns].tocsr(copy=True)
    df = df[kept_columns]

    if settings.sublinear_tf:
        big = weights.data >= 1
        weights.data[big] = 1.0 + np.log(weights.data[big])
    idf = np.log((1.0 + n_entries) / (1.0 + df)) + 1.0
    weights.data *= idf[weights.indices]
    l2_normalise_rows(weights)
    return TfidfMatrix(matrix=weights, terms=tuple(terms[i] for i in kept_columns), idf=idf)


def l2_normalise_rows(matrix: sp.csr_matrix) -> None:
    """In place; all-zero rows stay zero."""
    lengths = np.diff(matrix.indptr)
    rows = np.repeat(np.arange(matrix.shape[0]), lengths)
    norms = np.sqrt(np.bincount(rows, weights=matrix.data**2, minlength=matrix.shape[0]))
    matrix.data /= np.repeat(np.where(norms > 0, norms, 1.0), lengths)


def build_tfidf(
    term_counts: Sequence[Mapping[str, float]], settings: VectorSettings
) -> TfidfMatrix:
    counts, terms = count_matrix(term_counts)
    return tfidf_from_counts(counts, terms, settings)


def add_field_vectors(
    tfidf: TfidfMatrix,
    field_counts: sp.csr_matrix,
    field_terms: Sequence[str],
    *,
    share: float,
    sublinear_tf: bool = True,
) -> TfidfMatrix:
    """Give one field (the title) a fixed share of every entry's vector.

        row = L2( X_row + share * L2( tf(field terms) * idf ) )

    on X's own columns and idf (field terms pruned from X are ignored). ``field_counts`` has
    one row per entry, columns named by ``field_terms``. A title weight only multiplies
    counts, so in a long entry the title's terms drown among the body's; a separately
    normalised field vector keeps the same share whatever the body's length. Rows stay
    L2-normalised: scores are still cosines. ``tfidf`` is not modified.
    """
    column = {term: i for i, term in enumerate(tfidf.terms)}
    to_column = np.fromiter(
        (column.get(term, -1) for term in field_terms), dtype=np.int64, count=len(field_terms)
    )
    field_counts = field_counts.tocoo()
    columns = to_column[field_counts.col]
    keep = (columns >= 0) & (field_counts.data > 0)
    field = sp.csr_matrix(
        (field_counts.data[keep].astype(np.float64), (field_counts.row[keep], columns[keep])),
        shape=tfidf.matrix.shape,
    )
    if sublinear_tf:
        big = field.data >= 1
        field.data[big] = 1.0 + np.log(field.data[big])
    field.data *= tfidf.idf[field.indices]
    l2_normalise_rows(field)
    combined = (tfidf.matrix + share * field).tocsr()
    combined.sort_indices()
    l2_normalise_rows(combined)
    return TfidfMatrix(matrix=combined, terms=tfidf.terms, idf=tfidf.idf)
