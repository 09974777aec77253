"""The methods compared: the related pipeline, the job it replaces, two off-the-shelf recipes.

Every method returns ``{entry_id: [neighbour ids, best first]}`` (top 10, self excluded) so
related.evaluate scores them all the same way. Cosine top-k uses related.neighbours for every
vector-space method, so ties and self-matches are handled identically.

MeCab runs once per entry: ``tag_corpus`` keeps (surface, lemma, pos) for title and body,
cached on disk, and the baselines and prototypes (experiments.py) reuse it.
"""

from __future__ import annotations

import math
import pickle
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from manpages import Page

from related.neighbours import top_k_neighbours
from related.text import clean_text
from related.tokenize import CHUNK_CHARS, _chunks, dictionary_dir

TOP_K = 10
Rankings = dict[int, list[int]]
Token = tuple[str, str, str]  # surface, lemma, UniDic POS ("名詞-普通名詞-一般")


@dataclass(frozen=True)
class Tagged:
    id: int
    title: tuple[Token, ...]
    body: tuple[Token, ...]
    title_text: str  # as given to the pipeline (before clean_text)
    body_text: str


def tag_corpus(pages: Sequence[Page], cache: Path, fingerprint: str) -> list[Tagged]:
    """MeCab (unidic-lite, as related.tokenize configures it) over clean_text of each field."""
    path = cache / f"tagged-v2-{fingerprint}.pickle"
    if path.exists():
        return pickle.loads(path.read_bytes())
    import MeCab

    dicdir = dictionary_dir()
    tagger = MeCab.Tagger(f'-r "{dicdir}/mecabrc" -d "{dicdir}"')

    def tag(text: str) -> tuple[Token, ...]:
        tokens = []
        for piece in _chunks(clean_text(text), CHUNK_CHARS):
            for line in tagger.parse(piece).split("\n"):
                fields = line.split("\t")
                if len(fields) >= 5:
                    tokens.append((fields[0], fields[3], fields[4]))
        return tuple(tokens)

    tagged = [Tagged(p.id, tag(p.title), tag(p.body), p.title, p.body) for p in pages]
    path.write_bytes(pickle.dumps(tagged))
    return tagged


def rankings_from_matrix(matrix: sp.csr_matrix, ids: Sequence[int], top_k: int = TOP_K) -> Rankings:
    """Cosine top-k of an L2-normalised matrix through related.neighbours."""
    found = top_k_neighbours(sp.csr_matrix(matrix, dtype=np.float64), top_k=top_k)
    rankings: Rankings = {}
    for s, t in zip(found.source.tolist(), found.target.tolist(), strict=True):
        rankings.setdefault(ids[s], []).append(ids[t])
    return rankings


# ---------------------------------------------------------------------------------------------
# Baseline 1: the job being replaced, exactly as issue 4 describes it

_ALL_DIGITS = re.compile(r"^[0-9０-９]+$")
_ONE_KANA = re.compile(r"^[\u3041-\u309f\u30a0-\u30ff]$")
OLD_TOP_TERMS = 50
OLD_MIN_SHARED = 4  # "sharing more than 3"
OLD_MAX_CANDIDATES = 100


def old_job_terms(tokens: Sequence[Token]) -> list[str]:
    """Nouns (first POS field 名詞); no all-digit, single ASCII letter or single kana tokens."""
    kept = []
    for surface, _lemma, pos in tokens:
        if pos.split("-", 1)[0] != "名詞":
            continue
        if _ALL_DIGITS.match(surface) or (len(surface) == 1 and surface.isascii()):
            continue
        if _ONE_KANA.match(surface):
            continue
        kept.append(surface)
    return kept


def old_job(tagged: Sequence[Tagged]) -> Rankings:
    """TF = log(count+1)/log(total tokens); IDF = 1+log(N/df); L2; top-50 terms per entry;
    candidates share > 3 of them (at most 100, by shared count); score = sum over the entry's
    top-50 terms of w_a * w_b; keep the top 10."""
    docs = [old_job_terms(t.title + t.body) for t in tagged]
    n = len(docs)
    df: Counter[str] = Counter()
    for terms in docs:
        df.update(set(terms))
    weights: list[dict[str, float]] = []
    for terms in docs:
        counts = Counter(terms)
        total = len(terms)
        denominator = math.log(total) if total > 1 else 1.0
        w = {
            t: math.log(c + 1) / denominator * (1 + math.log(n / df[t])) for t, c in counts.items()
        }
        norm = math.sqrt(sum(v * v for v in w.values())) or 1.0
        weights.append({t: v / norm for t, v in w.items()})
    top = [dict(sorted(w.items(), key=lambda kv: (-kv[1], kv[0]))[:OLD_TOP_TERMS]) for w in weights]
    postings: dict[str, list[int]] = {}
    for i, terms in enumerate(top):
        for term in terms:
            postings.setdefault(term, []).append(i)

    rankings: Rankings = {}
    for i, terms in enumerate(top):
        shared: Counter[int] = Counter()
        for term in terms:
            shared.update(postings[term])
        del shared[i]
        candidates = sorted(
            (j for j, c in shared.items() if c >= OLD_MIN_SHARED), key=lambda j: (-shared[j], j)
        )[:OLD_MAX_CANDIDATES]
        scored = [
            (sum(w * weights[j].get(t, 0.0) for t, w in terms.items()), j) for j in candidates
        ]
        scored.sort(key=lambda sj: (-sj[0], sj[1]))
        rankings[tagged[i].id] = [tagged[j].id for s, j in scored[:TOP_K] if s > 0]
    return rankings


# ---------------------------------------------------------------------------------------------
# Baselines 2 and 3: scikit-learn TfidfVectorizer recipes


def sklearn_words(tagged: Sequence[Tagged]) -> Rankings:
    """TfidfVectorizer defaults over every MeCab surface token of title + body."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    documents = [[s for s, _, _ in t.title + t.body] for t in tagged]
    vectorizer = TfidfVectorizer(analyzer=_identity)
    return rankings_from_matrix(vectorizer.fit_transform(documents), [t.id for t in tagged])


def _identity(tokens: list[str]) -> list[str]:
    # TfidfVectorizer(analyzer=callable) skips its own lower-casing; do it as the default would.
    return [token.lower() for token in tokens]


def char_bigrams(pages: Sequence[Page]) -> Rankings:
    """TfidfVectorizer(analyzer="char", ngram_range=(2, 2)) over NFKC title + body."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    documents = [unicodedata.normalize("NFKC", f"{p.title}\n{p.body}") for p in pages]
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(2, 2))
    return rankings_from_matrix(vectorizer.fit_transform(documents), [p.id for p in pages])


Method = Callable[[], Rankings]
