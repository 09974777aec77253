"""Why two entries are related: the terms behind their cosine score.

Rows of the TF-IDF matrix are L2-normalised, so the cosine of entries A and B is the dot
product sum_t w_A(t) * w_B(t) over the terms they share. Each shared term's contribution
w_A(t) * w_B(t) is its share of the score; the contributions add up to the score exactly (up to
float rounding). Terms strong in one entry and absent from the other are what keeps the score
from being higher.
"""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from related.entries import Entries, EntryId
from related.errors import SourceError
from related.vectorize import TfidfMatrix

if TYPE_CHECKING:
    from related.config import Settings
    from related.db import CachedTokens

DEFAULT_LIMIT = 10


@dataclass(frozen=True)
class SharedTerm:
    term: str
    weight_a: float
    weight_b: float

    @property
    def contribution(self) -> float:
        return self.weight_a * self.weight_b


@dataclass(frozen=True)
class OneSidedTerm:
    term: str
    weight: float


@dataclass(frozen=True)
class Explanation:
    """``shared`` holds EVERY shared term (so contributions sum to ``score``), best first;
    ``only_a`` / ``only_b`` hold the ``limit`` strongest terms absent from the other entry."""

    score: float
    shared: tuple[SharedTerm, ...]
    only_a: tuple[OneSidedTerm, ...]
    only_b: tuple[OneSidedTerm, ...]

    def to_dict(self) -> dict[str, Any]:
        payload = asdict(self)
        for item, term in zip(payload["shared"], self.shared, strict=True):
            item["contribution"] = term.contribution
        return payload


def explain_pair(
    tfidf: TfidfMatrix, row_a: int, row_b: int, *, limit: int = DEFAULT_LIMIT
) -> Explanation:
    """Explain the cosine of rows ``row_a`` and ``row_b`` of ``tfidf``.

    Shared terms are sorted by contribution descending, then term ascending; one-sided terms
    by weight descending, then term ascending.
    """
    n_rows = tfidf.matrix.shape[0]
    for row in (row_a, row_b):
        if not 0 <= row < n_rows:
            raise IndexError(f"row {row} is outside the matrix (0..{n_rows - 1})")
    cols_a, weights_a = _row(tfidf, row_a)
    cols_b, weights_b = _row(tfidf, row_b)
    common, in_a, in_b = np.intersect1d(cols_a, cols_b, assume_unique=True, return_indices=True)
    shared = sorted(
        (
            SharedTerm(tfidf.terms[c], float(weights_a[i]), float(weights_b[j]))
            for c, i, j in zip(common.tolist(), in_a.tolist(), in_b.tolist(), strict=True)
        ),
        key=lambda s: (-s.contribution, s.term),
    )
    score = float(np.dot(weights_a[in_a], weights_b[in_b]))
    return Explanation(
        score=score,
        shared=tuple(shared),
        only_a=_one_sided(tfidf, cols_a, weights_a, exclude=in_a, limit=limit),
        only_b=_one_sided(tfidf, cols_b, weights_b, exclude=in_b, limit=limit),
    )


def _row(tfidf: TfidfMatrix, row: int) -> tuple[np.ndarray, np.ndarray]:
    m = tfidf.matrix
    lo, hi = m.indptr[row], m.indptr[row + 1]
    cols, weights = m.indices[lo:hi], m.data[lo:hi]
    order = np.argsort(cols, kind="stable")  # intersect1d wants sorted, unique columns
    return cols[order], weights[order]


def _one_sided(
    tfidf: TfidfMatrix, cols: np.ndarray, weights: np.ndarray, *, exclude: np.ndarray, limit: int
) -> tuple[OneSidedTerm, ...]:
    mask = np.ones(len(cols), dtype=bool)
    mask[exclude] = False
    terms = [
        OneSidedTerm(tfidf.terms[c], float(w))
        for c, w in zip(cols[mask].tolist(), weights[mask].tolist(), strict=True)
        if w > 0
    ]
    terms.sort(key=lambda t: (-t.weight, t.term))
    return tuple(terms[:limit])


def row_of(entries: Entries, entry_id: str | EntryId) -> int:
    """The matrix row of an entry given by id (as typed on a command line, or as stored)."""
    ids = entries.ids
    wanted: EntryId = entry_id
    if isinstance(entry_id, str) and ids and isinstance(ids[0], int):
        try:
            wanted = int(entry_id)
        except ValueError:
            raise SourceError(f"Entry id {entry_id!r} is not an integer; ids are.") from None
    # Entries are sorted by id, but a dict lookup is simpler and n is small next to tokenizing.
    position = {entry: i for i, entry in enumerate(ids)}
    if wanted not in position:
        raise SourceError(
            f"Entry {entry_id} is not among the {len(ids)} entries read. Check the id, "
            "source_table and source_where."
        )
    return position[wanted]


def explain_entries(
    entries: Entries,
    settings: Settings,
    entry_a: str | EntryId,
    entry_b: str | EntryId,
    *,
    limit: int = DEFAULT_LIMIT,
    cached: CachedTokens | None = None,
) -> Explanation:
    """Tokenize and weight all ``entries`` (IDF needs the whole corpus), then explain A and B.

    Uses the same settings as the job, so the score equals the one ``related run`` stores
    (when B is among A's neighbours). ``cached``: the token cache, read only.
    """
    from related.pipeline import vectorize_entries

    row_a, row_b = row_of(entries, entry_a), row_of(entries, entry_b)
    tfidf = vectorize_entries(entries, settings, cached=cached)
    return explain_pair(tfidf, row_a, row_b, limit=limit)


def explain_in_database(
    settings: Settings, entry_a: str, entry_b: str, *, limit: int = DEFAULT_LIMIT
) -> Explanation:
    """Read the entries of ``settings``' database and explain the pair A, B."""
    from related.db import connect
    from related.pipeline import read_token_cache

    with connect(settings.require_database_url(), settings.run) as db:
        entries = db.read_entries(settings.source)
        cached = read_token_cache(db, settings)
    return explain_entries(entries, settings, entry_a, entry_b, limit=limit, cached=cached)


def format_explanation(
    explanation: Explanation,
    *,
    entry_a: object = "A",
    entry_b: object = "B",
    limit: int = DEFAULT_LIMIT,
) -> str:
    """Plain-text report: score, top shared terms with contributions, one-sided terms."""
    e = explanation
    lines = [f"{entry_a} ~ {entry_b}: cosine {e.score:.3f}, {len(e.shared)} shared terms"]
    if e.shared:
        lines.append("  shared term             weight A  weight B  contribution  share")
        for s in e.shared[:limit]:
            share = s.contribution / e.score if e.score > 0 else 0.0
            lines.append(
                f"  {_pad(s.term, 22)}  {s.weight_a:8.3f}  {s.weight_b:8.3f}  "
                f"{s.contribution:12.4f}  {share:5.1%}"
            )
        rest = e.shared[limit:]
        if rest:
            lines.append(
                f"  ... {len(rest)} more shared terms contribute "
                f"{sum(s.contribution for s in rest):.4f}"
            )
    else:
        lines.append("  (no shared terms: the entries are unrelated)")
    for label, terms in ((f"only in {entry_a}", e.only_a), (f"only in {entry_b}", e.only_b)):
        shown = ", ".join(f"{t.term} {t.weight:.3f}" for t in terms[:limit])
        lines.append(f"  {label}: {shown or '(none)'}")
    return "\n".join(lines)


def _pad(text: str, width: int) -> str:
    """Left-justify by display width: CJK characters take two columns in a terminal."""
    used = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(0, width - used)
