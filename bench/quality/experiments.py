"""Experiments: what each tokenizer / weighting idea does to ranking quality on manpages-ja.

Two kinds of rows:

* ``settings:`` rows run the real pipeline (related.pipeline.compute_related) with other
  Settings: what users can already tune today.
* ``proto:`` rows run a prototype on the MeCab tokens cached by methods.tag_corpus: the term
  extraction of related.tokenize re-implemented with one change (lemma, compounds, ...) and
  the weighting of related.vectorize or a variant (BM25, pruning, LSA). The first prototype row
  re-implements the current defaults and must equal the ``settings: defaults`` row.

Nothing here looks at man-page specifics (sections, name(n), boilerplate lines): every idea
is meant for any Japanese corpus.

    python bench/quality/experiments.py          # prints the table, writes JSON next to run.py's
"""

from __future__ import annotations

import dataclasses
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from manpages import Page  # noqa: E402
from methods import Rankings, Tagged, Token, rankings_from_matrix  # noqa: E402

from related.config import NeighbourSettings, Settings, TokenizerSettings, VectorSettings  # noqa: E402
from related.entries import Entries, Entry  # noqa: E402
from related.evaluate import Evaluation, evaluate, format_table, ndcg, rankings_from_rows  # noqa: E402
from related.pipeline import compute_related  # noqa: E402
from related.text import clean_text  # noqa: E402
from related.tokenize import ENGLISH_STOP_WORDS, normalise_term  # noqa: E402
from related.vectorize import build_tfidf, l2_normalise_rows  # noqa: E402

# A generic list of Japanese "formal" nouns and other nouns that say nothing about a topic.
# Not taken from the benchmark corpus: these are the usual function-like nouns of any text.
JAPANESE_STOP_NOUNS = frozenset(
    """こと もの ため よう とき 場合 ところ 方 点 他 ほか 前 後 中 上 下 間 際 等 など 以下 以上
    以外 全て すべて 次 同じ それぞれ 各 場所 部分 通り 的 際 目 側 形 数 今 度 何 誰 自分
    これ それ あれ どれ ここ そこ どこ 本 当 該 的""".split()
)
COMPOUND_POS = ("名詞-普通名詞", "名詞-固有名詞", "接頭辞", "接尾辞-名詞的")


@dataclass(frozen=True)
class Variant:
    """One prototype: term extraction + weighting. Defaults re-implement related today."""

    form: str = "surface"  # "surface" | "lemma"
    keep_pos: tuple[str, ...] = ("名詞",)
    drop_pos: tuple[str, ...] = ("名詞-数詞",)
    extra_lemma_pos: tuple[str, ...] = ()  # e.g. ("動詞-一般", "形容詞-一般"): add their lemmas
    compounds: str = "none"  # "none" | "add" (parts + compound) | "replace" (compound only)
    stop_words: frozenset[str] = field(default_factory=frozenset)
    title_weight: float = 3.0
    weighting: str = "tfidf"  # "tfidf" (related.vectorize) | "bm25"
    sublinear_tf: bool = True
    min_df: int = 1
    max_df: float = 1.0
    idf_power: float = 1.0  # w = tf * idf ** idf_power
    k1: float = 1.2
    b: float = 0.75
    title_share: float = 0.0  # add the L2-normalised title vector times this, then L2 again
    identifiers: bool = False  # add whole code identifiers (ssh-keygen, sudo_plugin, a.b)
    top_terms: int | None = None  # keep each entry's strongest terms only
    lsa_weight: float = 0.0  # blend cosine with a rank-``lsa_rank`` LSA cosine
    lsa_rank: int = 200


# ---------------------------------------------------------------------------------------------
# Terms


def field_terms(tokens: Sequence[Token], v: Variant) -> list[str]:
    stop = ENGLISH_STOP_WORDS | v.stop_words
    terms: list[str] = []
    run: list[str] = []

    def close_run() -> None:
        if len(run) >= 2 and v.compounds != "none":
            compound = normalise_term("".join(run))
            if compound and compound not in stop:
                terms.append(compound)
        run.clear()

    for surface, lemma, pos in tokens:
        kept = pos.startswith(v.keep_pos) and not pos.startswith(v.drop_pos)
        extra = bool(v.extra_lemma_pos) and pos.startswith(v.extra_lemma_pos)
        if v.compounds != "none":
            if pos.startswith(COMPOUND_POS) and not pos.startswith(v.drop_pos):
                run.append(surface)
            else:
                close_run()
            if v.compounds == "replace" and pos.startswith(COMPOUND_POS):
                # parts of a run of 2+ are replaced by the compound; lone nouns stay below
                continue
        if kept:
            word = _lemma(lemma) if v.form == "lemma" else surface
        elif extra:
            word = _lemma(lemma)
        else:
            continue
        term = normalise_term(word)
        if term and term not in stop:
            terms.append(term)
    close_run()
    if v.compounds == "replace":
        terms.extend(_lone_nouns(tokens, v, stop))
    return terms


def _lone_nouns(tokens: Sequence[Token], v: Variant, stop: frozenset[str]) -> list[str]:
    """With compounds="replace": compound-POS tokens that are not part of a run of two or more."""
    out = []
    for i, (surface, lemma, pos) in enumerate(tokens):
        if not pos.startswith(COMPOUND_POS) or pos.startswith(v.drop_pos):
            continue
        before = i > 0 and tokens[i - 1][2].startswith(COMPOUND_POS)
        after = i + 1 < len(tokens) and tokens[i + 1][2].startswith(COMPOUND_POS)
        if before or after or not pos.startswith(v.keep_pos):
            continue
        term = normalise_term(_lemma(lemma) if v.form == "lemma" else surface)
        if term and term not in stop:
            out.append(term)
    return out


def _lemma(lemma: str) -> str:
    """UniDic lemmas of loanwords carry their origin: "ファイル-file" -> "ファイル"."""
    head, sep, tail = lemma.partition("-")
    return head if sep and head and tail.isascii() else lemma


def term_counts(tagged: Sequence[Tagged], v: Variant) -> list[Counter[str]]:
    result = []
    for t in tagged:
        counts: Counter[str] = Counter(field_terms(t.body, v))
        title = Counter(field_terms(t.title, v))
        if v.identifiers:
            counts.update(identifiers(t.body_text))
            title.update(identifiers(t.title_text))
        if v.title_weight:
            for term, n in title.items():
                counts[term] += n * v.title_weight
        result.append(counts)
    return result


# ---------------------------------------------------------------------------------------------
# Weighting and ranking


@dataclass(frozen=True)
class Weighted:
    matrix: sp.csr_matrix  # L2-normalised rows
    column: dict[str, int]
    idf: np.ndarray  # the factor applied per column (idf ** idf_power)


def weigh(counts: list[Counter[str]], v: Variant) -> Weighted:
    """Prune by df like related.vectorize, then tf-idf (same formula) or BM25, then L2."""
    kept = build_tfidf(counts, VectorSettings(min_df=v.min_df, max_df=v.max_df))
    column = {term: i for i, term in enumerate(kept.terms)}
    raw = _raw_counts(counts, column)
    n_entries = raw.shape[0]
    df = np.bincount(raw.indices, minlength=raw.shape[1])
    if v.weighting == "bm25":
        idf = np.log(1 + (n_entries - df + 0.5) / (df + 0.5))
        lengths = np.asarray(raw.sum(axis=1)).ravel()
        per_row = np.repeat(lengths / lengths[lengths > 0].mean(), np.diff(raw.indptr))
        c = raw.data
        raw.data = c * (v.k1 + 1) / (c + v.k1 * (1 - v.b + v.b * per_row))
    else:
        idf = np.log((1.0 + n_entries) / (1.0 + df)) + 1.0
        _tf(raw, v)
    factor = idf**v.idf_power
    raw.data *= factor[raw.indices]
    l2_normalise_rows(raw)
    return Weighted(raw, column, factor)


def _raw_counts(counts: Sequence[Mapping[str, float]], column: Mapping[str, int]) -> sp.csr_matrix:
    rows, cols, data = [], [], []
    for r, c in enumerate(counts):
        for term, n in c.items():
            if term in column:
                rows.append(r)
                cols.append(column[term])
                data.append(float(n))
    return sp.csr_matrix((data, (rows, cols)), shape=(len(counts), len(column)))


def _tf(raw: sp.csr_matrix, v: Variant) -> None:
    if v.sublinear_tf:
        big = raw.data >= 1
        raw.data[big] = 1 + np.log(raw.data[big])


def add_title_vectors(weighted: Weighted, tagged: Sequence[Tagged], v: Variant) -> sp.csr_matrix:
    """rows = L2(X + title_share * L2(title tf * idf)): the title keeps a fixed share of every
    entry's vector however long the body is (a title weight multiplies counts, so a long body
    drowns it)."""
    titles = [Counter(field_terms(t.title, v)) for t in tagged]
    if v.identifiers:
        for counts, t in zip(titles, tagged, strict=True):
            counts.update(identifiers(t.title_text))
    title = _raw_counts(titles, weighted.column)
    _tf(title, v)
    title.data *= weighted.idf[title.indices]
    l2_normalise_rows(title)
    combined = (weighted.matrix + v.title_share * title).tocsr()
    l2_normalise_rows(combined)
    return combined


_IDENTIFIER = re.compile(r"(?<![\w./-])[A-Za-z][A-Za-z0-9]*(?:[._-]+[A-Za-z0-9]+)+")


def identifiers(text: str) -> list[str]:
    """Whole code identifiers MeCab would split: ssh-keygen, sudo_plugin, mkfs.ext2."""
    return [m.lower() for m in _IDENTIFIER.findall(clean_text(text))]


def prune_rows(matrix: sp.csr_matrix, keep: int) -> sp.csr_matrix:
    """Keep each row's ``keep`` largest weights, then L2-normalise again."""
    matrix = matrix.tocsr(copy=True)
    for r in range(matrix.shape[0]):
        lo, hi = matrix.indptr[r], matrix.indptr[r + 1]
        if hi - lo > keep:
            row = matrix.data[lo:hi]
            cut = np.partition(row, hi - lo - keep)[hi - lo - keep]
            row[row < cut] = 0.0
    matrix.eliminate_zeros()
    l2_normalise_rows(matrix)
    return matrix


def lsa_blend(matrix: sp.csr_matrix, ids: Sequence[int], weight: float, rank: int) -> Rankings:
    from sklearn.decomposition import TruncatedSVD

    svd = TruncatedSVD(n_components=min(rank, min(matrix.shape) - 1), random_state=0)
    dense = svd.fit_transform(matrix)
    dense /= np.maximum(np.linalg.norm(dense, axis=1, keepdims=True), 1e-12)
    similarity = (1 - weight) * (matrix @ matrix.T).toarray() + weight * dense @ dense.T
    np.fill_diagonal(similarity, -np.inf)
    rankings: Rankings = {}
    for i, row in enumerate(similarity):
        order = np.lexsort((np.arange(len(row)), -row))[:10]
        rankings[ids[i]] = [ids[j] for j in order if row[j] > 0]
    return rankings


def run_variant(tagged: Sequence[Tagged], v: Variant) -> Rankings:
    ids = [t.id for t in tagged]
    weighted = weigh(term_counts(tagged, v), v)
    matrix = weighted.matrix
    if v.title_share:
        matrix = add_title_vectors(weighted, tagged, v)
    if v.top_terms:
        matrix = prune_rows(matrix, v.top_terms)
    if v.lsa_weight:
        return lsa_blend(matrix, ids, v.lsa_weight, v.lsa_rank)
    return rankings_from_matrix(matrix, ids)


# ---------------------------------------------------------------------------------------------
# The table


def settings_runs(pages: Sequence[Page]) -> dict[str, Callable[[], Rankings]]:
    entries = Entries(tuple(Entry(p.id, p.title, p.body) for p in pages), "INTEGER")

    def run(tokenizer: Mapping | None = None, vectors: Mapping | None = None) -> Rankings:
        settings = Settings(
            tokenizer=TokenizerSettings(**(tokenizer or {})),
            vectors=VectorSettings(**(vectors or {})),
            neighbours=NeighbourSettings(top_k=10),
        )
        return rankings_from_rows(compute_related(entries, settings).rows)

    return {
        "settings: defaults": lambda: run(),
        "settings: title_weight=1": lambda: run({"title_weight": 1.0}),
        "settings: title_weight=6": lambda: run({"title_weight": 6.0}),
        "settings: sublinear_tf=false": lambda: run(vectors={"sublinear_tf": False}),
        "settings: min_df=2": lambda: run(vectors={"min_df": 2}),
        "settings: max_df=0.2": lambda: run(vectors={"max_df": 0.2}),
        "settings: keep_pos=普通名詞,固有名詞": lambda: run(
            {"keep_pos": ("名詞-普通名詞", "名詞-固有名詞")}
        ),
        "settings: drop 副詞可能/助数詞可能 nouns": lambda: run(
            {"drop_pos": ("名詞-数詞", "名詞-普通名詞-副詞可能", "名詞-普通名詞-助数詞可能")}
        ),
        "settings: stop_words=Japanese formal nouns": lambda: run(
            {"stop_words": tuple(sorted(JAPANESE_STOP_NOUNS))}
        ),
    }


LEMMA = Variant(form="lemma")
PROTOTYPES: dict[str, Variant] = {
    "proto: re-implemented defaults": Variant(),
    "proto: lemma instead of surface": LEMMA,
    "proto: + verb/adjective lemmas": Variant(extra_lemma_pos=("動詞-一般", "形容詞-一般")),
    "proto: compounds added to parts": Variant(compounds="add"),
    "proto: compounds replace parts": Variant(compounds="replace"),
    "proto: Japanese stop nouns": Variant(stop_words=JAPANESE_STOP_NOUNS),
    "proto: idf squared (tf * idf^2)": Variant(idf_power=2.0),
    "proto: idf^1.5": Variant(idf_power=1.5),
    "proto: BM25 k1=1.2 b=0.75": Variant(weighting="bm25"),
    "proto: BM25 k1=1.2 b=0.3": Variant(weighting="bm25", b=0.3),
    "proto: min_df=2": Variant(min_df=2),
    "proto: max_df=0.1": Variant(max_df=0.1),
    "proto: top 100 terms per entry": Variant(top_terms=100),
    "proto: top 50 terms per entry": Variant(top_terms=50),
    "proto: LSA blend 0.2 (rank 200)": Variant(lsa_weight=0.2),
    "proto: title_weight=2": Variant(title_weight=2.0),
    "proto: title_weight=5": Variant(title_weight=5.0),
    "proto: identifiers kept whole (+parts)": Variant(identifiers=True),
    "proto: title_share=0.2": Variant(title_share=0.2),
    "proto: title_share=0.3": Variant(title_share=0.3),
    "proto: title_share=0.4": Variant(title_share=0.4),
    "proto: title_share=0.5": Variant(title_share=0.5),
    "proto: title_share=0.3, title_weight=1": Variant(title_share=0.3, title_weight=1.0),
    "proto: title_share=0.5, title_weight=0": Variant(title_share=0.5, title_weight=0.0),
    "proto: title_share=0.4 + min_df=2": Variant(title_share=0.4, min_df=2),
    "proto: title_share=0.4 + idf^1.5": Variant(title_share=0.4, idf_power=1.5),
    "proto: title_share=0.4 + identifiers": Variant(title_share=0.4, identifiers=True),
    "proto: title_share=0.4 + compounds added": Variant(title_share=0.4, compounds="add"),
    "proto: title_share=0.4 + lemma": Variant(title_share=0.4, form="lemma"),
    "proto: title_share=0.3 + identifiers": Variant(title_share=0.3, identifiers=True),
    "proto: title_share=0.4 + min_df=2 + identifiers": Variant(
        title_share=0.4, min_df=2, identifiers=True
    ),
    "proto: title_share=0.4 + idf^1.5 + identifiers": Variant(
        title_share=0.4, idf_power=1.5, identifiers=True
    ),
}

RECOMMENDED = Variant(title_share=0.3)


def paired_bootstrap(
    better: Rankings,
    worse: Rankings,
    truth: Mapping[int, Sequence[int]],
    *,
    samples: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Mean per-entry nDCG@10 difference and its 95% bootstrap interval (entries resampled)."""
    judged = [e for e, links in truth.items() if links]
    diff = np.array(
        [ndcg(better.get(e, []), truth[e]) - ndcg(worse.get(e, []), truth[e]) for e in judged]
    )
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(samples, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {
        "mean": float(diff.mean()),
        "ci95_low": float(low),
        "ci95_high": float(high),
        "entries_better": int((diff > 0).sum()),
        "entries_worse": int((diff < 0).sum()),
    }


def min_score_sweep(
    pages: Sequence[Page], truth: Mapping[int, Sequence[int]], thresholds: Sequence[float]
) -> dict[str, dict]:
    """The default pipeline's rows cut at each min_score: quality, coverage, list length."""
    entries = Entries(tuple(Entry(p.id, p.title, p.body) for p in pages), "INTEGER")
    rows = compute_related(entries, Settings()).rows
    sweep = {}
    for threshold in thresholds:
        kept = [r for r in rows if r.score >= threshold]
        e = evaluate(rankings_from_rows(kept), truth)
        sweep[f"min_score={threshold:g}"] = {
            **e.to_dict(),
            "mean_list_length": len(kept) / len(entries),
            "entries_with_no_related": len(entries) - len({r.entry_id for r in kept}),
        }
    return sweep


def run_all(
    pages: Sequence[Page],
    tagged: Sequence[Tagged],
    truth: Mapping[int, Sequence[int]],
    *,
    baseline: Evaluation,
    prototypes: Mapping[str, Variant] | None = None,
    with_settings: bool = True,
) -> dict[str, dict]:
    runs: dict[str, Callable[[], Rankings]] = dict(settings_runs(pages)) if with_settings else {}
    for name, variant in (prototypes or PROTOTYPES).items():
        runs[name] = lambda variant=variant: run_variant(tagged, variant)
    evaluations: dict[str, Evaluation] = {}
    seconds: dict[str, float] = {}
    for name, method in runs.items():
        clock = time.perf_counter()
        evaluations[name] = evaluate(method(), truth)
        seconds[name] = round(time.perf_counter() - clock, 2)
        print(f"  {name}: nDCG@10 {evaluations[name].ndcg_at_10:.3f}", file=sys.stderr)
    print()
    print(format_table({"replaced job (reference)": baseline, **evaluations}))
    table = {
        name: {
            **e.to_dict(),
            "ndcg_ratio_to_replaced_job": e.ndcg_at_10 / baseline.ndcg_at_10,
            "seconds": seconds[name],
        }
        for name, e in evaluations.items()
    }
    current, proposed = run_variant(tagged, Variant()), run_variant(tagged, RECOMMENDED)
    gain = paired_bootstrap(proposed, current, truth)
    print(
        f"\nproposed ({variant_dict(RECOMMENDED)}) minus current default, nDCG@10 per entry: "
        f"{gain['mean']:+.3f} (95% CI {gain['ci95_low']:+.3f} .. {gain['ci95_high']:+.3f}; "
        f"{gain['entries_better']} entries better, {gain['entries_worse']} worse)"
    )
    sweep = min_score_sweep(pages, truth, [0.0, 0.05, 0.1, 0.15, 0.2, 0.3])
    print("\nmin_score sweep (current default pipeline):")
    for name, row in sweep.items():
        print(
            f"  {name:<15} nDCG@10 {row['ndcg_at_10']:.3f}  coverage {row['coverage']:.3f}  "
            f"mean list {row['mean_list_length']:.1f}  entries with none "
            f"{row['entries_with_no_related']}"
        )
    return {
        "table": table,
        "variants": {name: variant_dict(v) for name, v in (prototypes or PROTOTYPES).items()},
        "proposed": variant_dict(RECOMMENDED),
        "proposed_minus_default_ndcg": gain,
        "min_score_sweep": sweep,
    }


def variant_dict(v: Variant) -> dict:
    return {
        k: (sorted(x) if isinstance(x, frozenset) else x)
        for k, x in dataclasses.asdict(v).items()
        if x != getattr(Variant(), k)
    }


if __name__ == "__main__":
    import manpages
    import methods

    from related.evaluate import evaluate as _evaluate

    cache = HERE.parent / ".cache" / "quality"
    pages = manpages.load_pages(cache)
    truth = {p.id: p.links for p in pages}
    tagged = methods.tag_corpus(pages, cache, manpages.corpus_fingerprint(pages))
    old = _evaluate(methods.old_job(tagged), truth)
    run_all(pages, tagged, truth, baseline=old, with_settings="--no-settings" not in sys.argv)
