"""Ranking quality against known related pairs ("truth"): load it, score rankings with it.

Truth comes from a file a user writes: JSON ``{"entry_id": [related ids, ...]}`` or CSV pairs
``entry_id,related_entry_id`` (an optional header line with exactly those names). If every id
in the file is written like an integer (``42``, not ``042``) ids are ints, otherwise text, so
they compare equal to the ids the job reads from the source.

Metrics use binary relevance and are averaged over the entries with at least one truth link;
an entry with no stored neighbours scores 0 on every metric. For an entry with truth set R and
ranked neighbours n_1, n_2, ... (rel_i = 1 if n_i is in R):

    nDCG@10      sum_{i<=10} rel_i / log2(i + 1), divided by the same sum for a perfect list
                 (min(|R|, 10) hits at the top)
    recall@10    |{n_1..n_10} & R| / |R|
    precision@5  |{n_1..n_5} & R| / 5   (missing neighbours count as misses)
    MRR@10       1 / i for the first i <= 10 with rel_i = 1, else 0
    coverage     share of those entries with at least one stored neighbour

Self-links and repeated links in the truth are dropped. Everything here is a pure function on
``{entry_id: [ranked neighbour ids]}`` except ``evaluate_stored``, which reads the results
through a ``Database``. For a fresh computation without writing (a dry run), score
``rankings_from_rows(compute_related(...).rows)``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from related.entries import EntryId
from related.errors import ConfigError, SourceError
from related.progress import NoProgress, ProgressFactory

if TYPE_CHECKING:
    from related.config import Settings
    from related.db import Database, ResultsLayout

Truth = dict[EntryId, tuple[EntryId, ...]]
Rankings = Mapping[EntryId, Sequence[EntryId]]

NDCG_K = 10
RECALL_K = 10
PRECISION_K = 5
MRR_K = 10

_CANONICAL_INT = re.compile(r"^(?:0|-?[1-9][0-9]*)$")


@dataclass(frozen=True)
class Evaluation:
    """Mean metrics over ``entries`` (the truth entries with at least one link)."""

    entries: int  # truth entries with >= 1 link
    links: int  # truth links over those entries
    ndcg_at_10: float
    recall_at_10: float
    precision_at_5: float
    mrr_at_10: float
    coverage: float  # share of ``entries`` with >= 1 stored neighbour

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


METRICS = ("ndcg_at_10", "recall_at_10", "precision_at_5", "mrr_at_10", "coverage")
METRIC_LABELS = {
    "ndcg_at_10": "nDCG@10",
    "recall_at_10": "recall@10",
    "precision_at_5": "P@5",
    "mrr_at_10": "MRR@10",
    "coverage": "coverage",
}


# ---------------------------------------------------------------------------------------------
# Truth


def load_truth(path: str | Path) -> Truth:
    """Read a truth file: ``.json`` as a mapping, anything else as CSV pairs."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"Truth file {path} does not exist. Check --truth.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"Truth file {path} is not UTF-8 text.") from None
    if path.suffix.lower() == ".json":
        return parse_truth_json(text, source=str(path))
    return parse_truth_csv(text, source=str(path))


def parse_truth_json(text: str, *, source: str = "truth") -> Truth:
    """``{"entry_id": [related ids]}``; ids may be JSON numbers or strings."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source} is not valid JSON: {exc}.") from None
    if not isinstance(document, dict):
        raise ConfigError(
            f"{source} must be a JSON object mapping an entry id to a list of related ids, "
            f'e.g. {{"42": [7, 19]}}.'
        )
    pairs: list[tuple[str, str]] = []
    for key, related in document.items():
        if not isinstance(related, list):
            raise ConfigError(
                f"{source}: the value of {key!r} must be a list of related ids, e.g. [7, 19]."
            )
        for item in related:
            if isinstance(item, bool) or not isinstance(item, int | str):
                raise ConfigError(
                    f"{source}: related id {item!r} of entry {key!r} must be a number or a string."
                )
            pairs.append((key, str(item)))
        if not related:
            pairs.append((key, ""))  # keeps the entry; it has no links and is not counted
    return truth_from_pairs(pairs)


def parse_truth_csv(text: str, *, source: str = "truth") -> Truth:
    """Lines ``entry_id,related_entry_id``; an ``entry_id,related_entry_id`` header is skipped."""
    pairs: list[tuple[str, str]] = []
    for line_number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        if line_number == 1 and [c.lower() for c in cells] == ["entry_id", "related_entry_id"]:
            continue
        if len(cells) != 2 or not all(cells):
            raise ConfigError(
                f"{source} line {line_number}: expected two ids, entry_id,related_entry_id "
                f"(got {','.join(row)!r})."
            )
        pairs.append((cells[0], cells[1]))
    return truth_from_pairs(pairs)


def truth_from_pairs(pairs: Iterable[tuple[str, str]]) -> Truth:
    """Group (entry id, related id) text pairs; ints if every id is written like an int.

    An empty related id keeps the entry without adding a link. Self-links and repeats are
    dropped; the first-seen order of links is kept.
    """
    pairs = list(pairs)
    ids = {i for pair in pairs for i in pair if i != ""}
    as_int = bool(ids) and all(_CANONICAL_INT.match(i) for i in ids)

    def convert(value: str) -> EntryId:
        return int(value) if as_int else value

    truth: dict[EntryId, list[EntryId]] = {}
    for entry_text, related_text in pairs:
        entry = convert(entry_text)
        links = truth.setdefault(entry, [])
        if related_text == "":
            continue
        related = convert(related_text)
        if related != entry and related not in links:
            links.append(related)
    return {entry: tuple(links) for entry, links in truth.items()}


def symmetrise(truth: Mapping[EntryId, Sequence[EntryId]]) -> Truth:
    """Add B -> A for every A -> B: for pairs that "belong together" in both directions."""
    both: dict[EntryId, list[EntryId]] = {entry: list(links) for entry, links in truth.items()}
    for entry, links in truth.items():
        for related in links:
            back = both.setdefault(related, [])
            if entry not in back:
                back.append(entry)
    return {entry: tuple(links) for entry, links in both.items()}


# ---------------------------------------------------------------------------------------------
# Metrics


def ndcg(ranked: Sequence[EntryId], relevant: Iterable[EntryId], k: int = NDCG_K) -> float:
    relevant = set(relevant)
    if not relevant:
        return 0.0
    dcg = sum(1.0 / math.log2(i + 2) for i, n in enumerate(ranked[:k]) if n in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg / ideal


def recall(ranked: Sequence[EntryId], relevant: Iterable[EntryId], k: int = RECALL_K) -> float:
    relevant = set(relevant)
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def precision(
    ranked: Sequence[EntryId], relevant: Iterable[EntryId], k: int = PRECISION_K
) -> float:
    return len(set(relevant).intersection(ranked[:k])) / k


def reciprocal_rank(
    ranked: Sequence[EntryId], relevant: Iterable[EntryId], k: int = MRR_K
) -> float:
    relevant = set(relevant)
    for i, n in enumerate(ranked[:k]):
        if n in relevant:
            return 1.0 / (i + 1)
    return 0.0


def evaluate(rankings: Rankings, truth: Mapping[EntryId, Sequence[EntryId]]) -> Evaluation:
    """Mean metrics of ``rankings`` over the truth entries with at least one link.

    ``rankings`` maps an entry to its neighbours, best first; entries missing from it have no
    neighbours. Ids are compared as they are (42 and "42" differ); ``load_truth`` and
    ``evaluate_stored`` take care of matching the source's id type.
    """
    judged = {entry: links for entry, links in truth.items() if links}
    n = len(judged)
    if n == 0:
        return Evaluation(0, 0, 0.0, 0.0, 0.0, 0.0, 0.0)
    totals = dict.fromkeys(METRICS, 0.0)
    for entry, links in judged.items():
        ranked = list(rankings.get(entry, ()))
        totals["ndcg_at_10"] += ndcg(ranked, links)
        totals["recall_at_10"] += recall(ranked, links)
        totals["precision_at_5"] += precision(ranked, links)
        totals["mrr_at_10"] += reciprocal_rank(ranked, links)
        totals["coverage"] += 1.0 if ranked else 0.0
    return Evaluation(
        entries=n,
        links=sum(len(links) for links in judged.values()),
        **{name: total / n for name, total in totals.items()},
    )


def rankings_from_rows(rows: Iterable[Any]) -> dict[EntryId, list[EntryId]]:
    """``{entry_id: [related ids, best first]}`` from result rows (``ResultRow`` or 4-tuples).

    Rows are ordered by rank; rows without a rank (None or 0, e.g. a layout that stores no
    rank) by score descending. Equal keys keep the related id order of the job (id ascending).
    """
    ranked: dict[EntryId, list[tuple[Any, ...]]] = {}
    for row in rows:
        if isinstance(row, tuple):
            entry_id, related_entry_id, score, rank = row
        else:
            entry_id, related_entry_id = row.entry_id, row.related_entry_id
            score, rank = row.score, row.rank
        key = (0, int(rank), 0.0) if rank else (1, 0, -float(score))
        ranked.setdefault(entry_id, []).append((*key, related_entry_id))
    return {
        entry: [item[-1] for item in sorted(items, key=lambda item: item[:3])]
        for entry, items in ranked.items()
    }


def evaluate_stored(
    db: Database, truth: Mapping[EntryId, Sequence[EntryId]], *, layout: ResultsLayout
) -> Evaluation:
    """Score the results stored in ``layout.table`` against ``truth``.

    Reads every stored row with ``Database.read_results(layout)``. Stored text ids written
    like ints are compared as ints when the truth's ids are ints (a TEXT column still matches).
    """
    rows = db.read_results(layout)
    if rows is None:
        raise SourceError(
            f"Results table {layout.table!r} does not exist yet. Run `related run` first, "
            "or score a fresh computation with --dry-run."
        )
    example = next(iter(truth), "")
    rankings = {
        _like(example, entry): [_like(example, n) for n in neighbours]
        for entry, neighbours in rankings_from_rows(rows).items()
    }
    return evaluate(rankings, truth)


def evaluate_database(
    settings: Settings,
    truth: Mapping[EntryId, Sequence[EntryId]],
    *,
    fresh: bool = False,
    progress: ProgressFactory = NoProgress,
) -> Evaluation:
    """Score the stored results of ``settings``' database, or (``fresh``) a new computation
    with ``settings`` that writes nothing."""
    from related.db import ResultsLayout, connect
    from related.pipeline import compute_related, read_token_cache

    with connect(settings.require_database_url(), settings.run) as db:
        if not fresh:
            return evaluate_stored(db, truth, layout=ResultsLayout.from_settings(settings.output))
        entries = db.read_entries(settings.source)
        cached = read_token_cache(db, settings)  # read only: a dry run writes nothing
    related = compute_related(entries, settings, cached=cached, progress=progress)
    return evaluate(rankings_from_rows(related.rows), truth)


def _like(example: EntryId, value: Any) -> Any:
    if isinstance(example, int) and isinstance(value, str) and _CANONICAL_INT.match(value):
        return int(value)
    return value


# ---------------------------------------------------------------------------------------------
# Output


def format_evaluation(evaluation: Evaluation) -> str:
    """A two-line table, e.g. for `related eval`."""
    return format_table({"stored results": evaluation})


def format_table(evaluations: Mapping[str, Evaluation]) -> str:
    """One row per named evaluation (method), one column per metric; plain text, aligned."""
    header = ["", *(METRIC_LABELS[m] for m in METRICS), "entries"]
    rows = [
        [name, *(f"{getattr(e, m):.3f}" for m in METRICS), str(e.entries)]
        for name, e in evaluations.items()
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    return "\n".join([line(header), *(line(r) for r in rows)])
