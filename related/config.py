"""Settings as frozen dataclasses, resolved from defaults < config file < environment < flags.

Every setting has ONE name used everywhere: the field ``top_k`` is the TOML key ``top_k`` (in
its section, ``[neighbours]``), the environment variable ``RELATED_TOP_K`` and the flag
``--top-k``. The database URL is the exception users expect: ``DATABASE_URL``.

An environment variable that is set but empty (or blank) counts as unset, for every setting:
the value falls through to the config file or the default. To clear a file's value, edit the
file or pass the flag.

Nothing here reads the environment or the disk at import time; ``load_settings`` is given the
environment and the overrides explicitly, so tests and library users control every input.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from related.errors import ConfigError

ENV_PREFIX = "RELATED_"
PRESETS = ("lokka", "wordpress")  # related.presets.PRESETS (a test keeps them equal)
RESULT_LAYOUTS = ("related", "lokka")
# "auto" plus related.neighbours.MODES (a test keeps them equal). Below AUTO_PRUNED_FROM
# entries exact search takes seconds, and pruning would cost ~1% nDCG@10 (bench/quality).
NEIGHBOUR_MODES = ("auto", "exact", "pruned")
AUTO_PRUNED_FROM = 20_000
DEFAULT_CONFIG_FILE = "related.toml"


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class SourceSettings:
    """Where entries come from: a table (with optional columns), a preset or a SQL query."""

    preset: str | None = _setting(
        None,
        "A known blog schema: 'lokka' (Lokka's entries + categories tables) or 'wordpress' "
        "(published posts of wp_posts, with their tags and categories).",
    )
    table_prefix: str = _setting(
        "wp_", "Table name prefix of the wordpress preset (WordPress's $table_prefix)."
    )
    source_table: str = _setting("entries", "Table holding the entries.")
    id_column: str = _setting("id", "Entry id column (integer or text; its type is kept).")
    title_column: str = _setting("title", "Title column.")
    body_column: str = _setting("body", "Body column (HTML, Markdown or plain text).")
    tags_column: str | None = _setting(
        None, "Optional tags column: a delimited string or an array."
    )
    category_column: str | None = _setting(None, "Optional category column.")
    updated_at_column: str | None = _setting(None, "Optional last-modified column.")
    source_where: str | None = _setting(
        None,
        "Optional SQL condition selecting published entries, e.g. \"status = 'published'\". "
        "Trusted configuration, like source_query.",
    )
    source_query: str | None = _setting(
        None,
        "A SQL query returning id, title, body[, tags][, category][, updated_at]; "
        "replaces source_table and the column settings.",
    )
    tags_separator: str = _setting(",", "Separator for tags stored as one string.")


@dataclass(frozen=True)
class TokenizerSettings:
    """How text becomes terms. Field weights multiply a term's count in that field."""

    title_weight: float = _setting(
        1.0,
        "Weight of a term in the title relative to the body (the title also gets its own "
        "vector: title_share).",
    )
    tags_weight: float = _setting(3.0, "Weight of a term in the tags relative to the body.")
    category_weight: float = _setting(1.0, "Weight of a term in the category.")
    keep_pos: tuple[str, ...] = _setting(
        ("名詞",), "UniDic part-of-speech prefixes to keep (名詞 = nouns, incl. proper nouns)."
    )
    drop_pos: tuple[str, ...] = _setting(
        ("名詞-数詞",), "Part-of-speech prefixes to drop even when kept above (numerals)."
    )
    stop_words: tuple[str, ...] = _setting((), "Terms never used (compared after lower-casing).")
    whole_words: tuple[str, ...] = _setting(
        (),
        "Words kept whole as one term, never split by MeCab (product names such as "
        "'Google Cloud' or 機械学習); matched case-insensitively.",
    )
    user_dictionary: str | None = _setting(
        None,
        "Path to a MeCab user dictionary (.dic) compiled against unidic-lite, for words MeCab "
        "should know (see README); relative to the working directory.",
    )


@dataclass(frozen=True)
class VectorSettings:
    """TF-IDF weighting (see vectorize.py for the exact formula)."""

    sublinear_tf: bool = _setting(True, "Use 1 + log(count) instead of the raw count.")
    min_df: int = _setting(1, "Ignore terms found in fewer entries than this.")
    max_df: float = _setting(1.0, "Ignore terms found in more than this share of entries.")
    title_share: float = _setting(
        0.3,
        "Add each entry's title as a separately normalised vector with this weight, so the "
        "title counts the same in short and long entries (0 = off; see README).",
    )


@dataclass(frozen=True)
class NeighbourSettings:
    top_k: int = _setting(10, "Related entries kept per entry (1-1000).")
    neighbour_mode: str = _setting(
        "auto",
        "'exact': all pairs; 'pruned': candidates from each entry's strongest rare terms, "
        "scored exactly (at 100k entries ~9x faster than exact, recall@10 0.996); 'auto': exact "
        "below 20,000 entries, pruned from there.",
    )
    min_score: float = _setting(
        0.0, "Minimum cosine score (0-1) for a related entry; 0 keeps every positive score."
    )


@dataclass(frozen=True)
class OutputSettings:
    results_table: str = _setting(
        "related_entries", "Table the results are written to (default layout: related_entries)."
    )
    results_layout: str = _setting(
        "related",
        "Columns of the results table: 'related' (entry_id, related_entry_id, score, rank) or "
        "'lokka' (entry_id, similar_entry_id, score; use with results_table = similarities).",
    )
    runs_table: str = _setting("related_runs", "Table logging each run (start, end, status...).")
    token_cache_table: str = _setting(
        "related_token_cache",
        "Table caching each entry's terms between runs (and the same name + '_terms' for the "
        "terms); see token_cache.",
    )


@dataclass(frozen=True)
class RunSettings:
    """How the job runs: CPU use, one run at a time, bounded waits on the database."""

    workers: int = _setting(
        0,
        "Processes for tokenising and threads for the neighbour search; 0 = one per CPU core. "
        "Results do not depend on it.",
    )
    token_cache: bool = _setting(
        True,
        "Keep each entry's terms in token_cache_table so the next run tokenises only new and "
        "edited entries (results are identical either way); false = neither read nor write it.",
    )
    wait_for_lock: bool = _setting(
        False,
        "When another run holds the lock: wait up to lock_timeout (true) or exit at once "
        "with code 3 (false).",
    )
    lock_timeout: float = _setting(
        600.0, "Seconds to wait for another run to finish when wait_for_lock is true."
    )
    statement_timeout: float = _setting(
        300.0,
        "Longest a statement of the job may run, in seconds (PostgreSQL statement_timeout, "
        "MariaDB max_statement_time, MySQL max_execution_time for SELECTs, SQLite through a "
        "progress handler); 0 = none.",
    )
    db_lock_timeout: float = _setting(
        30.0,
        "Seconds a statement of the job may wait for a table or row lock (PostgreSQL "
        "lock_timeout, MySQL innodb_lock_wait_timeout and lock_wait_timeout in whole seconds, "
        "SQLite busy timeout); 0 = no limit on PostgreSQL and MySQL.",
    )


SECTIONS: dict[str, type] = {
    "source": SourceSettings,
    "tokenizer": TokenizerSettings,
    "vectors": VectorSettings,
    "neighbours": NeighbourSettings,
    "output": OutputSettings,
    "run": RunSettings,
}


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    source: SourceSettings = field(default_factory=SourceSettings)
    tokenizer: TokenizerSettings = field(default_factory=TokenizerSettings)
    vectors: VectorSettings = field(default_factory=VectorSettings)
    neighbours: NeighbourSettings = field(default_factory=NeighbourSettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    run: RunSettings = field(default_factory=RunSettings)

    def require_database_url(self) -> str:
        if not self.database_url:
            raise ConfigError(
                "No database given. Set DATABASE_URL (e.g. sqlite:///blog.db, "
                "postgresql://user@host/dbname or mysql://user@host/dbname), pass "
                "--database-url, or put database_url in the config file."
            )
        return self.database_url


@dataclass(frozen=True)
class SettingInfo:
    """One setting as documented: where it lives and how to spell it."""

    section: str
    name: str
    default: Any
    help: str
    type: Any

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def setting_infos() -> list[SettingInfo]:
    """Every setting, in section order: drives env parsing, TOML parsing and the README table."""
    infos = []
    for section, cls in SECTIONS.items():
        hints = _field_types(cls)
        for f in dataclasses.fields(cls):
            infos.append(SettingInfo(section, f.name, f.default, f.metadata["help"], hints[f.name]))
    return infos


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


# ---------------------------------------------------------------------------------------------
# Resolution


def load_settings(
    *,
    environ: Mapping[str, str],
    config_path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    origins: dict[str, str] | None = None,
) -> Settings:
    """Resolve settings: defaults < config file < environment < ``overrides`` (flags).

    ``config_path`` None means: ``RELATED_CONFIG`` if set, else ``related.toml`` in the working
    directory if it exists. ``overrides`` maps setting names (``top_k``) to values; None values
    are ignored so that unset flags fall through. ``origins``, if given, is filled with where
    each non-default value came from (``"env RELATED_TOP_K"``), for `related config`.
    """
    values: dict[str, Any] = {}
    database_url: str | None = None
    origin = origins if origins is not None else {}

    path = config_path or environ.get(ENV_PREFIX + "CONFIG")
    if path is None and Path(DEFAULT_CONFIG_FILE).is_file():
        path = DEFAULT_CONFIG_FILE
    if path is not None:
        file_values = _read_config_file(Path(path))
        database_url = file_values.pop("database_url", None)
        values.update(file_values)
        origin.update({name: f"file {path}" for name in file_values})
        if database_url:
            origin["database_url"] = f"file {path}"

    infos = {info.name: info for info in setting_infos()}
    for name, info in infos.items():
        raw = environ.get(info.env_var)
        # Empty means unset, for every variable alike: `RELATED_TOP_K=` in a compose file or a
        # CI matrix that leaves a value out must not silently replace the config file's value
        # (a blank RELATED_SOURCE_WHERE used to drop the file's filter and publish drafts).
        if raw is not None and raw.strip():
            values[name] = _parse_env_value(info, raw)
            origin[name] = f"env {info.env_var}"
    for variable in ("RELATED_DATABASE_URL", "DATABASE_URL"):
        if environ.get(variable, "").strip():
            database_url = environ[variable]
            origin["database_url"] = f"env {variable}"

    for name, value in (overrides or {}).items():
        if value is None:
            continue
        if name == "database_url":
            database_url = value
            origin[name] = "flag --database-url"
        elif name in infos:
            values[name] = _coerce(infos[name], value, origin=infos[name].flag)
            origin[name] = f"flag {infos[name].flag}"
        else:
            raise ConfigError(f"Unknown setting {name!r}.")

    sections = {}
    for section, cls in SECTIONS.items():
        own = {f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values}
        sections[section] = cls(**own)
    settings = Settings(database_url=database_url or None, **sections)
    validate_settings(settings)
    return settings


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            document = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(
            f"Config file {path} does not exist. Check --config / RELATED_CONFIG."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Config file {path} is not valid TOML: {exc}.") from None

    infos = {info.name: info for info in setting_infos()}
    values: dict[str, Any] = {}
    for key, value in document.items():
        if key == "database_url":
            if not isinstance(value, str):
                raise ConfigError(f"{path}: database_url must be a string.")
            values[key] = value
            continue
        if key not in SECTIONS:
            if key in infos:
                raise ConfigError(
                    f"{path}: {key} must be in its section: put it under "
                    f"[{infos[key].section}]. Top-level keys are database_url and the "
                    f"sections {', '.join(SECTIONS)}."
                )
            raise ConfigError(
                f"{path}: unknown key {key!r}.{_did_you_mean(key, [*SECTIONS, 'database_url'])} "
                f"Top-level keys are database_url and the sections {', '.join(SECTIONS)}."
            )
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: [{key}] must be a table (section).")
        allowed = [f.name for f in dataclasses.fields(SECTIONS[key])]
        for name, item in value.items():
            if name not in allowed:
                if name in infos:  # a real setting, in the wrong section
                    raise ConfigError(
                        f"{path}: {name} belongs in [{infos[name].section}], not in [{key}]. "
                        f"Move it under [{infos[name].section}]."
                    )
                if name == "database_url":
                    raise ConfigError(
                        f"{path}: database_url is a top-level key, not a setting of [{key}]. "
                        "Move it above the first [section]."
                    )
                raise ConfigError(
                    f"{path}: unknown setting {name!r} in [{key}].{_did_you_mean(name, allowed)} "
                    f"Settings of [{key}]: {', '.join(allowed)}."
                )
            values[name] = _coerce(infos[name], item, origin=f"{path} [{key}] {name}")
    return values


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse_env_value(info: SettingInfo, raw: str) -> Any:
    """Environment values are strings (never empty here: empty means unset); lists are
    comma-separated."""
    kind = _base_type(info.type)
    if kind is tuple:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise ConfigError(f"{info.env_var}={raw!r} is not a boolean. Use true or false.")
    if kind in (int, float):
        raw = raw.strip()
    return _coerce(info, raw, origin=info.env_var)


def _coerce(info: SettingInfo, value: Any, *, origin: str) -> Any:
    kind = _base_type(info.type)
    if value is None and _is_optional(info.type):
        return None
    try:
        if kind is tuple:
            if isinstance(value, str):
                value = [part.strip() for part in value.split(",") if part.strip()]
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise TypeError
            return tuple(value)
        if kind is bool:
            if not isinstance(value, bool):
                raise TypeError
            return value
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if kind is str:
            if not isinstance(value, str):
                raise TypeError
            return value
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"{origin}: {value!r} is not a valid {kind.__name__} for {info.name}.")


def _is_optional(tp: Any) -> bool:
    return type(None) in typing.get_args(tp)


def _base_type(tp: Any) -> type:
    """str | None -> str, tuple[str, ...] -> tuple, float -> float."""
    if typing.get_origin(tp) is tuple:
        return tuple
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if args else tp


# ---------------------------------------------------------------------------------------------
# Settings written back as TOML (`related config`)


def toml_value(value: Any) -> str:
    """A value as TOML writes it: true, 10, 0.3, "text", ["名詞"]. None has no TOML form."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a valid TOML basic string: the same escapes, \uXXXX included.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def settings_toml(settings: Settings, origins: Mapping[str, str], *, database_url: str) -> str:
    """Every setting as a TOML document a config file could hold, with where each value came
    from as a comment. Unset optional settings are commented out (TOML has no null).
    ``database_url`` is given as it may be shown (password masked)."""
    lines = [
        "# Settings as related would use them; after each, where its value came from.",
        _toml_line("database_url", database_url or None, origins.get("database_url", "not set")),
    ]
    for section in SECTIONS:
        lines += ["", f"[{section}]"]
        for info in setting_infos():
            if info.section == section:
                value = getattr(getattr(settings, section), info.name)
                lines.append(_toml_line(info.name, value, origins.get(info.name, "default")))
    return "\n".join(lines)


def _toml_line(name: str, value: Any, origin: str) -> str:
    if value is None:
        return f"# {name} is not set"
    return f"{name} = {toml_value(value)}  # {origin}"


# ---------------------------------------------------------------------------------------------
# Validation, once, at the public edge

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def validate_identifier(value: str, setting: str, *, qualified: bool = False) -> tuple[str, ...]:
    """Check a table or column name from configuration; return its parts (schema, name).

    Names are restricted to letters, digits and underscores (and one dot for a schema when
    ``qualified``). They are still quoted with sql.Identifier when composed, but refusing odd
    names up front turns a hostile or mistyped value into a clear configuration error.
    """
    parts = tuple(value.split(".")) if qualified else (value,)
    if len(parts) > 2 or not all(_IDENTIFIER.match(p) for p in parts):
        hint = " (optionally schema.table)" if qualified else ""
        raise ConfigError(
            f"{setting} = {value!r} is not a valid name: use letters, digits and underscores"
            f"{hint}, starting with a letter or underscore. For anything else use source_query."
        )
    return parts


_TABLE_PREFIX = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")


def validate_table_prefix(prefix: str) -> str:
    """The wordpress preset's prefix goes into SQL as part of table names: checked like one."""
    if not _TABLE_PREFIX.match(prefix):
        raise ConfigError(
            f"table_prefix = {prefix!r} is not a valid table name prefix: use letters, digits "
            "and underscores, starting with a letter or underscore (WordPress's default: wp_)."
        )
    return prefix


def validate_settings(settings: Settings) -> None:
    src = settings.source
    if src.preset is not None and src.preset not in PRESETS:
        raise ConfigError(
            f"preset = {src.preset!r} is not known. Known presets: {', '.join(PRESETS)}; "
            "for another schema set source_query."
        )
    if src.preset is not None and src.source_query is not None:
        raise ConfigError("Set either preset or source_query, not both.")
    if src.source_query is None:
        validate_identifier(src.source_table, "source_table", qualified=True)
        for name in ("id_column", "title_column", "body_column"):
            validate_identifier(getattr(src, name), name)
        for name in ("tags_column", "category_column", "updated_at_column"):
            value = getattr(src, name)
            if value:
                validate_identifier(value, name)
    elif not src.source_query.strip():
        raise ConfigError("source_query is empty. Give a SELECT or unset it to read source_table.")
    validate_table_prefix(src.table_prefix)
    if not src.tags_separator:
        raise ConfigError("tags_separator must not be empty.")
    validate_identifier(settings.output.results_table, "results_table", qualified=True)
    validate_identifier(settings.output.runs_table, "runs_table", qualified=True)
    validate_identifier(settings.output.token_cache_table, "token_cache_table", qualified=True)
    if settings.output.results_layout not in RESULT_LAYOUTS:
        raise ConfigError(
            f"results_layout = {settings.output.results_layout!r} is not known. "
            f"Use one of: {', '.join(RESULT_LAYOUTS)}."
        )
    run = settings.run
    if run.workers < 0:
        raise ConfigError(f"workers = {run.workers} must be 0 (one per CPU core) or more.")
    for name in ("lock_timeout", "statement_timeout", "db_lock_timeout"):
        if getattr(run, name) < 0:
            raise ConfigError(f"{name} = {getattr(run, name)} must be 0 or more seconds.")

    tok = settings.tokenizer
    for name in ("title_weight", "tags_weight", "category_weight"):
        if getattr(tok, name) < 0:
            raise ConfigError(f"{name} = {getattr(tok, name)} must be 0 or more.")
    if not tok.keep_pos:
        raise ConfigError("keep_pos is empty: no term would be kept. Default: 名詞.")

    vec = settings.vectors
    if vec.min_df < 1:
        raise ConfigError(f"min_df = {vec.min_df} must be at least 1.")
    if not 0 < vec.max_df <= 1:
        raise ConfigError(f"max_df = {vec.max_df} must be in (0, 1].")
    if not 0 <= vec.title_share <= 10:
        raise ConfigError(f"title_share = {vec.title_share} must be between 0 and 10.")

    nb = settings.neighbours
    if nb.neighbour_mode not in NEIGHBOUR_MODES:
        raise ConfigError(
            f"neighbour_mode = {nb.neighbour_mode!r} is not known. Use one of: "
            f"{', '.join(NEIGHBOUR_MODES)}."
        )
    if not 1 <= nb.top_k <= 1000:
        raise ConfigError(f"top_k = {nb.top_k} must be between 1 and 1000.")
    if not 0 <= nb.min_score <= 1:
        raise ConfigError(f"min_score = {nb.min_score} must be between 0 and 1.")
