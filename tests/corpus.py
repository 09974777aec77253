"""A deterministic corpus of any size, made from the sentences of the sample corpus.

Each synthetic entry takes most of its sentences from one topic, so neighbours are meaningful
and a change to an entry's text really changes the results.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict

from related.sample import sample_entries
from related.text import clean_text


def sentences_by_topic() -> dict[str, list[str]]:
    topics: dict[str, list[str]] = defaultdict(list)
    for entry in sample_entries():
        for sentence in re.split(r"(?<=[。！？])", clean_text(entry["body"])):
            if len(sentence.strip()) > 10:
                topics[entry["category"]].append(sentence.strip())
    return dict(topics)


def synthetic_entries(n: int, *, seed: int = 0, variant: int = 0) -> list[tuple[int, str, str]]:
    """(id, title, body) rows. ``variant`` changes every 3rd entry's text, same ids."""
    rng = random.Random(seed)
    topics = sentences_by_topic()
    names = sorted(topics)
    rows = []
    for entry_id in range(1, n + 1):
        topic = names[rng.randrange(len(names))]
        own = rng.sample(topics[topic], k=min(8, len(topics[topic])))
        other = rng.sample(topics[names[rng.randrange(len(names))]], k=2)
        if variant and entry_id % 3 == 0:
            own = rng.sample(topics[names[(names.index(topic) + variant) % len(names)]], k=8)
        body = "".join(own + other)
        rows.append((entry_id, own[0][:30], body))
    return rows
