"""What a run would change in the results table (for --dry-run). Pure functions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from related.db import ResultRow
from related.entries import EntryId


@dataclass(frozen=True)
class EntryChange:
    entry_id: EntryId
    gained: tuple[EntryId, ...]
    lost: tuple[EntryId, ...]
    reordered: bool  # same neighbours, different order


@dataclass(frozen=True)
class ResultsDiff:
    entries_unchanged: int
    entries_changed: int  # lists that differ in members or order
    entries_added: int  # had no list, will have one
    entries_removed: int  # had a list, will have none
    neighbours_gained: int
    neighbours_lost: int
    examples: tuple[EntryChange, ...] = field(default=())


def ranked_lists(rows: Iterable[ResultRow]) -> dict[EntryId, list[EntryId]]:
    """entry id -> neighbour ids, best first (rank, then score for rank-less layouts)."""
    grouped: dict[EntryId, list[tuple[int, float, EntryId]]] = defaultdict(list)
    for row in rows:
        grouped[row.entry_id].append((row.rank, -row.score, row.related_entry_id))
    return {entry: [n for *_, n in sorted(items)] for entry, items in grouped.items()}


def diff_results(
    old: Iterable[ResultRow], new: Iterable[ResultRow], *, max_examples: int = 5
) -> ResultsDiff:
    before, after = ranked_lists(old), ranked_lists(new)
    unchanged = changed = gained_total = lost_total = 0
    examples: list[EntryChange] = []
    for entry in sorted(before.keys() | after.keys(), key=lambda i: (type(i).__name__, i)):
        old_list, new_list = before.get(entry, []), after.get(entry, [])
        if old_list == new_list:
            unchanged += 1
            continue
        gained = tuple(n for n in new_list if n not in set(old_list))
        lost = tuple(n for n in old_list if n not in set(new_list))
        gained_total += len(gained)
        lost_total += len(lost)
        if old_list and new_list:
            changed += 1
        if len(examples) < max_examples:
            examples.append(EntryChange(entry, gained, lost, reordered=not gained and not lost))
    return ResultsDiff(
        entries_unchanged=unchanged,
        entries_changed=changed,
        entries_added=len(after.keys() - before.keys()),
        entries_removed=len(before.keys() - after.keys()),
        neighbours_gained=gained_total,
        neighbours_lost=lost_total,
        examples=tuple(examples),
    )
