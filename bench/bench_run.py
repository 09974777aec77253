"""Benchmark: sizes x stages (tokenize, vectorize, neighbours) against baselines run alongside.

    python bench/bench_run.py                        # 3k and 10k entries, 3 runs each
    python bench/bench_run.py --sizes 30000 100000 --runs 3

Each size uses the corpus of bench/gen_corpus.py (made on first use) read through related's own
SQLite reader. Every case is run ``--runs`` times, interleaved with its baselines so that a busy
machine slows both alike, and the table shows medians and the ratio to the baseline measured in
the same run. Neighbour cases run in a fresh process each, so the peak RSS shown is that case's
own (``+MB`` is its growth above the loaded matrix). Results also go to bench/results/.

Baselines:
  tokenize    the MeCab command-line tool (``mecab`` from Debian's mecab package) with
              unidic-lite's dictionary, on the same cleaned text; per-core rate from CPU time.
              Without the binary, mecab-python3's ``Tagger.parse`` stands in.
  vectorize   scikit-learn's DictVectorizer + TfidfTransformer (same formula), when installed.
  neighbours  sparse_dot_topn's ``sp_matmul_topn`` with 2 threads, exact top-k.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import gen_corpus  # noqa: E402

from related.config import (  # noqa: E402
    Settings,
    SourceSettings,
    TokenizerSettings,
    VectorSettings,
)
from related.db import connect  # noqa: E402
from related.neighbours import top_k_neighbours  # noqa: E402
from related.pipeline import vectorize_entries  # noqa: E402
from related.text import clean_text  # noqa: E402
from related.tokenize import Tokenizer, dictionary_dir, tokenize_entries  # noqa: E402
from related.vectorize import build_tfidf  # noqa: E402

RESULTS = BENCH / "results"
TOP_K = 10


@dataclass
class Case:
    stage: str
    name: str
    baseline: str | None = None  # name of the case this one is compared with
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)
    extra_mb: list[float] = field(default_factory=list)
    note: str = ""


def cpu_seconds() -> float:
    own, children = (
        resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(case: Case, fn):
    cpu, wall = cpu_seconds(), time.perf_counter()
    result = fn()
    case.wall.append(time.perf_counter() - wall)
    case.cpu.append(cpu_seconds() - cpu)
    return result


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the
    parent across fork and exec, so a child would report its parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- tokenize ----------------------------------------------------------------------------------


def mecab_command() -> list[str] | None:
    binary = shutil.which("mecab")
    if binary is None:
        return None
    dicdir = dictionary_dir()
    return [binary, "-r", f"{dicdir}/mecabrc", "-d", dicdir, "-o", "/dev/null"]


def write_halves(texts: list[str], workdir: Path) -> list[Path]:
    """The texts, one per line, in two files of half the texts each (the CLI x2 baseline)."""
    halves = [workdir / "half0.txt", workdir / "half1.txt"]
    middle = len(texts) // 2
    for path, part in zip(halves, (texts[:middle], texts[middle:]), strict=True):
        path.write_text("\n".join(part) + "\n", encoding="utf-8")
    return halves


def run_side_by_side(command: list[str], files: list[Path]) -> None:
    """``command FILE`` for every file at once, one process each; fails if any fails."""
    processes = [subprocess.Popen([*command, str(path)]) for path in files]
    if any([p.wait() for p in processes]):
        sys.exit(f"{command[0]} failed")


def bench_tokenize(entries, runs: int, workers: int, workdir: Path) -> tuple[list[Case], list]:
    settings = TokenizerSettings()
    texts = [clean_text(t) for e in entries for t in (e.title, e.body)]
    text_file = workdir / "clean.txt"
    text_file.write_text("\n".join(texts) + "\n", encoding="utf-8")
    halves = write_halves(texts, workdir)
    megabytes = text_file.stat().st_size / 1e6

    command = mecab_command()
    cases: dict[str, Case] = {}
    base = "mecab CLI" if command else "Tagger.parse"
    if command:
        cases["mecab CLI"] = Case("tokenize", "mecab CLI", note="1 process")
        cases["mecab CLI x2"] = Case("tokenize", "mecab CLI x2", note="2 processes, wall")
    cases["Tagger.parse"] = Case("tokenize", "Tagger.parse", base, note="no noun extraction")
    cases["ours nouns"] = Case(
        "tokenize", "ours nouns", base, note="same cleaned text, no cleaning"
    )
    cases["ours serial"] = Case("tokenize", "ours serial", base, note="clean + nouns + counts")
    cases[f"ours workers={workers}"] = Case(
        "tokenize", f"ours workers={workers}", "ours serial", note="wall vs serial wall"
    )

    import MeCab

    dicdir = dictionary_dir()
    counts = None
    for _ in range(runs):
        if command:
            timed(
                cases["mecab CLI"], lambda: subprocess.run([*command, str(text_file)], check=True)
            )

            timed(cases["mecab CLI x2"], lambda: run_side_by_side(command, halves))
        tagger = MeCab.Tagger(f'-r "{dicdir}/mecabrc" -d "{dicdir}"')
        timed(cases["Tagger.parse"], lambda t=tagger: [t.parse(x) for x in texts])
        nouns = Tokenizer(settings)
        timed(cases["ours nouns"], lambda t=nouns: [t.term_counts(x) for x in texts])
        timed(cases["ours serial"], lambda: tokenize_entries(entries, settings))
        counts = timed(
            cases[f"ours workers={workers}"],
            lambda: tokenize_entries(entries, settings, workers=workers),
        )
    for case in cases.values():
        case.peak_mb.append(peak_rss_mb())
    parallel = cases[f"ours workers={workers}"]
    if command:
        cli_rate = median(cases["mecab CLI x2"].wall) / median(parallel.wall)
        parallel.note += f"; {cli_rate:.2f}x the speed of mecab CLI x2"
    result = list(cases.values())
    for case in result:
        case.note += f"; {megabytes:.1f} MB text"
    return result, counts


# -- vectorize ---------------------------------------------------------------------------------


def bench_vectorize(counts, runs: int) -> tuple[list[Case], sp.csr_matrix]:
    ours = Case("vectorize", "ours build_tfidf", note="count + weight + normalise")
    cases = [ours]
    try:
        from sklearn.feature_extraction import DictVectorizer
        from sklearn.feature_extraction.text import TfidfTransformer

        reference = Case("vectorize", "sklearn Dict+Tfidf", note="same formula")
        cases.insert(0, reference)
        ours.baseline = reference.name
    except ImportError:
        reference = None
    tfidf = None
    for _ in range(runs):
        if reference is not None:
            timed(
                reference,
                lambda: TfidfTransformer(sublinear_tf=True).fit_transform(
                    DictVectorizer().fit_transform(counts)
                ),
            )
        tfidf = timed(ours, lambda: build_tfidf(counts, VectorSettings()))
    ours.note += f"; {len(tfidf.terms)} terms, nnz {tfidf.nnz}"
    for case in cases:
        case.peak_mb.append(peak_rss_mb())
    return cases, tfidf.matrix


# -- neighbours (each case in its own process) -------------------------------------------------


NEIGHBOUR_CASES = ("sparse_dot_topn 2 threads", "ours exact", "ours pruned")


def default_run_matrix(corpus: Path, workers: int) -> sp.csr_matrix:
    """`related run`'s TF-IDF matrix with default settings (`pipeline.vectorize_entries`)."""
    settings = dataclasses.replace(
        Settings(), run=dataclasses.replace(Settings().run, workers=workers)
    )
    with connect(f"sqlite:///{corpus}") as db:
        entries = db.read_entries(SourceSettings())
    return vectorize_entries(entries, settings).matrix.tocsr()


def neighbour_case(name: str, matrix_path: str, out_path: str, workers: str) -> None:
    """Child process: load the matrix, run one case, save pairs and measurements."""
    matrix = sp.load_npz(matrix_path).tocsr()
    start_mb = peak_rss_mb()
    cpu, wall = cpu_seconds(), time.perf_counter()
    if name == "sparse_dot_topn 2 threads":
        source, target = sparse_dot_topn_pairs(matrix, threads=2)
    else:
        mode = name.split()[-1]
        found = top_k_neighbours(matrix, top_k=TOP_K, mode=mode, workers=int(workers))
        source, target = found.source, found.target
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    np.savez(out_path, source=source, target=target)
    Path(out_path + ".json").write_text(
        json.dumps({"wall": wall, "cpu": cpu, "peak": peak_rss_mb(), "start": start_mb})
    )


def sparse_dot_topn_pairs(matrix: sp.csr_matrix, *, threads: int):
    """Exact top-k with sparse_dot_topn: k + 1 per row, self dropped, ties by index asc."""
    from sparse_dot_topn import sp_matmul_topn

    best = sp_matmul_topn(matrix, matrix.T.tocsr(), top_n=TOP_K + 1, n_threads=threads).tocoo()
    keep = best.row != best.col
    row, col, score = best.row[keep], best.col[keep], best.data[keep]
    order = np.lexsort((col, -score, row))
    row, col = row[order], col[order]
    rank = np.arange(len(row)) - np.searchsorted(row, row)
    return row[rank < TOP_K].astype(np.int64), col[rank < TOP_K].astype(np.int64)


def bench_neighbours(matrix: sp.csr_matrix, runs: int, workers: int, workdir: Path) -> list[Case]:
    matrix_path = workdir / "tfidf.npz"
    sp.save_npz(matrix_path, matrix)
    try:
        import sparse_dot_topn  # noqa: F401

        names = NEIGHBOUR_CASES
        baseline = NEIGHBOUR_CASES[0]
    except ImportError:
        names, baseline = NEIGHBOUR_CASES[1:], "ours exact"
    cases = {
        name: Case("neighbours", name, None if name == baseline else baseline) for name in names
    }
    pairs = {}
    for _ in range(runs):
        for name in names:
            out = str(workdir / f"pairs-{names.index(name)}.npz")
            subprocess.run(
                [
                    *(sys.executable, __file__, "--neighbour-case"),
                    *(name, str(matrix_path), out, str(workers)),
                ],
                check=True,
            )
            measured = json.loads(Path(out + ".json").read_text())
            case = cases[name]
            case.wall.append(measured["wall"])
            case.cpu.append(measured["cpu"])
            case.peak_mb.append(measured["peak"])
            case.extra_mb.append(measured["peak"] - measured["start"])
            with np.load(out) as saved:
                pairs[name] = set(
                    zip(saved["source"].tolist(), saved["target"].tolist(), strict=True)
                )
    exact = pairs["ours exact"]
    for name, found in pairs.items():
        if name == "ours exact":
            continue
        recall = len(found & exact) / max(1, len(exact))
        same = "identical pairs" if found == exact else f"recall@{TOP_K} {recall:.4f}"
        cases[name].note = f"vs ours exact: {same}"
    cases["ours exact"].note = f"{len(exact)} pairs, top_k={TOP_K}, workers={workers}"
    return list(cases.values())


# -- tokenise + weight memory (each path in its own process) -----------------------------------


MEMORY_CASES = ("Counters + build_tfidf", "count_entries + tfidf_from_counts")


def memory_case(name: str, corpus: str, out_path: str, workers: str) -> None:
    """Child process: read the entries, tokenise and weight them one way, report VmHWM."""
    from related.token_cache import count_entries
    from related.vectorize import tfidf_from_counts

    with connect(f"sqlite:///{corpus}") as db:
        entries = db.read_entries(SourceSettings()).items
    start_mb = peak_rss_mb()
    cpu, wall = cpu_seconds(), time.perf_counter()
    if name == MEMORY_CASES[0]:
        counts = tokenize_entries(entries, TokenizerSettings(), workers=int(workers))
        build_tfidf(counts, VectorSettings())
    else:
        matrix, terms = count_entries(entries, TokenizerSettings(), workers=int(workers))
        tfidf_from_counts(matrix, terms, VectorSettings())
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    Path(out_path).write_text(
        json.dumps({"wall": wall, "cpu": cpu, "peak": peak_rss_mb(), "start": start_mb})
    )


def bench_memory(corpus: Path, workers: int, workdir: Path) -> list[Case]:
    cases = []
    for name in MEMORY_CASES:
        out = workdir / "memory.json"
        subprocess.run(
            [sys.executable, __file__, "--memory-case", name, str(corpus), str(out), str(workers)],
            check=True,
        )
        measured = json.loads(out.read_text())
        case = Case("tokenize+weight", name, note=f"workers={workers}; +MB over the entries read")
        case.wall.append(measured["wall"])
        case.cpu.append(measured["cpu"])
        case.peak_mb.append(measured["peak"])
        case.extra_mb.append(measured["peak"] - measured["start"])
        cases.append(case)
    return cases


# -- report ------------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(rows: list[tuple[int, Case]]) -> str:
    lines = [
        "| entries | stage | case | wall s | CPU s | x baseline | peak RSS MB | +MB | notes |",
        "|---:|---|---|---:|---:|---:|---:|---:|---|",
    ]
    by_name = {(n, c.stage, c.name): c for n, c in rows}
    for n, case in rows:
        ratio = ""
        if case.baseline:
            base = by_name[(n, case.stage, case.baseline)]
            if (
                case.stage == "tokenize"
                and case.name != case.baseline
                and "workers" not in case.name
            ):
                # per-core throughput: baseline CPU seconds / ours, on the same text
                ratio = f"{median(base.cpu) / median(case.cpu):.2f} (CPU)"
            else:
                ratio = f"{median(base.wall) / median(case.wall):.2f}"
        extra = f"{median(case.extra_mb):.0f}" if case.extra_mb else ""
        lines.append(
            f"| {n} | {case.stage} | {case.name} | {median(case.wall):.2f} | "
            f"{median(case.cpu):.2f} | {ratio} | {median(case.peak_mb):.0f} | {extra} | "
            f"{case.note} |"
        )
    return "\n".join(lines)


def growth(rows: list[tuple[int, Case]]) -> str:
    """Fitted exponent b of wall = a * N^b per case, over the sizes measured."""
    series: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for n, case in rows:
        series.setdefault((case.stage, case.name), []).append((n, median(case.wall)))
    out = []
    for (stage, name), points in series.items():
        if len(points) >= 2:
            x, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
            out.append(f"{stage} / {name}: N^{np.polyfit(x, y, 1)[0]:.2f}")
    return "\n".join(f"- {line}" for line in out)


def environment() -> str:
    import MeCab  # noqa: F401
    import scipy

    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = [f"Python {platform.python_version()}", f"numpy {np.__version__}"]
    versions.append(f"scipy {scipy.__version__}")
    for package in ("mecab-python3", "unidic-lite", "sparse-dot-topn", "scikit-learn"):
        try:
            from importlib.metadata import version

            versions.append(f"{package} {version(package)}")
        except Exception:
            pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"- CPU: {cpu_model}, {os.cpu_count()} cores; load average at start {load}\n"
        f"- {'; '.join(versions)}\n"
        f"- OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}\n"
        f"- corpus: bench/gen_corpus.py, seed given below; sentences from "
        f"{', '.join(gen_corpus.PACKAGES)}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3000, 10000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--stages",
        default="tokenize,vectorize,neighbours",
        help="comma-separated: tokenize, vectorize, neighbours, memory (tokenise + weight peak "
        "RSS, Counters vs count_entries; not in the default)",
    )
    parser.add_argument("--neighbour-case", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--memory-case", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.neighbour_case:
        neighbour_case(*args.neighbour_case)
        return
    if args.memory_case:
        memory_case(*args.memory_case)
        return
    stages = set(args.stages.split(","))
    header = environment()
    print(header, flush=True)
    rows: list[tuple[int, Case]] = []
    sentences = gen_corpus.harvest()
    with tempfile.TemporaryDirectory(prefix="related-bench-") as tmp:
        workdir = Path(tmp)
        for n in args.sizes:
            corpus = gen_corpus.CACHE / f"corpus-{n}-s{args.seed}.db"
            if not corpus.exists():
                gen_corpus.write_sqlite(
                    corpus, gen_corpus.generate(n, seed=args.seed, sentences=sentences)
                )
            with connect(f"sqlite:///{corpus}") as db:
                entries = db.read_entries(SourceSettings()).items
            # The neighbour cases search the matrix `related run` builds with default settings
            # (title vector included), so recall is measured for what users get.
            run_matrix = gen_corpus.CACHE / f"run-tfidf-{n}-s{args.seed}.npz"
            counts = None
            if "tokenize" in stages:
                cases, counts = bench_tokenize(entries, args.runs, args.workers, workdir)
                rows += [(n, c) for c in cases]
            if "vectorize" in stages:
                if counts is None:
                    counts = tokenize_entries(entries, TokenizerSettings(), workers=args.workers)
                cases, matrix = bench_vectorize(counts, args.runs)
                rows += [(n, c) for c in cases]
            if "memory" in stages:
                rows += [(n, c) for c in bench_memory(corpus, args.workers, workdir)]
            if "neighbours" in stages:
                if not run_matrix.exists():
                    sp.save_npz(run_matrix, default_run_matrix(corpus, args.workers))
                matrix = sp.load_npz(run_matrix).tocsr()
                rows += [(n, c) for c in bench_neighbours(matrix, args.runs, args.workers, workdir)]
            print(table([r for r in rows if r[0] == n]), file=sys.stderr, flush=True)
    report = (
        f"{header}\n- command: python bench/bench_run.py {' '.join(argv or sys.argv[1:])}\n\n"
        f"{table(rows)}\n\nGrowth (fitted over the sizes above):\n{growth(rows)}\n"
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / time.strftime("bench-%Y%m%d-%H%M%S.md")
    out.write_text(report, encoding="utf-8")
    print(f"\n{report}\nwritten to {out}")


if __name__ == "__main__":
    main()
