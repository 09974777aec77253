import multiprocessing
import sys
from collections import Counter

import numpy as np
import pytest

import related.tokenize as tokenize_module
from related.config import TokenizerSettings
from related.entries import Entry
from related.sample import sample_entries
from related.text import clean_text
from related.token_cache import count_entries
from related.tokenize import (
    Tokenizer,
    kept_words_pattern,
    left_id_pos,
    normalise_term,
    pos_is_kept,
    tokenize_entries,
)
from related.vectorize import count_matrix


def terms(text: str, **settings) -> list[str]:
    return Tokenizer(TokenizerSettings(**settings)).terms(text)


def test_nouns_and_english_kept_particles_verbs_numbers_dropped():
    found = terms("東京でDockerのコンテナを動かした。2024年にGitHub Actionsを導入")
    assert found[:3] == ["東京", "docker", "コンテナ"]
    assert {"github", "actions", "導入"} <= set(found)
    for dropped in ("で", "の", "を", "動かし", "た", "。", "2024"):
        assert dropped not in found


def test_single_kana_single_letter_symbols_and_english_stop_words_dropped():
    assert normalise_term("ア") is None
    assert normalise_term("x") is None
    assert normalise_term("123") is None
    assert normalise_term("★") is None
    assert normalise_term("Docker") == "docker"
    assert "the" not in terms("the container and the image")


def test_stop_words_and_pos_settings():
    assert "記事" not in terms("関連記事を書く", stop_words=("記事",))
    assert "書く" in terms("関連記事を書く", keep_pos=("名詞", "動詞"))
    assert "書く" not in terms("関連記事を書く")


def test_field_weights_multiply_counts():
    tokenizer = Tokenizer(TokenizerSettings(title_weight=3, tags_weight=2))
    counts = tokenizer.entry_term_counts(
        Entry(id=1, title="焙煎の基本", body="<p>コーヒー豆を焙煎する</p>", tags=("コーヒー",))
    )
    assert counts["焙煎"] == 1 + 3
    assert counts["コーヒー"] == 1 + 2
    assert counts["基本"] == 3


def test_large_entry_is_tokenised_in_pieces_with_the_same_terms():
    paragraph = "データベースの設定を確認してからコンテナを再起動する。\n"
    big = paragraph * 60_000  # about 5 MB of UTF-8: hundreds of MeCab chunks
    counts = Counter(terms(big))
    assert counts == Counter({t: n * 60_000 for t, n in Counter(terms(paragraph)).items()})


def test_symbols_only_and_odd_unicode_give_no_terms_without_failing():
    counts = tokenize_entries(
        [Entry(1, "", "!!! ??? ★☆ 😀😀 \u200b ---"), Entry(2, "", "")], TokenizerSettings()
    )
    assert counts == [Counter(), Counter()]


def test_kept_words_follow_prefix_rules_for_parts_of_speech_and_context_ids():
    pos_of = left_id_pos()
    # Columns as MeCab prints them: parts of speech (unknown words) and context ids, among
    # them ids that are prefixes of others (47 / 4792) and one that is not in left-id.def.
    columns = [
        "名詞-固有名詞-地名-一般",
        "名詞-数詞",
        "動詞-一般",
        "名詞-普通名詞-一般",
        "助詞-格助詞",
        "補助記号-括弧開",
        *("1", "47", "100", "4792", "5146", "4794", "99999"),
    ]
    output = "".join(f"\t{column} w{n}" for n, column in enumerate(columns))
    cases = [
        (("名詞",), ("名詞-数詞",)),
        (("名詞", "動詞"), ()),
        (("名詞",), ("名詞-固有名詞", "名詞-数詞")),
        ((), ()),
        (("補助記号-括弧開",), ()),
    ]
    for keep, drop in cases:
        # A context id is decided by the part of speech left-id.def gives it.
        expected = [
            f"w{n}"
            for n, column in enumerate(columns)
            if pos_is_kept(pos_of.get(column, "") if column.isdigit() else column, keep, drop)
        ]
        assert kept_words_pattern(keep, drop).findall(output) == expected, (keep, drop)
    assert pos_of["4792"] == "名詞-固有名詞-地名-一般"  # as MeCab prints 東京 (test below)
    # Not vacuous: nouns by part of speech (w0, w3) and by id (4792, 5146), numbers dropped.
    assert kept_words_pattern(("名詞",), ("名詞-数詞",)).findall(output) == [
        "w0",
        "w3",
        "w9",
        "w10",
    ]


def test_left_context_ids_name_the_part_of_speech_mecab_prints():
    pos_of = left_id_pos()
    assert len(pos_of) > 5000
    assert pos_of["0"] == "BOS/EOS"
    # Words MeCab knows print their left context id; their features must name the same part
    # of speech, or extraction by id would keep other words than extraction by features.
    text = "東京タワーに行った。三つの記事を読み、写真を撮影する。"
    with_pos, with_id = (
        # "TAB column SPACE surface" per word -> [(column, surface), ...]
        [word.split(" ", 1) for word in tagger.parse(text).split("\t")[1:]]
        for tagger in (tokenize_module._make_tagger(None, id_column=c) for c in (False, True))
    )
    assert [surface for _, surface in with_pos] == [surface for _, surface in with_id]
    assert len(with_id) > 10 and ["4792", "東京"] in with_id
    assert [pos_of[i] for i, _ in with_id] == [pos for pos, _ in with_pos]


@pytest.mark.parametrize(
    "keep, drop",
    [
        (("名詞",), ("名詞-数詞",)),
        (("名詞", "動詞"), ()),
        (("名詞-固有名詞",), ("名詞-固有名詞-人名",)),
    ],
)
def test_terms_by_context_id_equal_terms_by_printed_part_of_speech(keep, drop):
    """The fast path (ids) and the plain one (MeCab prints every word's part of speech, as with
    a user dictionary) give the same terms on real text, unknown words and symbols included."""
    settings = TokenizerSettings(keep_pos=keep, drop_pos=drop)
    fast, plain = Tokenizer(settings), Tokenizer(settings)
    plain._tagger = tokenize_module._make_tagger(None, id_column=False)
    texts = [clean_text(e["title"] + "\n" + e["body"]) for e in sample_entries()]
    texts.append("ｱｲｳｴｵ ＴｅｎｓｏｒＦｌｏｗ 𠮷野家で佐藤さんと2024年に会った ★☆ ㈱ ⅲ Ω√ 😀 #タグ")
    found = [fast.terms(t) for t in texts]
    assert found == [plain.terms(t) for t in texts]
    assert sum(map(len, found)) > 5  # not vacuous: proper nouns only find a few


def test_term_counts_equal_counting_terms():
    tokenizer = Tokenizer(TokenizerSettings(stop_words=("設定",)))
    text = "DockerとdockerとDOCKER。設定の設定を確認する。コンテナ、コンテナ。\n" * 3
    assert tokenizer.term_counts(text) == Counter(tokenizer.terms(text))
    assert tokenizer.term_counts(text)["docker"] == 9


def sample_entries_for_workers() -> list[Entry]:
    words = ["コーヒー", "焙煎", "Docker", "コンテナ", "東京", "京都", "写真", "カメラ", "レンズ"]
    entries = []
    for i in range(23):
        body = "。".join(f"{words[(i + j) % 9]}と{words[(i * j) % 9]}の話" for j in range(12))
        tags = (words[i % 9],) if i % 3 else ()
        entries.append(Entry(i, f"{words[i % 9]}について", f"<p>{body}</p>", tags, "日記"))
    entries.append(Entry(99, "", ""))
    return entries


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_workers_give_the_serial_result_in_order(monkeypatch, start_method):
    if start_method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"{start_method} not available here")
    monkeypatch.setattr(
        tokenize_module, "_pool_context", lambda: multiprocessing.get_context(start_method)
    )
    entries = sample_entries_for_workers()
    settings = TokenizerSettings(stop_words=("話",))
    serial = tokenize_entries(entries, settings)
    chunks: list[int] = []
    per_entry: list[None] = []
    parallel = tokenize_entries(
        entries,
        settings,
        workers=2,
        chunk_size=5,
        on_entries=chunks.append,
        on_entry=lambda: per_entry.append(None),
    )
    assert parallel == serial
    assert serial[-1] == Counter() and serial[0]["コーヒー"] > 0
    assert chunks == [5, 5, 5, 5, 4] and len(per_entry) == len(entries)


def test_serial_progress_and_argument_checks():
    seen: list[int] = []
    tokenize_entries(sample_entries_for_workers()[:3], TokenizerSettings(), on_entries=seen.append)
    assert seen == [1, 1, 1]
    with pytest.raises(ValueError, match="workers must be >= 0"):
        tokenize_entries([], TokenizerSettings(), workers=-1)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        tokenize_entries([], TokenizerSettings(), chunk_size=0)
    assert tokenize_entries([], TokenizerSettings(), workers=0) == []


@pytest.mark.parametrize("workers", [1, 2])
def test_count_entries_equals_count_matrix_of_counters(workers):
    entries = sample_entries_for_workers()
    settings = TokenizerSettings(stop_words=("話",))
    expected, expected_terms = count_matrix(tokenize_entries(entries, settings))
    seen: list[int] = []
    matrix, terms = count_entries(
        entries, settings, workers=workers, chunk_size=4, on_entries=seen.append
    )
    assert terms == expected_terms
    assert matrix.shape == expected.shape and matrix.dtype == expected.dtype
    for name in ("indptr", "indices", "data"):
        assert np.array_equal(getattr(matrix, name), getattr(expected, name)), name
    assert sum(seen) == len(entries)


def test_count_entries_of_nothing():
    matrix, terms = count_entries([], TokenizerSettings())
    assert matrix.shape == (0, 0) and terms == []


def test_whole_words_are_never_split():
    settings = TokenizerSettings(whole_words=("機械学習", "Google Cloud", "Go"))
    found = Tokenizer(settings).terms("機械学習をGoogle  CloudとGoogleとGoで試す。機械の学習")
    assert sorted(found) == sorted(["機械学習", "google cloud", "google", "go", "機械", "学習"])
    plain = Tokenizer(TokenizerSettings()).terms("機械学習をGoogle Cloudで試す")
    assert "機械学習" not in plain and {"機械", "学習", "google", "cloud"} <= set(plain)


def test_workers_leave_no_utf8_copy_of_the_text_behind():
    # Pickling a str makes CPython keep a UTF-8 copy inside it (sys.getsizeof shows it): sent
    # as is, every entry's text would stay in memory twice for the whole run.
    bodies = ["".join(["焙煎したコーヒー豆を挽く。"] * 50 + [str(i)]) for i in range(8)]
    sizes = [sys.getsizeof(body) for body in bodies]
    entries = [Entry(i, f"題{i}", body) for i, body in enumerate(bodies)]
    matrix, _ = count_entries(entries, TokenizerSettings(), workers=2, chunk_size=2)
    assert matrix.nnz > 0
    assert [sys.getsizeof(body) for body in bodies] == sizes
