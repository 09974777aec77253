"""The user_dictionary setting, with a user dictionary compiled here against unidic-lite by
MeCab's own dictionary compiler (the libmecab inside mecab-python3 exports it)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from related.config import TokenizerSettings
from related.errors import ConfigError
from related.token_cache import tokenizer_key
from related.tokenize import Tokenizer, dictionary_dir

# surface, left id, right id (empty: derived from the dictionary's rewrite rules), cost, then
# unidic-lite's 26 feature fields: pos1-pos4, conjugation, reading, lemma, ... (see README).
WORD = "ふわもち雲"
CSV_LINE = (
    f"{WORD},,,3000,名詞,普通名詞,一般,*,*,*,フワモチグモ,{WORD},{WORD},フワモチグモ,{WORD},"
    "フワモチグモ,和,*,*,*,*,フワモチグモ,フワモチグモ,フワモチグモ,フワモチグモ,*,*,0,C1,*\n"
)
# In a subprocess: MeCab's compiler calls exit() on bad input.
COMPILE = """
import ctypes, sys, MeCab
args = [a.encode() for a in ["mecab-dict-index", *sys.argv[1:]]]
argv = (ctypes.c_char_p * (len(args) + 1))(*args, None)
sys.exit(ctypes.CDLL(MeCab._MeCab.__file__).mecab_dict_index(len(args), argv))
"""
TEXT = "ふわもち雲が空に浮かぶ。"


def compile_user_dictionary(csv_text: str, out: Path) -> Path:
    source = out.with_suffix(".csv")
    source.write_text(csv_text, encoding="utf-8")
    subprocess.run(
        [sys.executable, "-c", COMPILE, "-d", dictionary_dir(), "-u", str(out)]
        + ["-f", "utf-8", "-t", "utf-8", str(source)],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture
def user_dic(tmp_path: Path) -> Path:
    return compile_user_dictionary(CSV_LINE, tmp_path / "user.dic")


def test_a_user_dictionary_keeps_its_word_whole(user_dic):
    assert WORD not in Tokenizer(TokenizerSettings()).terms(TEXT)  # MeCab alone splits it
    terms = Tokenizer(TokenizerSettings(user_dictionary=str(user_dic))).terms(TEXT)
    assert terms == [WORD, "空"]


def test_missing_empty_or_broken_dictionaries_are_config_errors(tmp_path):
    for path, reason in (
        (tmp_path / "nope.dic", "is not a file"),
        (tmp_path, "is not a file"),
    ):
        with pytest.raises(ConfigError, match=reason):
            Tokenizer(TokenizerSettings(user_dictionary=str(path))).terms(TEXT)
    empty = tmp_path / "empty.dic"
    empty.write_bytes(b"")
    with pytest.raises(ConfigError, match="is not a file \\(or is empty\\)"):
        Tokenizer(TokenizerSettings(user_dictionary=str(empty))).terms(TEXT)
    junk = tmp_path / "junk.dic"
    junk.write_bytes(b"not a dictionary" * 100)
    with pytest.raises(ConfigError, match="cannot be loaded by MeCab .*broken"):
        Tokenizer(TokenizerSettings(user_dictionary=str(junk))).terms(TEXT)


def test_rebuilding_the_dictionary_changes_the_cache_key(tmp_path):
    path = compile_user_dictionary(CSV_LINE, tmp_path / "user.dic")
    settings = TokenizerSettings(user_dictionary=str(path))
    before = tokenizer_key(settings)
    assert tokenizer_key(settings) == before
    compile_user_dictionary(CSV_LINE.replace(",3000,", ",2000,"), path)
    assert tokenizer_key(settings) != before


def test_run_with_a_user_dictionary_from_the_config_file(invoke, tmp_path, user_dic):
    db = tmp_path / "blog.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE entries (id INTEGER PRIMARY KEY, title TEXT, body TEXT)")
        conn.executemany(
            "INSERT INTO entries VALUES (?, ?, ?)",
            [
                (1, "空の観察", f"{WORD}を見た。{WORD}は白い。"),
                (2, "お菓子", "もちを焼いた。"),
                (3, "天気", f"今日の{WORD}は大きい。"),
            ],
        )
    conn.close()
    (tmp_path / "related.toml").write_text(
        f'database_url = "sqlite:///blog.db"\n[tokenizer]\nuser_dictionary = "{user_dic.name}"\n',
        encoding="utf-8",
    )
    assert invoke("run").exit_code == 0
    explained = invoke("explain", "1", "3", "--format", "json")
    assert WORD in {t["term"] for t in json.loads(explained.stdout)["shared"]}
    missing = invoke("run", "--force", "--user-dictionary", "gone.dic")
    assert missing.exit_code == 2 and "user_dictionary = 'gone.dic' is not a file" in missing.stderr
