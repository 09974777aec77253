import json
from pathlib import Path

import pytest

from related.config import load_settings, setting_infos, validate_identifier
from related.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_precedence_defaults_file_env_flags(tmp_path):
    config = write(
        tmp_path / "related.toml",
        'database_url = "sqlite:///from-file.db"\n'
        "[neighbours]\ntop_k = 7\nmin_score = 0.1\n"
        '[source]\nsource_table = "posts"\ntags_column = "tags"\n',
    )
    env = {"RELATED_MIN_SCORE": "0.2", "RELATED_STOP_WORDS": "a, b"}
    settings = load_settings(environ=env, config_path=config, overrides={"top_k": None})
    assert settings.database_url == "sqlite:///from-file.db"
    assert settings.neighbours.top_k == 7  # file beats default; unset flag falls through
    assert settings.neighbours.min_score == 0.2  # env beats file
    assert settings.source.source_table == "posts"
    assert settings.tokenizer.stop_words == ("a", "b")
    settings = load_settings(
        environ={**env, "DATABASE_URL": "sqlite:///env.db"},
        config_path=config,
        overrides={"min_score": 0.3, "database_url": "sqlite:///flag.db"},
    )
    assert settings.neighbours.min_score == 0.3  # flag beats env
    assert settings.database_url == "sqlite:///flag.db"


def test_config_file_from_env_and_default_location(tmp_path, monkeypatch):
    write(tmp_path / "custom.toml", "[neighbours]\ntop_k = 3\n")
    settings = load_settings(environ={"RELATED_CONFIG": str(tmp_path / "custom.toml")})
    assert settings.neighbours.top_k == 3
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "related.toml", "[neighbours]\ntop_k = 4\n")
    assert load_settings(environ={}).neighbours.top_k == 4


def test_unknown_setting_suggests_the_right_one(tmp_path):
    config = write(tmp_path / "c.toml", "[neighbours]\ntopk = 3\n")
    with pytest.raises(
        ConfigError,
        match=r"unknown setting 'topk' in \[neighbours\]\. "
        r"Did you mean 'top_k'\?",
    ):
        load_settings(environ={}, config_path=config)
    config = write(tmp_path / "d.toml", "[neighbors]\ntop_k = 3\n")
    with pytest.raises(ConfigError, match="Did you mean 'neighbours'"):
        load_settings(environ={}, config_path=config)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RELATED_TOP_K": "ten"}, "RELATED_TOP_K: 'ten' is not a valid int for top_k"),
        ({"RELATED_TOP_K": "0"}, "top_k = 0 must be between 1 and 1000"),
        ({"RELATED_MIN_SCORE": "1.5"}, "min_score = 1.5 must be between 0 and 1"),
        ({"RELATED_SUBLINEAR_TF": "maybe"}, "RELATED_SUBLINEAR_TF='maybe' is not a boolean"),
        ({"RELATED_MAX_DF": "0"}, r"max_df = 0.0 must be in \(0, 1\]"),
    ],
)
def test_bad_values_name_the_setting(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=env)


def test_bad_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_settings(environ={}, config_path=write(tmp_path / "bad.toml", "[neighbours\n"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(environ={}, config_path=tmp_path / "missing.toml")


@pytest.mark.parametrize(
    "hostile",
    ['entries"; DROP TABLE entries; --', "entries;", "a b", "x'y", "", "a.b.c", "1abc"],
)
def test_hostile_identifiers_are_rejected(hostile):
    with pytest.raises(ConfigError, match="is not a valid name"):
        load_settings(environ={}, overrides={"source_table": hostile})
    with pytest.raises(ConfigError, match="results_table = .* is not a valid name"):
        load_settings(environ={"RELATED_RESULTS_TABLE": hostile or "x;y"})


def test_schema_qualified_tables_are_allowed():
    assert validate_identifier("blog.entries", "source_table", qualified=True) == (
        "blog",
        "entries",
    )
    with pytest.raises(ConfigError):
        validate_identifier("blog.entries", "id_column")


def test_every_setting_has_one_spelling():
    infos = setting_infos()
    names = [i.name for i in infos]
    assert len(names) == len(set(names))
    top_k = next(i for i in infos if i.name == "top_k")
    assert (top_k.section, top_k.env_var, top_k.flag) == ("neighbours", "RELATED_TOP_K", "--top-k")


def test_config_command_shows_values_origins_and_masks_the_password(invoke, tmp_path):
    write(tmp_path / "related.toml", "[neighbours]\ntop_k = 7\n")  # invoke() runs in tmp_path
    env = {"DATABASE_URL": "postgresql://blog:s3cret@db/blog", "RELATED_MIN_SCORE": "0.1"}
    result = invoke("config", "--stop-words", "a,b", "--format", "json", env=env)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["database_url"] == {
        "value": "postgresql://blog:***@db/blog",
        "from": "env DATABASE_URL",
    }
    assert shown["top_k"] == {"value": 7, "from": "file related.toml"}
    assert shown["min_score"] == {"value": 0.1, "from": "env RELATED_MIN_SCORE"}
    assert shown["stop_words"] == {"value": ["a", "b"], "from": "flag --stop-words"}
    assert shown["results_table"] == {"value": "related_entries", "from": "default"}
    text = invoke("config", env=env).stdout
    assert "s3cret" not in text
    assert 'database_url = "postgresql://blog:***@db/blog"  # env DATABASE_URL' in text
    assert "top_k = 7  # file related.toml" in text
    assert "# tags_column is not set" in text


def test_config_text_is_toml_a_config_file_can_hold(invoke, tmp_path):
    # Values as TOML writes them (true, ["a"], "x"), not as Python prints them (True, ('a',),
    # None); pasted into a file, they give the same settings back.
    env = {"RELATED_SUBLINEAR_TF": "false", "RELATED_SOURCE_WHERE": "status = 'ok' AND x <> \"y\""}
    text = invoke("config", "--stop-words", "記事,今回", "--top-k", "4", env=env).stdout
    assert "None" not in text and "True" not in text and "False" not in text
    assert "sublinear_tf = false  # env RELATED_SUBLINEAR_TF" in text
    write(tmp_path / "pasted.toml", text)
    pasted = load_settings(environ={}, config_path=tmp_path / "pasted.toml")
    assert pasted == load_settings(
        environ=env, overrides={"stop_words": ("記事", "今回"), "top_k": 4}
    )


def test_neighbour_modes_match_the_library():
    from related.config import NEIGHBOUR_MODES
    from related.neighbours import MODES

    assert set(NEIGHBOUR_MODES) == {"auto", *MODES}
    with pytest.raises(ConfigError, match="neighbour_mode = 'fast' is not known"):
        load_settings(environ={"RELATED_NEIGHBOUR_MODE": "fast"})
