"""Ranking-quality benchmark on manpages-ja: the default pipeline against three baselines.

    python bench/quality/run.py                          # default pipeline + baselines
    python bench/quality/run.py --experiments            # + the experiments table (experiments.py)
    python bench/quality/run.py --corpus libreoffice     # the same table on a second corpus

Steps: fetch and render Debian's manpages-ja (manpages.py, cached under bench/.cache/quality),
load the pages into SQLite as entries(id, title, body), run the job through the library
(related.pipeline.run_job with default Settings), read the stored rows back, and score them and
the baselines (methods.py) with related.evaluate against the SEE ALSO truth. Prints a table and
writes bench/results/quality-<timestamp>.json. ``--corpus libreoffice`` does the same with
Debian's libreoffice-help-ja and its 関連項目 links (libreoffice.py, cached under
bench/.cache/quality/libreoffice-help-ja, results in quality-libreoffice-<timestamp>.json), to
check that what wins on man pages is not tuned to them. See README.md next to this file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import libreoffice  # noqa: E402
import manpages  # noqa: E402
import methods  # noqa: E402

from related.config import Settings, TokenizerSettings, VectorSettings  # noqa: E402
from related.entries import Entries, Entry  # noqa: E402
from related.evaluate import Evaluation, evaluate, format_table, rankings_from_rows  # noqa: E402
from related.pipeline import compute_related, run_job  # noqa: E402

# The defaults before the title vector (README, Ranking quality), for comparison: the title's
# terms counted 3 times inside the body vector, no separate title vector.
PREVIOUS_DEFAULT = "related, previous default (title_weight 3, title_share 0)"

BENCH = HERE.parent
DEFAULT_CACHE = BENCH / ".cache" / "quality"
DEFAULT_RESULTS = BENCH / "results"


@dataclass(frozen=True)
class Corpus:
    """A corpus module (load_pages, package_version, corpus_fingerprint, PACKAGE) and where its
    data lives."""

    module: ModuleType
    cache: str  # subdirectory of --cache; "" = --cache itself (manpages-ja, as it always was)
    links: str  # what its truth links are called, for the summary line


CORPORA = {
    "manpages": Corpus(manpages, "", "SEE ALSO"),
    "libreoffice": Corpus(libreoffice, "libreoffice-help-ja", "関連項目"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="download/render cache")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="JSON output dir")
    parser.add_argument("--experiments", action="store_true", help="also run experiments.py")
    parser.add_argument(
        "--corpus", choices=sorted(CORPORA), default="manpages", help="corpus with curated links"
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    corpus = CORPORA[args.corpus]
    source = corpus.module
    cache = args.cache / corpus.cache if corpus.cache else args.cache
    pages = source.load_pages(cache)
    truth = {p.id: p.links for p in pages}
    judged = [p for p in pages if p.links]
    fingerprint = source.corpus_fingerprint(pages)
    print(
        f"{source.PACKAGE} {source.package_version(cache)}: {len(pages)} pages, "
        f"{len(judged)} with >= 1 resolved {corpus.links} link "
        f"({sum(len(p.links) for p in judged)} links); corpus {fingerprint}",
        file=sys.stderr,
    )
    (cache / "truth.json").write_text(
        json.dumps({str(p.id): list(p.links) for p in judged}), encoding="utf-8"
    )

    database = cache / f"{source.PACKAGE}.db"
    load_entries(database, pages)
    seconds: dict[str, float] = {}
    evaluations: dict[str, Evaluation] = {}

    clock = time.perf_counter()
    report = run_job(Settings(database_url=f"sqlite:///{database}"))
    seconds["default"] = time.perf_counter() - clock
    evaluations["default (related run)"] = evaluate(stored_rankings(database), truth)

    tagged = methods.tag_corpus(pages, cache, fingerprint)
    baselines = {
        "replaced job": lambda: methods.old_job(tagged),
        "sklearn TfidfVectorizer, MeCab surface": lambda: methods.sklearn_words(tagged),
        "char bigram TF-IDF, NFKC": lambda: methods.char_bigrams(pages),
    }
    for name, method in baselines.items():
        clock = time.perf_counter()
        evaluations[name] = evaluate(method(), truth)
        seconds[name] = time.perf_counter() - clock

    clock = time.perf_counter()
    entries = Entries(tuple(Entry(p.id, p.title, p.body) for p in pages), "INTEGER")
    previous = Settings(
        tokenizer=TokenizerSettings(title_weight=3.0), vectors=VectorSettings(title_share=0.0)
    )
    related = compute_related(entries, previous)
    evaluations[PREVIOUS_DEFAULT] = evaluate(rankings_from_rows(related.rows), truth)
    seconds[PREVIOUS_DEFAULT] = time.perf_counter() - clock

    print(format_table(evaluations))
    default, old = evaluations["default (related run)"], evaluations["replaced job"]
    ratio = default.ndcg_at_10 / old.ndcg_at_10 if old.ndcg_at_10 else float("nan")
    losses = [
        f"{metric} vs {name}"
        for name, e in evaluations.items()
        if name in baselines
        for metric in ("ndcg_at_10", "recall_at_10", "precision_at_5", "mrr_at_10", "coverage")
        if getattr(default, metric) < getattr(e, metric)
    ]
    print(f"\ndefault nDCG@10 / replaced job's: {ratio:.3f} (goal >= 1.15)")
    previous_ratio = evaluations[PREVIOUS_DEFAULT].ndcg_at_10 / old.ndcg_at_10
    print(f"previous default nDCG@10 / replaced job's: {previous_ratio:.3f}")
    print("default loses on: " + (", ".join(losses) if losses else "nothing"))

    experiments = None
    if args.experiments:
        import experiments as exp

        experiments = exp.run_all(pages, tagged, truth, baseline=old)

    args.results.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    prefix = "quality" if args.corpus == "manpages" else f"quality-{args.corpus}"
    output = args.results / f"{prefix}-{stamp}.json"
    payload = {
        "corpus": {
            "package": f"{source.PACKAGE} {source.package_version(cache)}",
            "pages": len(pages),
            "judged_entries": len(judged),
            "links": sum(len(p.links) for p in judged),
            "fingerprint": fingerprint,
            "terms": report.terms,
            "nnz": report.nnz,
        },
        "settings": asdict(Settings()),
        "metrics": {name: e.to_dict() for name, e in evaluations.items()},
        "ndcg_ratio_to_replaced_job": ratio,
        "previous_default_ndcg_ratio_to_replaced_job": previous_ratio,
        "default_loses_on": losses,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "experiments": experiments,
        "environment": environment(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    output.write_text(json.dumps(payload, ensure_ascii=False, indent=2, default=str) + "\n")
    print(f"\nwrote {output}", file=sys.stderr)
    return 0


def load_entries(database: Path, pages: list[manpages.Page]) -> None:
    """(Re)create entries(id, title, body); the job's results table is replaced by the run."""
    with sqlite3.connect(database) as conn:
        conn.execute("DROP TABLE IF EXISTS entries")
        conn.execute("CREATE TABLE entries (id INTEGER PRIMARY KEY, title TEXT, body TEXT)")
        conn.executemany(
            "INSERT INTO entries VALUES (?, ?, ?)", [(p.id, p.title, p.body) for p in pages]
        )
    conn.close()


def stored_rankings(database: Path) -> dict[int, list[int]]:
    with sqlite3.connect(database) as conn:
        rows = conn.execute(
            "SELECT entry_id, related_entry_id, score, rank FROM related_entries"
        ).fetchall()
    conn.close()
    return rankings_from_rows(rows)


def environment() -> dict[str, str]:
    versions = {
        name: _version(name)
        for name in ("related", "mecab-python3", "unidic-lite", "numpy", "scipy", "scikit-learn")
    }
    groff = subprocess.run(["groff", "--version"], capture_output=True, text=True, check=False)
    return {
        **versions,
        "python": platform.python_version(),
        "groff": groff.stdout.split("\n", 1)[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
    }


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    raise SystemExit(main())
