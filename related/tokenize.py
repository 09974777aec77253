"""Tokens: MeCab (mecab-python3) with the UniDic dictionary that ships in unidic-lite.

Text in, terms out. The tagger is created lazily by ``Tokenizer`` (never at import time) and
always points at unidic-lite's own directory, so a full ``unidic`` installed next to it, or a
system-wide mecabrc, cannot silently change the results.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from related.config import TokenizerSettings
from related.entries import Entry
from related.text import clean_text

if TYPE_CHECKING:
    import MeCab

# MeCab's lattice grows with its input; feeding a multi-megabyte entry in pieces keeps memory
# flat. Pieces end at a line break where possible, so words are not cut.
CHUNK_CHARS = 20_000

# Frequent English function words: MeCab tags unknown Latin words as nouns, so without this
# list "the" and "and" would count as shared terms between any two English-heavy entries.
ENGLISH_STOP_WORDS = frozenset(
    """a an and are as at be but by can do for from has have how i if in is it its me my no
    not of on or our so than that the their then there these this to us was we were what when
    which who will with you your""".split()
)

_SINGLE_KANA = re.compile(r"^[\u3041-\u309f\u30a0-\u30ffー]$")
_DIGITS = re.compile(r"^[\d.,]+$")


def dictionary_dir() -> str:
    import unidic_lite

    return unidic_lite.DICDIR


class Tokenizer:
    """Turns clean text into terms according to TokenizerSettings. One per process."""

    def __init__(self, settings: TokenizerSettings):
        self.settings = settings
        self._tagger: MeCab.Tagger | None = None
        self._stop_words = ENGLISH_STOP_WORDS | {w.lower() for w in settings.stop_words}

    @property
    def tagger(self) -> MeCab.Tagger:
        if self._tagger is None:
            import MeCab

            dicdir = dictionary_dir()
            self._tagger = MeCab.Tagger(f'-r "{dicdir}/mecabrc" -d "{dicdir}"')
        return self._tagger

    def terms(self, text: str) -> list[str]:
        """The kept terms of already-cleaned text, in order (repeats included)."""
        keep, drop = self.settings.keep_pos, self.settings.drop_pos
        terms: list[str] = []
        for piece in _chunks(text, CHUNK_CHARS):
            for line in self.tagger.parse(piece).split("\n"):
                # unidic-lite's output: surface, pron, lForm, lemma, POS (joined by '-'), ...
                fields = line.split("\t", 5)
                if len(fields) < 5:
                    continue  # EOS and blank lines
                pos = fields[4]
                if not pos.startswith(keep) or pos.startswith(drop):
                    continue
                term = normalise_term(fields[0])
                if term and term not in self._stop_words:
                    terms.append(term)
        return terms

    def entry_term_counts(self, entry: Entry) -> Counter[str]:
        """Weighted term counts of one entry: body + title, tags, category times their weight."""
        s = self.settings
        counts: Counter[str] = Counter(self.terms(clean_text(entry.body)))
        fields = (
            (entry.title, s.title_weight),
            (" ".join(entry.tags), s.tags_weight),
            (entry.category or "", s.category_weight),
        )
        for text, weight in fields:
            if text and weight:
                for term, n in Counter(self.terms(clean_text(text))).items():
                    counts[term] += n * weight
        return counts


def normalise_term(surface: str) -> str | None:
    """Lower-case Latin letters; None for tokens that carry no topic (numbers, lone kana...)."""
    term = surface.strip().lower()
    if not term or _DIGITS.match(term):
        return None
    if len(term) == 1 and (term.isascii() or _SINGLE_KANA.match(term)):
        return None
    if not any(unicodedata.category(ch)[0] in "LN" for ch in term):
        return None  # symbols and punctuation that MeCab tagged as nouns
    return term


def tokenize_entries(
    entries: Iterable[Entry],
    settings: TokenizerSettings,
    *,
    on_entry: Callable[[], None] | None = None,
) -> list[Counter[str]]:
    """Weighted term counts for each entry, in the order given."""
    tokenizer = Tokenizer(settings)
    result = []
    for entry in entries:
        result.append(tokenizer.entry_term_counts(entry))
        if on_entry is not None:
            on_entry()
    return result


def _chunks(text: str, size: int) -> Iterator[str]:
    start = 0
    while start < len(text):
        end = start + size
        if end < len(text):
            cut = text.rfind("\n", start, end)
            if cut > start:
                end = cut + 1
        yield text[start:end]
        start = end
