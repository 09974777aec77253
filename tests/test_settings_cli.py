"""Settings mean one thing, and output a person and a pipeline can rely on: empty environment
variables, repeated list flags, keys in the wrong TOML section, -q/-v anywhere, a JSON summary
also for failed runs, progress in entries, and the run log listed per results table."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from conftest import Backend

from related.config import load_settings, setting_infos
from related.errors import ConfigError
from related.pipeline import run_job

SAMPLE_FLAGS = ("--tags-column", "tags", "--source-where", "published = 1")
PUBLISHED = 37  # of the 40 sample entries, 3 are drafts

# One valid value other than the default for each setting, as a config file would write it.
NOT_DEFAULT = {
    "preset": "wordpress",
    "table_prefix": "blog_",
    "source_table": "posts",
    "id_column": "post_id",
    "title_column": "headline",
    "body_column": "content",
    "tags_column": "labels",
    "category_column": "section",
    "updated_at_column": "modified",
    "source_where": "status = 'published'",
    "source_query": "SELECT id, title, body FROM posts",
    "tags_separator": ";",
    "keep_pos": ["動詞"],
    "drop_pos": [],
    "stop_words": ["記事"],
    "whole_words": ["Google Cloud"],
    "user_dictionary": "user.dic",
    "results_layout": "lokka",
    "neighbour_mode": "exact",
    "results_table": "similar_posts",
    "runs_table": "job_runs",
    "token_cache_table": "term_cache",
}


def _not_default(info) -> object:
    if info.name in NOT_DEFAULT:
        return NOT_DEFAULT[info.name]
    if info.type is bool:
        return not info.default
    if info.type is int:
        return info.default + 1
    assert info.type is float, info
    return 0.5 if info.default in (0.0, 1.0, 0.3) else info.default + 1


def _toml(value: object) -> str:
    return (
        json.dumps(value, ensure_ascii=False) if not isinstance(value, bool) else str(value).lower()
    )


@pytest.mark.parametrize("info", setting_infos(), ids=lambda info: info.name)
def test_an_empty_environment_variable_means_unset_for_every_setting(tmp_path: Path, info):
    # A compose file or CI matrix that leaves a value blank must not replace the file's value
    # (an empty RELATED_SOURCE_WHERE used to drop the file's filter and publish drafts), and must
    # not be an error either (an empty RELATED_TOP_K was one).
    value = _not_default(info)
    config = tmp_path / "related.toml"
    config.write_text(f"[{info.section}]\n{info.name} = {_toml(value)}\n", encoding="utf-8")
    for blank in ("", "  "):
        origins: dict[str, str] = {}
        settings = load_settings(environ={info.env_var: blank}, config_path=config, origins=origins)
        got = getattr(getattr(settings, info.section), info.name)
        assert got == (tuple(value) if isinstance(value, list) else value)
        assert origins[info.name] == f"file {config}"


def test_an_empty_database_url_variable_means_unset(tmp_path: Path):
    config = tmp_path / "related.toml"
    config.write_text('database_url = "sqlite:///from-file.db"\n', encoding="utf-8")
    for variable in ("DATABASE_URL", "RELATED_DATABASE_URL"):
        settings = load_settings(environ={variable: ""}, config_path=config)
        assert settings.database_url == "sqlite:///from-file.db"


def test_a_list_flag_given_twice_keeps_every_value(invoke):
    result = invoke(
        "config", "--stop-words", "記事", "--stop-words", "今回, 前回", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["stop_words"] == {
        "value": ["記事", "今回", "前回"],
        "from": "flag --stop-words",
    }


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            '[run]\nsource_where = "published = 1"\n',
            r"source_where belongs in \[source\], not in \[run\]",
        ),
        ("[source]\ntop_k = 5\n", r"top_k belongs in \[neighbours\], not in \[source\]"),
        ("top_k = 5\n", r"top_k must be in its section: put it under \[neighbours\]"),
        (
            '[source]\ndatabase_url = "sqlite:///b.db"\n',
            "database_url is a top-level key, not a setting of \\[source\\]",
        ),
    ],
)
def test_a_key_in_the_wrong_section_names_its_section(tmp_path: Path, document, message):
    config = tmp_path / "related.toml"
    config.write_text(document, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_settings(environ={}, config_path=config)


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_prints_nothing_but_errors_before_or_after_the_subcommand(
    invoke, sample_sqlite, where
):
    def run(*args: str):
        flags = ("run", "--database-url", sample_sqlite, *SAMPLE_FLAGS, *args)
        return invoke("-q", *flags) if where == "before" else invoke(*flags, "-q")

    result = run()
    assert result.exit_code == 0, result.output
    assert (result.stdout, result.stderr) == ("", "")
    summary = run("--format", "json", "--force")
    assert summary.stderr == ""
    assert json.loads(summary.stdout)["status"] == "success"
    failed = run("--source-table", "missing_table", "--force")
    assert failed.exit_code == 2 and failed.stdout == ""
    assert failed.stderr.startswith("Error: ") and "missing_table" in failed.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_logs_each_stage_with_its_time(invoke, sample_sqlite, where):
    flags = ("run", "--database-url", sample_sqlite, *SAMPLE_FLAGS)
    result = invoke("-v", *flags) if where == "before" else invoke(*flags, "-v")
    assert result.exit_code == 0, result.output
    for stage in ("read", "tokenize", "vectorize", "neighbours", "write"):
        assert f"related: {stage} done in " in result.stderr, result.stderr
    quiet_and_verbose = invoke("run", "--database-url", sample_sqlite, "-q", "-v")
    assert quiet_and_verbose.exit_code == 2
    assert "exclude each other" in quiet_and_verbose.stderr


def test_run_json_reports_a_failure_too(invoke, sample_sqlite, tmp_path: Path):
    ok = invoke("run", "--database-url", sample_sqlite, *SAMPLE_FLAGS, "--format", "json")
    assert json.loads(ok.stdout)["status"] == "success"
    again = invoke("run", "--database-url", sample_sqlite, *SAMPLE_FLAGS, "--format", "json")
    assert (json.loads(again.stdout)["status"], again.exit_code) == ("skipped", 0)
    for args, code in [
        (("--database-url", sample_sqlite, "--source-table", "no_such_table"), 2),
        (("--database-url", sample_sqlite, "--top-k", "0"), 2),
        (("--database-url", f"sqlite:///{tmp_path / 'missing' / 'blog.db'}"), 2),
    ]:
        result = invoke("run", *args, "--format", "json")
        assert result.exit_code == code, result.output
        summary = json.loads(result.stdout)
        assert summary["status"] == "failed" and summary["exit_code"] == code
        assert summary["message"] and summary["message"] in result.stderr


def test_progress_counts_entries_not_documents(sample_sqlite):
    # title_share (on by default) tokenises each title as a document of its own: the bar still
    # counts the entries a user has, and ends at their number.
    bars: dict[str, list[int]] = {}

    class Recorder:
        def __init__(self, label: str, total: int):
            self.label = label
            bars[label] = [total, 0]

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def advance(self, n: int = 1) -> None:
            bars[self.label][1] += n

    settings = load_settings(
        environ={},
        overrides={
            "database_url": sample_sqlite,
            "tags_column": "tags",
            "source_where": "published = 1",
            "workers": 2,
        },
    )
    assert settings.vectors.title_share > 0
    for force in (False, True):  # tokenised, then read from the token cache
        run_job(settings, progress=Recorder, force=force)
        assert bars["tokenize"] == [PUBLISHED, PUBLISHED]
        assert bars["neighbours"][0] == PUBLISHED


def test_runs_shows_and_filters_by_results_table_with_iso_times(invoke, backend: Backend):
    backend.load_sample()
    base = ("--database-url", backend.url, "--source-where", "published")
    if backend.name == "sqlite":
        base = ("--database-url", backend.url, "--source-where", "published = 1")
    assert invoke("run", *base).exit_code == 0
    assert invoke("run", *base, "--results-table", "other_related").exit_code == 0

    every = json.loads(invoke("runs", "--database-url", backend.url, "--format", "json").stdout)
    assert [r["results_table"] for r in every] == ["other_related", "related_entries"]
    for record in every:
        for key in ("started_at", "finished_at"):
            moment = datetime.fromisoformat(record[key])
            assert moment.tzinfo is not None and moment.utcoffset().total_seconds() == 0
            assert "T" in record[key]
    only = invoke("runs", "--database-url", backend.url, "--results-table", "other_related")
    lines = only.stdout.splitlines()
    assert lines[0].split()[:4] == ["run", "status", "started", "table"]
    assert len(lines) == 2 and "other_related" in lines[1]
    started = lines[1].split()[2]
    assert datetime.fromisoformat(started).tzinfo is not None
    text = invoke("runs", "--database-url", backend.url).stdout
    assert "related_entries" in text and "other_related" in text


def test_skip_when_unchanged_remembers_a_success_older_than_many_runs(sample_sqlite):
    # A 5-minute cron on a quiet blog logs a skipped run every time; the last success must
    # still be found after any number of them (only the last 50 runs used to be searched).
    settings = load_settings(
        environ={},
        overrides={"database_url": sample_sqlite, "tags_column": "tags", "workers": 1},
    )
    first = run_job(settings)
    assert first.write is not None
    for _ in range(60):
        assert run_job(settings).skipped
    other = load_settings(
        environ={},
        overrides={"database_url": sample_sqlite, "results_table": "other", "workers": 1},
    )
    run_job(other)  # a second results table sharing the run log
    skipped = run_job(settings).skipped
    assert skipped and skipped.startswith(f"nothing changed since run {first.run_id} (")
