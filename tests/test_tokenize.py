from collections import Counter

from related.config import TokenizerSettings
from related.entries import Entry
from related.tokenize import Tokenizer, normalise_term, tokenize_entries


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
