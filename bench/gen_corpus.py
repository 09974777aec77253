"""Deterministic synthetic Japanese blog corpus for the benchmarks.

    python bench/gen_corpus.py 10000 --seed 1 --out bench/.cache/corpus-10000.db

Sentences are real Japanese, harvested once from the HTML of Debian documentation packages
(fetched with ``apt-get download`` into ``bench/.cache/debs``, extracted, stripped of markup,
split at 。 and kept when mostly Japanese). The harvested text is cached in
``bench/.cache/sentences.txt`` and never committed.

Entries form topical clusters. The sentences keep their document order, so a window of
consecutive sentences is about one thing (one manual page, one help topic). Each cluster is
such a window plus a made-up katakana name; an entry of the cluster takes most of its sentences
from the window and the rest from anywhere, which gives it the everyday words that all real
blogs share. Body length is 1,500-3,000 characters, in <p> paragraphs.

The same N and seed give the same database byte for byte on the same harvested sentences (the
package versions are recorded next to them, in ``bench/.cache/sentences.sources``).
"""

from __future__ import annotations

import argparse
import html
import random
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"
PACKAGES = (
    "debian-reference-ja",
    "developers-reference-ja",
    "debian-edu-doc-ja",
    "gimp-help-ja",
    "libreoffice-help-ja",
)
SENTENCES = CACHE / "sentences.txt"
SOURCES = CACHE / "sentences.sources"

CLUSTER_SIZE = 40  # entries per topical cluster, on average
WINDOW = 120  # consecutive sentences forming one cluster's topic
TOPICAL_SHARE = 0.7  # share of an entry's sentences taken from its cluster's window

_JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
_SCRIPT_STYLE = re.compile(r"(?is)<(script|style)\b[^>]*>.*?</\1\s*>")
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_KATAKANA = (
    "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワン"
)


def harvest(cache: Path = CACHE) -> list[str]:
    """The sentence pool, in document order; downloads and extracts the packages once."""
    sentences_file = cache / SENTENCES.name
    if sentences_file.exists():
        return sentences_file.read_text(encoding="utf-8").splitlines()
    debs, tree = cache / "debs", cache / "tree"
    debs.mkdir(parents=True, exist_ok=True)
    if not any(debs.glob("*.deb")):
        print(f"gen_corpus: apt-get download {' '.join(PACKAGES)}", file=sys.stderr, flush=True)
        subprocess.run(["apt-get", "download", *PACKAGES], cwd=debs, check=True)
    versions = []
    for deb in sorted(debs.glob("*.deb")):
        target = tree / deb.name.split("_")[0]
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)
        versions.append(deb.name)
    sentences: list[str] = []
    seen: set[str] = set()
    for page in sorted(tree.rglob("*.htm*")):
        for sentence in page_sentences(page.read_text(encoding="utf-8", errors="ignore")):
            if sentence not in seen:
                seen.add(sentence)
                sentences.append(sentence)
    if not sentences:
        raise SystemExit(f"gen_corpus: no Japanese sentences found under {tree}")
    sentences_file.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    (cache / SOURCES.name).write_text("\n".join(versions) + "\n", encoding="utf-8")
    return sentences


def page_sentences(page: str) -> list[str]:
    text = _SPACE.sub(" ", html.unescape(_TAG.sub(" ", _SCRIPT_STYLE.sub(" ", page))))
    kept = []
    for part in text.split("。")[:-1]:
        sentence = part.strip() + "。"
        if 15 <= len(sentence) <= 200 and len(_JAPANESE.findall(sentence)) >= len(sentence) / 2:
            kept.append(sentence)
    return kept


def katakana_name(rng: random.Random) -> str:
    return "".join(rng.choice(_KATAKANA) for _ in range(rng.randint(3, 5)))


def generate(n: int, *, seed: int, sentences: list[str]) -> list[tuple[int, str, str]]:
    """(id, title, body) for n entries; pure function of its arguments."""
    rng = random.Random(seed)
    pool = len(sentences)
    clusters = max(1, round(n / CLUSTER_SIZE))
    topics = [
        (rng.randrange(max(1, pool - WINDOW)), katakana_name(rng), katakana_name(rng))
        for _ in range(clusters)
    ]
    entries = []
    for entry_id in range(1, n + 1):
        start, name, other = topics[rng.randrange(clusters)]
        target = rng.randint(1500, 3000)
        paragraphs, paragraph, length = [], [], 0
        while length < target:
            if rng.random() < TOPICAL_SHARE:
                sentence = sentences[start + rng.randrange(min(WINDOW, pool))]
            else:
                sentence = sentences[rng.randrange(pool)]
            if rng.random() < 0.05:
                sentence = f"{rng.choice((name, other))}では{sentence}"
            paragraph.append(sentence)
            length += len(sentence)
            if len(paragraph) >= rng.randint(3, 6):
                paragraphs.append("<p>" + "".join(paragraph) + "</p>")
                paragraph = []
        if paragraph:
            paragraphs.append("<p>" + "".join(paragraph) + "</p>")
        first = sentences[start + rng.randrange(min(WINDOW, pool))]
        title = f"{name}: {first[:24].rstrip('。')}"
        entries.append((entry_id, title, "\n".join(paragraphs)))
    return entries


def write_sqlite(path: Path, entries: list[tuple[int, str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE entries (id INTEGER PRIMARY KEY, title TEXT, body TEXT)")
        conn.executemany("INSERT INTO entries VALUES (?, ?, ?)", entries)
    conn.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", type=int, help="number of entries")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--out", type=Path, help="SQLite file (default bench/.cache/corpus-N-sS.db)"
    )
    args = parser.parse_args(argv)
    out = args.out or CACHE / f"corpus-{args.n}-s{args.seed}.db"
    entries = generate(args.n, seed=args.seed, sentences=harvest())
    write_sqlite(out, entries)
    chars = sum(len(body) for _, _, body in entries)
    print(f"{out}: {len(entries)} entries, {chars / max(1, len(entries)):.0f} chars each")


if __name__ == "__main__":
    main()
