"""Tokens: MeCab (mecab-python3) with the UniDic dictionary that ships in unidic-lite.

Text in, terms out. The tagger is created lazily by ``Tokenizer`` (never at import time) and
always points at unidic-lite's own directory, so a full ``unidic`` installed next to it, or a
system-wide mecabrc, cannot silently change the results.

Speed: MeCab prints each word as a tab, its left context id (a number; printing the features
costs MeCab ~17% of its time, bench/), a space and its surface. The id stands for a part of
speech that unidic-lite's left-id.def names; unknown words, and all words when a user dictionary
is loaded, print the joined part of speech itself instead. One regular expression, built from
the kept ids and parts of speech, returns the kept words' surfaces and makes no string for the
others; each distinct surface is normalised once per process. Noun extraction then costs less
than MeCab's printing of its default format.
``tokenize_entries(..., workers=N)`` spreads entries over N processes in chunks; the results are
identical to the serial path and come back in input order. ``packed_count_chunks`` does the same
but returns each chunk's counts as arrays instead of a Counter per entry, which keeps a big
corpus's counts compact; ``token_cache.count_entries`` builds the count matrix from them.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import multiprocessing
import os
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from related.config import TokenizerSettings
from related.entries import Entry
from related.errors import ConfigError
from related.text import clean_text

if TYPE_CHECKING:
    import MeCab
    import numpy as np

T = TypeVar("T")

# MeCab's lattice grows with its input; feeding a multi-megabyte entry in pieces keeps memory
# flat. Pieces end at a line break where possible, so words are not cut.
CHUNK_CHARS = 20_000

# Entries per task sent to a worker process: big enough that pickling and scheduling cost
# little next to MeCab (64 entries of 6 KB are ~0.1 s of work), small enough for an even
# spread over the workers and a progress bar that moves.
WORKER_CHUNK = 64

# Frequent English function words: MeCab tags unknown Latin words as nouns, so without this
# list "the" and "and" would count as shared terms between any two English-heavy entries.
ENGLISH_STOP_WORDS = frozenset(
    """a an and are as at be but by can do for from has have how i if in is it its me my no
    not of on or our so than that the their then there these this to us was we were what when
    which who will with you your""".split()
)

# Each word prints "TAB column SPACE surface". The column is the word's left context id (%phl):
# every id stands for one part of speech (left-id.def; unidic's rewrite rules keep pos1-pos4 in
# the left context), and a number is far cheaper for MeCab to print than its features. Unknown
# words print their part of speech (%F-[0,1,2,3]: pos1-pos4 joined by '-', '*' levels left
# out, exactly the 5th column of unidic-lite's default format): their ids do not always match
# their features. A part of speech never starts with a digit, so the two kinds of column cannot
# be mistaken for each other. -O "" switches unidic-lite's named default format off.
_ID_COLUMN = r"\t%phl %m"
_POS_COLUMN = r"\t%F-[0,1,2,3] %m"
# Distinct surfaces remembered per Tokenizer; cleared when full so memory stays bounded.
_MEMO_LIMIT = 1_000_000

_SINGLE_KANA = re.compile(r"^[\u3041-\u309f\u30a0-\u30ffー]$")
_DIGITS = re.compile(r"^[\d.,]+$")


def dictionary_dir() -> str:
    import unidic_lite

    return unidic_lite.DICDIR


def _make_tagger(user_dictionary: str | None, *, id_column: bool) -> MeCab.Tagger:
    import MeCab

    dicdir = dictionary_dir()
    known = _ID_COLUMN if id_column else _POS_COLUMN
    args = (
        f'-r "{dicdir}/mecabrc" -d "{dicdir}" -O "" --node-format="{known}" '
        f'--unk-format="{_POS_COLUMN}" --bos-format="" --eos-format=""'
    )
    if user_dictionary:
        args += f' -u "{check_user_dictionary(user_dictionary)}"'
    try:
        return MeCab.Tagger(args)
    except RuntimeError as exc:
        # mecab-python3 wraps MeCab's own reason ("... dictionary.cpp(94) [check] dictionary
        # file is broken: PATH") in a long generic text between lines of dashes.
        lines = [line.strip() for line in str(exc).splitlines() if line.strip("- \n")]
        reason = lines[-1].rsplit("] ", 1)[-1] if lines else "unknown error"
        raise ConfigError(
            f"user_dictionary = {user_dictionary!r} cannot be loaded by MeCab ({reason}). It "
            "must be a user dictionary compiled with mecab-dict-index -d <unidic-lite's dicdir> "
            "-u FILE.dic -f utf-8 -t utf-8 (see README)."
        ) from None


def check_user_dictionary(path: str) -> str:
    """The absolute path of a usable-looking user dictionary file, or a ConfigError."""
    absolute = os.path.abspath(path)
    if "," in absolute:
        raise ConfigError(
            f"user_dictionary = {path!r}: MeCab splits dictionary paths at commas; move the "
            "file to a path without one."
        )
    if not os.path.isfile(absolute) or os.path.getsize(absolute) == 0:
        raise ConfigError(
            f"user_dictionary = {path!r} is not a file (or is empty) as seen from "
            f"{os.getcwd()!r}. Give the path of a compiled .dic file, or unset it."
        )
    return absolute


def user_dictionary_digest(settings: TokenizerSettings) -> str | None:
    """SHA-256 of the user dictionary's content: rebuilding it under the same path changes
    the terms, so it must change the run and token cache fingerprints too."""
    if not settings.user_dictionary:
        return None
    with open(check_user_dictionary(settings.user_dictionary), "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def pos_is_kept(pos: str, keep_pos: Sequence[str], drop_pos: Sequence[str]) -> bool:
    """Whether a joined part of speech ("名詞-普通名詞-一般") starts with a keep_pos prefix and
    with no drop_pos prefix."""
    return pos.startswith(tuple(keep_pos)) and not pos.startswith(tuple(drop_pos))


def left_id_pos() -> dict[str, str]:
    """unidic-lite's left context ids (as MeCab prints them) -> joined part of speech."""
    pos_of: dict[str, str] = {}
    with open(os.path.join(dictionary_dir(), "left-id.def"), encoding="utf-8") as handle:
        for line in handle:
            context_id, features = line.rstrip("\n").split(" ", 1)
            pos_of[context_id] = "-".join(f for f in features.split(",")[:4] if f != "*")
    return pos_of


def kept_words_pattern(keep_pos: Sequence[str], drop_pos: Sequence[str]) -> re.Pattern[str]:
    """A regex whose ``findall`` over MeCab's output (see _ID_COLUMN) returns the surfaces of
    the kept words, in order: a word is kept if its column is the context id of a kept part of
    speech (left-id.def) or a kept part of speech itself (``pos_is_kept``).

    The regex engine skips a dropped word after a character or two and makes no string for it
    (bench/: MeCab plus extraction 5.0-5.5 s for 1,500 bodies, against 5.9-6.4 s when the
    output was split into two strings per word and the kept ones picked out).
    """
    ids = [i for i, pos in left_id_pos().items() if pos_is_kept(pos, keep_pos, drop_pos)]
    never = "(?!)"
    by_id = _trie_pattern(ids) if ids else never
    by_pos = never
    if keep_pos:
        not_dropped = f"(?!{'|'.join(map(re.escape, drop_pos))})" if drop_pos else ""
        by_pos = f"{not_dropped}(?:{'|'.join(map(re.escape, keep_pos))})[^ \t]*"
    # The column must end at the space: id 47 is not a prefix match of id 4783.
    return re.compile(f"\t(?:{by_id}|{by_pos}) ([^\t]*)")


def _trie_pattern(words: Sequence[str]) -> str:
    """A regex matching exactly ``words`` (distinct, non-empty), factored by common prefixes,
    so the engine tries one character at a time instead of every word in turn."""
    branches: dict[str, list[str]] = {}
    for word in words:
        branches.setdefault(word[0], []).append(word[1:])
    alternatives = []
    for first, rests in sorted(branches.items()):
        tails = [rest for rest in rests if rest]
        tail = _trie_pattern(tails) if tails else ""
        if tails and len(tails) < len(rests):  # a word also ends here
            tail = f"(?:{tail})?"
        alternatives.append(re.escape(first) + tail)
    return alternatives[0] if len(alternatives) == 1 else f"(?:{'|'.join(alternatives)})"


class Tokenizer:
    """Turns clean text into terms according to TokenizerSettings. One per process."""

    def __init__(self, settings: TokenizerSettings):
        self.settings = settings
        self._tagger: MeCab.Tagger | None = None
        self._kept_words = kept_words_pattern(settings.keep_pos, settings.drop_pos)
        self._stop_words = ENGLISH_STOP_WORDS | {w.lower() for w in settings.stop_words}
        self._whole = whole_words_pattern(settings.whole_words)
        self._term_of: dict[str, str | None] = {}

    @property
    def tagger(self) -> MeCab.Tagger:
        if self._tagger is None:
            # A user dictionary's words carry whatever context ids its author gave them, so
            # with one loaded every word prints its part of speech.
            user_dictionary = self.settings.user_dictionary
            self._tagger = _make_tagger(user_dictionary, id_column=not user_dictionary)
        return self._tagger

    def _surfaces(self, text: str) -> Iterator[list[str]]:
        """Surfaces of the kept parts of speech, one list per MeCab piece; whole_words are
        taken out of the text before MeCab sees it and come last in their piece's list."""
        parse, find, whole = self.tagger.parse, self._kept_words.findall, self._whole
        for piece in _chunks(text, CHUNK_CHARS):
            if whole is None:
                yield find(parse(piece))
            else:
                kept_whole = [" ".join(w.split()) for w in whole.findall(piece)]
                yield find(parse(whole.sub(" ", piece))) + kept_whole

    def _learn(self, surfaces: Iterable[str]) -> dict[str, str | None]:
        """The surface -> term memo, after adding any of ``surfaces`` it has not seen."""
        memo = self._term_of
        new = set(surfaces).difference(memo)
        if new:
            if len(memo) + len(new) > _MEMO_LIMIT:
                memo.clear()
                new = set(surfaces)
            for surface in new:
                term = normalise_term(surface)
                memo[surface] = None if term in self._stop_words else term
        return memo

    def terms(self, text: str) -> list[str]:
        """The kept terms of already-cleaned text, in order (repeats included)."""
        found: list[str] = []
        for surfaces in self._surfaces(text):
            found.extend(filter(None, map(self._learn(surfaces).__getitem__, surfaces)))
        return found

    def term_counts(self, text: str) -> Counter[str]:
        """``Counter(self.terms(text))``; the loops run in C (map, filter, Counter)."""
        counts: Counter[str] = Counter()
        for surfaces in self._surfaces(text):
            counts.update(filter(None, map(self._learn(surfaces).__getitem__, surfaces)))
        return counts

    def entry_term_counts(self, entry: Entry) -> Counter[str]:
        """Weighted term counts of one entry: body + title, tags, category times their weight."""
        s = self.settings
        counts = self.term_counts(clean_text(entry.body))
        fields = (
            (entry.title, s.title_weight),
            (" ".join(entry.tags), s.tags_weight),
            (entry.category or "", s.category_weight),
        )
        for text, weight in fields:
            if text and weight:
                for term, n in self.term_counts(clean_text(text)).items():
                    counts[term] += n * weight
        return counts


def whole_words_pattern(words: Sequence[str]) -> re.Pattern[str] | None:
    """A regex matching any of ``words`` (NFKC, case-insensitive, longest first). Latin words
    only match whole: "Go" is not found inside "Google"."""
    if not words:
        return None
    alternatives = []
    for word in sorted(
        {unicodedata.normalize("NFKC", w).strip() for w in words}, key=len, reverse=True
    ):
        if not word:
            continue
        pattern = re.escape(word).replace(r"\ ", r"\s+")
        if word[0].isascii() and word[0].isalnum():
            pattern = r"(?<![A-Za-z0-9])" + pattern
        if word[-1].isascii() and word[-1].isalnum():
            pattern += r"(?![A-Za-z0-9])"
        alternatives.append(pattern)
    return re.compile("|".join(alternatives), re.IGNORECASE) if alternatives else None


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
    on_entries: Callable[[int], None] | None = None,
    workers: int = 1,
    chunk_size: int = WORKER_CHUNK,
) -> list[Counter[str]]:
    """Weighted term counts for each entry, in the order given.

    ``workers`` > 1 tokenises in that many processes (each builds its own MeCab tagger), in
    chunks of ``chunk_size`` entries; 0 means one per CPU core available. The result is the
    same as with one worker. Progress: ``on_entries(n)`` after each chunk of n entries (n = 1
    when serial), ``on_entry()`` once per entry.
    """
    entries = list(entries)
    workers = _check_workers(workers, chunk_size, len(entries))
    progress = _progress(on_entry, on_entries)
    if workers <= 1:
        tokenizer = Tokenizer(settings)
        result = []
        for entry in entries:
            result.append(tokenizer.entry_term_counts(entry))
            progress(1)
        return result
    result = []
    for counts in _map_chunks(_counters, entries, settings, workers, chunk_size):
        # Share one string object per term across entries, as the serial path does.
        result.extend(Counter({sys.intern(t): n for t, n in c.items()}) for c in counts)
        progress(len(counts))
    return result


def packed_count_chunks(
    entries: Iterable[Entry],
    settings: TokenizerSettings,
    *,
    count: int,
    workers: int = 1,
    chunk_size: int = WORKER_CHUNK,
) -> Iterator[tuple[list[str], np.ndarray, np.ndarray, np.ndarray]]:
    """Each chunk's counts, in order, as (terms, terms per entry, term ids, values): the
    entries' rows one after the other, term ids indexing the chunk's own term list.

    ``entries`` (``count`` of them) is read lazily, a chunk at a time as workers take them,
    so a caller can hand over entries it lets go of as they are read.
    """
    workers = _check_workers(workers, chunk_size, count)
    yield from _map_chunks(_packed_counts, entries, settings, workers, chunk_size)


def _check_workers(workers: int, chunk_size: int, n_entries: int) -> int:
    if workers < 0:
        raise ValueError(f"workers must be >= 0 (0 = one per CPU core), not {workers}.")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, not {chunk_size}.")
    return min(workers or available_cpus(), -(-n_entries // chunk_size))


def _progress(
    on_entry: Callable[[], None] | None, on_entries: Callable[[int], None] | None
) -> Callable[[int], None]:
    def progress(n: int) -> None:
        if on_entries is not None:
            on_entries(n)
        if on_entry is not None:
            for _ in range(n):
                on_entry()

    return progress


def _map_chunks(
    work: Callable[[Tokenizer, list[Entry]], T],
    entries: Iterable[Entry],
    settings: TokenizerSettings,
    workers: int,
    chunk_size: int,
) -> Iterator[T]:
    """``work(tokenizer, chunk)`` for each chunk of entries, in order, in ``workers`` processes.
    Chunks are cut lazily: no list of every entry is built here."""
    chunks = _batches(entries, chunk_size)
    if workers <= 1:
        tokenizer = Tokenizer(settings)
        for chunk in chunks:
            yield work(tokenizer, chunk)
        return
    # The pool inherits nothing it needs: each worker makes its own Tokenizer, so fork, spawn
    # and forkserver all work and no MeCab tagger crosses a process boundary.
    with _pool_context().Pool(workers, initializer=_start_worker, initargs=(settings,)) as pool:
        encoded = (list(map(_encoded, chunk)) for chunk in chunks)  # encoded as they are sent
        yield from pool.imap(functools.partial(_in_worker, work), encoded)


# Entries travel to the workers with their text as UTF-8 bytes, not str. Pickling a str
# makes CPython cache a UTF-8 copy inside that str object for as long as it lives, so sending
# the entries themselves would keep a second copy of all their text in this process (measured
# in bench/README.md); bytes made here are freed once sent.
_EncodedEntry = tuple[Any, bytes, bytes, tuple[str, ...], "bytes | None"]


def _encoded(entry: Entry) -> _EncodedEntry:
    def utf8(text: str) -> bytes:
        return text.encode("utf-8", "surrogatepass")

    category = utf8(entry.category) if entry.category is not None else None
    return (entry.id, utf8(entry.title), utf8(entry.body), entry.tags, category)


def _decoded(encoded: _EncodedEntry) -> Entry:
    entry_id, title, body, tags, category = encoded
    return Entry(
        id=entry_id,
        title=title.decode("utf-8", "surrogatepass"),
        body=body.decode("utf-8", "surrogatepass"),
        tags=tags,
        category=category.decode("utf-8", "surrogatepass") if category is not None else None,
    )


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _counters(tokenizer: Tokenizer, entries: list[Entry]) -> list[Counter[str]]:
    return [tokenizer.entry_term_counts(entry) for entry in entries]


def _packed_counts(tokenizer: Tokenizer, entries: list[Entry]) -> tuple:
    """A chunk's counts as (terms, terms per entry, term ids, values): cheap to pickle."""
    import numpy as np

    local: dict[str, int] = {}
    lengths, ids, values = [], [], []
    for entry in entries:
        counts = tokenizer.entry_term_counts(entry)
        lengths.append(len(counts))
        ids.extend(local.setdefault(t, len(local)) for t in counts)
        values.extend(counts.values())
    return (
        list(local),
        np.asarray(lengths, dtype=np.int64),
        np.asarray(ids, dtype=np.int64),
        np.asarray(values, dtype=np.float64),
    )


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _pool_context() -> multiprocessing.context.BaseContext:
    # The platform's default start method (fork on Linux up to Python 3.13, forkserver from
    # 3.14, spawn on macOS and Windows); workers rely on nothing inherited, so all of them work.
    return multiprocessing.get_context()


_worker_tokenizer: Tokenizer | None = None


def _start_worker(settings: TokenizerSettings) -> None:
    global _worker_tokenizer
    _worker_tokenizer = Tokenizer(settings)


def _in_worker(work: Callable[[Tokenizer, list[Entry]], T], encoded: list[_EncodedEntry]) -> T:
    assert _worker_tokenizer is not None, "worker started without _start_worker"
    return work(_worker_tokenizer, [_decoded(entry) for entry in encoded])


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
