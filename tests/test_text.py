import random
import unicodedata

from related.text import _nfkc, clean_text


def test_html_tags_entities_scripts_and_comments_are_removed():
    text = clean_text(
        "<p>Dockerの<strong>コンテナ</strong>&amp;イメージ</p><script>var secret=1;</script>"
        "<!-- 非表示 --><style>p{color:red}</style>"
    )
    assert "Docker" in text and "コンテナ" in text and "&イメージ" in text
    for gone in ("<", "strong", "secret", "非表示", "color"):
        assert gone not in text


def test_markdown_markup_goes_links_keep_their_text():
    text = clean_text(
        "## 見出し\n**太字** と _下線_ と [リンク先の名前](https://example.com/a)\n"
        "![写真の説明](img/x.png)\n> 引用\n- 項目\n1. 番号\n---\n[ref]: https://example.com"
    )
    assert "見出し" in text and "太字" in text and "リンク先の名前" in text and "写真の説明" in text
    for gone in ("##", "**", "https", "example.com", "img/x.png", "---", "> "):
        assert gone not in text


def test_urls_are_removed_but_neighbouring_words_stay():
    text = clean_text("詳しくは https://example.com/path?q=1&x=2 を参照。www.example.org も")
    assert "example" not in text
    assert text.startswith("詳しくは") and "参照" in text


def test_code_fence_markers_go_but_code_stays():
    text = clean_text("前\n```yaml\non: push\njobs:\n```\n後")
    assert "```" not in text and "yaml" not in text
    assert "on: push" in text and "jobs:" in text


def test_nfkc_and_invisible_characters():
    text = clean_text("ＡＷＳとｶﾀｶﾅ\u200bです\x00\ufeff①")
    assert text == "AWSとカタカナです1"


def test_unpaired_surrogates_and_empty_input_do_not_fail():
    assert clean_text("") == ""
    assert clean_text(None) == ""  # type: ignore[arg-type]
    assert "テスト" in clean_text("テスト\ud800です")


def test_each_markup_rule_still_applies_where_its_characters_appear():
    # clean_text only runs a pattern when the characters it needs are in the text; these are
    # the edges of those checks (case-blind www., ~~~ fences, ~~ and ` emphasis, blank runs).
    assert clean_text("前 WWW.Example.ORG/ページ 後") == "前 後"
    assert clean_text("~~~\nコード\n~~~") == "コード"
    assert clean_text("~~取り消し~~ と `関数` と *強調*") == "取り消し と 関数 と 強調"
    assert clean_text("語\t語\u3000語 　 語  語") == "語 語 語 語 語"
    assert clean_text("[注]: https://example.com/a\n本文 <br>改行") == "本文 改行"


def test_nfkc_line_by_line_equals_normalising_the_whole_text():
    # Combining marks, half-width voiced marks, Hangul jamo and compatibility characters next
    # to newlines: the places where normalising lines apart could differ from the whole.
    alphabet = "かｶﾞﾟ\u3099\u309a\u0301e\u1100\u1161\u11a8ＡＢ①㍻ﬁ（）…\n\n a。"
    rng = random.Random(7)
    texts = [
        "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 40))) for _ in range(3000)
    ]
    texts += ["ｶ\nﾞ", "e\n\u0301", "\u1100\n\u1161", "\n", "plain\ntext"]
    for text in texts:
        assert _nfkc(text) == unicodedata.normalize("NFKC", text), repr(text)
    assert sum(not unicodedata.is_normalized("NFKC", t) for t in texts) > 2000  # not vacuous
