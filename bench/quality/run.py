"""Ranking-quality benchmark on manpages-ja: the default pipeline against three baselines.

    python bench/quality/run.py                  # default pipeline + baselines
    python bench/quality/run.py --experiments    # + the experiments table (experiments.py)

Steps: fetch and render Debian's manpages-ja (manpages.py, cached under bench/.cache/quality),
load the pages into SQLite as entries(id, title, body), run the job through the library
(related.pipeline.run_job with default Settings), read the stored rows back, and score them and
the baselines (methods.py) with related.evaluate against the SEE ALSO truth. Prints a table and
writes bench/results/quality-<timestamp>.json. See README.md next to this file.
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
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import manpages  # noqa: E402
import methods  # noqa: E402

from related.config import Settings, VectorSettings  # noqa: E402
from related.entries import Entries, Entry  # noqa: E402
from related.evaluate import Evaluation, evaluate, format_table, rankings_from_rows  # noqa: E402
from related.pipeline import compute_related, run_job  # noqa: E402

# The candidate default (README, Ranking quality): best of 0.2-0.5 on this corpus.
TITLE_SHARE = 0.3

BENCH = HERE.parent
DEFAULT_CACHE = BENCH / ".cache" / "quality"
DEFAULT_RESULTS = BENCH / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="download/render cache")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="JSON output dir")
    parser.add_argument("--experiments", action="store_true", help="also run experiments.py")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    pages = manpages.load_pages(args.cache)
    truth = {p.id: p.links for p in pages}
    judged = [p for p in pages if p.links]
    print(
        f"manpages-ja {manpages.package_version(args.cache)}: {len(pages)} pages, "
        f"{len(judged)} with >= 1 resolved SEE ALSO link ({sum(len(p.links) for p in judged)} "
        f"links); corpus {manpages.corpus_fingerprint(pages)}",
        file=sys.stderr,
    )
    (args.cache / "truth.json").write_text(
        json.dumps({str(p.id): list(p.links) for p in judged}), encoding="utf-8"
    )

    database = args.cache / "manpages-ja.db"
    load_entries(database, pages)
    seconds: dict[str, float] = {}
    evaluations: dict[str, Evaluation] = {}

    clock = time.perf_counter()
    report = run_job(Settings(database_url=f"sqlite:///{database}"))
    seconds["default"] = time.perf_counter() - clock
    evaluations["default (related run)"] = evaluate(stored_rankings(database), truth)

    tagged = methods.tag_corpus(pages, args.cache, manpages.corpus_fingerprint(pages))
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
    proposal = f"related with title_share={TITLE_SHARE}"
    with_titles = Settings(vectors=VectorSettings(title_share=TITLE_SHARE))
    related = compute_related(entries, with_titles)
    evaluations[proposal] = evaluate(rankings_from_rows(related.rows), truth)
    seconds[proposal] = time.perf_counter() - clock

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
    proposed_ratio = evaluations[proposal].ndcg_at_10 / old.ndcg_at_10
    print(f"proposed nDCG@10 / replaced job's: {proposed_ratio:.3f}")
    print("default loses on: " + (", ".join(losses) if losses else "nothing"))

    experiments = None
    if args.experiments:
        import experiments as exp

        experiments = exp.run_all(pages, tagged, truth, baseline=old)

    args.results.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    output = args.results / f"quality-{stamp}.json"
    payload = {
        "corpus": {
            "package": f"manpages-ja {manpages.package_version(args.cache)}",
            "pages": len(pages),
            "judged_entries": len(judged),
            "links": sum(len(p.links) for p in judged),
            "fingerprint": manpages.corpus_fingerprint(pages),
            "terms": report.terms,
            "nnz": report.nnz,
        },
        "settings": asdict(Settings()),
        "metrics": {name: e.to_dict() for name, e in evaluations.items()},
        "ndcg_ratio_to_replaced_job": ratio,
        "proposed_ndcg_ratio_to_replaced_job": proposed_ratio,
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
