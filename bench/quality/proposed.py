"""The proposed change to the pipeline, written against the real modules so it can be moved in.

Title share: each entry's vector becomes

    row = L2( X_row + title_share * L2( tf(title terms) * idf ) )

where X is today's TF-IDF matrix (title already counted title_weight times), the title vector
uses the SAME columns and idf as X (title terms pruned from X are ignored), and tf is
1 + ln(count) when sublinear_tf. Rows stay L2-normalised, so cosine is still the dot product
and related.explain still adds up. Why it helps: a title weight multiplies counts, so in a long
entry the title's terms drown among the body's; a separately normalised title keeps a fixed
share of every vector. It rewards "B talks about what A's title says".

Proposed home: ``related.vectorize.add_field_vectors`` (below, verbatim), a
``tokenize.tokenize_titles`` (below) and a setting ``title_share = 0.3`` in [vectors]; in
``pipeline.compute_related`` after ``build_tfidf``:

    if settings.vectors.title_share:
        titles = tokenize_titles(entries.items, settings.tokenizer)
        tfidf = add_field_vectors(tfidf, titles, settings.vectors)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from related.config import Settings, TokenizerSettings
from related.entries import Entries, Entry
from related.neighbours import top_k_neighbours
from related.text import clean_text
from related.tokenize import Tokenizer, tokenize_entries
from related.vectorize import TfidfMatrix, build_tfidf, l2_normalise_rows

TITLE_SHARE = 0.3


def tokenize_titles(entries: Iterable[Entry], settings: TokenizerSettings) -> list[Counter[str]]:
    """Term counts of each title alone (titles are short: a second MeCab pass costs ~nothing)."""
    tokenizer = Tokenizer(settings)
    return [Counter(tokenizer.terms(clean_text(entry.title))) for entry in entries]


def add_field_vectors(
    tfidf: TfidfMatrix,
    field_counts: Sequence[Mapping[str, float]],
    *,
    share: float,
    sublinear_tf: bool = True,
) -> TfidfMatrix:
    """rows = L2(X + share * L2(tf(field) * idf)), on X's columns and idf. ``tfidf`` unchanged."""
    column = {term: i for i, term in enumerate(tfidf.terms)}
    indptr = np.zeros(len(field_counts) + 1, dtype=np.int64)
    indices: list[int] = []
    data: list[float] = []
    for row, counts in enumerate(field_counts):
        for term, n in counts.items():
            if term in column and n > 0:
                indices.append(column[term])
                data.append(float(n))
        indptr[row + 1] = len(indices)
    field = sp.csr_matrix(
        (np.asarray(data), np.asarray(indices, dtype=np.int32), indptr), shape=tfidf.matrix.shape
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


def proposed_rankings(
    entries: Entries, settings: Settings, *, title_share: float = TITLE_SHARE
) -> dict[int, list[int]]:
    """The pipeline's own stages plus the title share, neighbours by related.neighbours."""
    counts = tokenize_entries(entries.items, settings.tokenizer)
    tfidf = build_tfidf(counts, settings.vectors)
    titles = tokenize_titles(entries.items, settings.tokenizer)
    tfidf = add_field_vectors(
        tfidf, titles, share=title_share, sublinear_tf=settings.vectors.sublinear_tf
    )
    found = top_k_neighbours(tfidf.matrix, top_k=settings.neighbours.top_k)
    ids = entries.ids
    rankings: dict[int, list[int]] = {}
    for s, t in zip(found.source.tolist(), found.target.tolist(), strict=True):
        rankings.setdefault(ids[s], []).append(ids[t])
    return rankings
