"""Fingerprints that decide whether a run can be skipped: same input, same settings."""

from __future__ import annotations

import dataclasses
import hashlib
import json

from related import __version__
from related.config import Settings
from related.entries import Entries
from related.tokenize import user_dictionary_digest


def input_fingerprint(entries: Entries) -> str:
    """Changes when an entry is added, deleted or edited (ids with their content hashes)."""
    digest = hashlib.sha256()
    for entry, content_hash in zip(entries.items, entries.content_hashes, strict=True):
        digest.update(repr(entry.id).encode("utf-8", errors="surrogatepass"))
        digest.update(content_hash)
    return digest.hexdigest()


def settings_fingerprint(settings: Settings) -> str:
    """Changes with anything that changes the results: tokenizer, weighting, top_k, the
    results table and its layout, and the version of related itself."""
    relevant = {
        "version": __version__,
        "tokenizer": dataclasses.asdict(settings.tokenizer),
        "user_dictionary": user_dictionary_digest(settings.tokenizer),
        "vectors": dataclasses.asdict(settings.vectors),
        "neighbours": dataclasses.asdict(settings.neighbours),
        "output": dataclasses.asdict(settings.output),
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()
