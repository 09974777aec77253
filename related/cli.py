"""The command line: options -> one library call -> output. Errors become exit codes here.

Exit codes: 0 success (also: skipped because nothing changed), 1 runtime failure (database
unreachable, write failed), 2 bad usage or configuration (unknown setting, missing table or
column, no entries), 3 another run holds the lock, 130 interrupted.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import typing
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from related import __version__
from related.config import (
    Settings,
    SourceSettings,
    load_settings,
    setting_infos,
    settings_toml,
)
from related.db import ResultsLayout, connect, mask_url
from related.errors import RelatedError
from related.pipeline import RunReport, run_job
from related.progress import NoProgress, Progress

log = logging.getLogger("related")


class RelatedGroup(click.Group):
    """Turns library errors into one line on stderr and the error's exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RelatedError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted; the previous results were left as they were.", err=True)
            ctx.exit(130)


def _setting_options(sections: set[str]) -> Callable[[Callable], Callable]:
    """One flag per setting of the given sections, named like the setting (--top-k)."""

    def decorate(command: Callable) -> Callable:
        for info in reversed([i for i in setting_infos() if i.section in sections]):
            kind = info.type
            if kind is bool:
                option = click.option(
                    f"{info.flag}/--no-{info.flag[2:]}", info.name, default=None, help=info.help
                )
            elif typing.get_origin(kind) is tuple:
                # A list: the flag may be repeated and each value may hold several, comma-
                # separated (--stop-words 記事 --stop-words 今回,前回): all of them are kept.
                option = click.option(
                    info.flag,
                    info.name,
                    multiple=True,
                    callback=_joined_list,
                    help=info.help + " Repeat the flag or separate values with commas.",
                )
            else:
                click_type: Any = {int: int, float: float}.get(kind, str)
                option = click.option(
                    info.flag, info.name, type=click_type, default=None, help=info.help
                )
            command = option(command)
        return command

    return decorate


def _joined_list(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> Any:
    if not values:
        return None  # not given: the setting falls through to env, file or default
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def _common_options(command: Callable) -> Callable:
    command = click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="TOML config file (default: $RELATED_CONFIG, else ./related.toml if present).",
    )(command)
    command = click.option(
        "--database-url",
        default=None,
        help="Database URL; overrides $DATABASE_URL. sqlite:///blog.db, postgresql://... or mysql://...",
    )(command)
    return command


_format_option = click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    help="text for people, json for scripts (on stdout).",
)


def _settings(config_path: str | None, overrides: dict[str, Any]) -> Settings:
    return load_settings(environ=os.environ, config_path=config_path, overrides=overrides)


def _progress_factory(quiet: bool) -> Callable[[str, int], Progress | NoProgress]:
    if quiet:
        return NoProgress
    return lambda label, total: Progress(label, total)


_VERBOSE_HELP = "Log each stage and its time on stderr."
_QUIET_HELP = (
    "Print nothing but errors: no progress, no warnings, no text report from run "
    "(a --format json summary still goes to stdout)."
)


def _verbosity(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """-v / -q given after the subcommand (`related run -q`): same effect as before it."""
    if value:
        ctx.obj[param.name] = True
        _set_log_level(ctx.obj)


def _set_log_level(obj: dict[str, bool]) -> None:
    if obj["quiet"] and obj["verbose"]:
        raise click.UsageError("-q/--quiet and -v/--verbose exclude each other: give one.")
    log.setLevel(
        logging.ERROR if obj["quiet"] else logging.INFO if obj["verbose"] else logging.WARNING
    )


def _verbosity_options(command: Callable) -> Callable:
    for flags, name, help_text in (
        (("-q", "--quiet"), "quiet", _QUIET_HELP),
        (("-v", "--verbose"), "verbose", _VERBOSE_HELP),
    ):
        command = click.option(
            *flags,
            name,
            is_flag=True,
            expose_value=False,
            callback=_verbosity,
            help=help_text,
        )(command)
    return command


@click.group(cls=RelatedGroup)
@click.version_option(__version__, prog_name="related")
@click.option("-v", "--verbose", is_flag=True, help=_VERBOSE_HELP)
@click.option("-q", "--quiet", is_flag=True, help=_QUIET_HELP)
@click.pass_context
def cli(ctx: click.Context, verbose: bool, quiet: bool) -> None:
    """Related entries for Japanese blogs: MeCab tokens, TF-IDF, top-k cosine neighbours.

    Reads the published entries from DATABASE_URL, computes each entry's most similar
    entries and writes them back to a results table in one transaction.

    -q and -v work before or after the subcommand: `related -q run` = `related run -q`.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("related: %(message)s"))
    log.handlers[:] = [handler]
    log.propagate = False
    ctx.obj = {"quiet": quiet, "verbose": verbose}
    _set_log_level(ctx.obj)


@cli.command()
@_verbosity_options
@_common_options
@click.option(
    "--dry-run", is_flag=True, help="Compute everything, print what would change, write nothing."
)
@click.option("--force", is_flag=True, help="Run even if nothing changed since the last run.")
@_format_option
@_setting_options({"source", "tokenizer", "vectors", "neighbours", "output", "run"})
@click.pass_context
def run(
    ctx: click.Context,
    database_url: str | None,
    config_path: str | None,
    dry_run: bool,
    force: bool,
    output_format: str,
    **overrides: Any,
) -> None:
    """Compute related entries and write them to the results table.

    Only one run per results table at a time: a second one exits with code 3, or waits with
    --wait-for-lock. When neither the entries nor the settings changed since the last
    successful run, it says so and exits 0 without recomputing (--force runs anyway).

    \b
    Example:
        DATABASE_URL=sqlite:///blog.db related run
        related run --database-url postgresql://blog@db.example.com/blog --top-k 5
        related run --dry-run
        related run --preset lokka --results-layout lokka --results-table similarities
        related run --database-url mysql://blog@db.example.com/wordpress --preset wordpress
    """
    if output_format != "json":
        settings = _settings(config_path, {**overrides, "database_url": database_url})
        report = run_job(
            settings, dry_run=dry_run, force=force, progress=_progress_factory(ctx.obj["quiet"])
        )
        if not ctx.obj["quiet"]:
            click.echo(format_report(report))
        return
    # A pipeline keeps stdout as its artifact: it gets one JSON object whatever happens, with
    # the same status and exit code the error line on stderr reports.
    try:
        settings = _settings(config_path, {**overrides, "database_url": database_url})
        report = run_job(
            settings, dry_run=dry_run, force=force, progress=_progress_factory(ctx.obj["quiet"])
        )
    except RelatedError as exc:
        click.echo(_json({"status": "failed", "exit_code": exc.exit_code, "message": str(exc)}))
        raise
    except KeyboardInterrupt:
        click.echo(_json({"status": "interrupted", "exit_code": 130, "message": "interrupted"}))
        raise
    except Exception as exc:  # a bug: its traceback goes to stderr, its name to the artifact
        message = f"internal error {type(exc).__name__}; see the log (stderr)"
        click.echo(_json({"status": "failed", "exit_code": 1, "message": message}))
        raise
    status = "skipped" if report.skipped else "dry_run" if report.dry_run else "success"
    click.echo(_json({"status": status, "exit_code": 0, **report.to_dict()}))


def _json(payload: Any) -> str:
    """One line of JSON: ids and text as they are (not \\u-escaped), times in ISO 8601."""
    return json.dumps(payload, ensure_ascii=False, default=_json_value)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def format_report(report: RunReport) -> str:
    if report.skipped:
        return (
            f"{report.entries} entries: {report.skipped}; {report.results_table} in "
            f"{report.database} left as it is (--force to run anyway)"
        )
    lines = [
        f"{report.entries} entries, {report.terms} terms, {report.nnz} nonzeros -> "
        f"{report.pairs} related pairs"
        + (
            f" ({report.entries_without_terms} entries without terms)"
            if report.entries_without_terms
            else ""
        )
    ]
    if report.cache_hits:
        lines.append(
            f"token cache: terms of {report.cache_hits} entries reused, "
            f"{report.entries - report.cache_hits} tokenised"
        )
    if report.write is None:
        lines.append(f"dry run: nothing written to {report.results_table} in {report.database}")
        if report.diff is not None:
            lines.extend(format_diff(report.diff))
    else:
        w = report.write
        lines.append(
            f"wrote {w.table} in {report.database}: {w.total} rows "
            f"({w.inserted} inserted, {w.updated} updated, {w.deleted} deleted)"
        )
    lines.append("seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in report.seconds.items()))
    return "\n".join(lines)


def format_diff(diff: Any) -> list[str]:
    lines = [
        f"would change {diff.entries_changed} lists, add {diff.entries_added}, remove "
        f"{diff.entries_removed}, leave {diff.entries_unchanged} unchanged; "
        f"{diff.neighbours_gained} neighbours gained, {diff.neighbours_lost} lost"
    ]
    for change in diff.examples:
        parts = []
        if change.gained:
            parts.append("gains " + ", ".join(map(str, change.gained)))
        if change.lost:
            parts.append("loses " + ", ".join(map(str, change.lost)))
        lines.append(f"  {change.entry_id}: {'; '.join(parts) or 'same neighbours, new order'}")
    return lines


@cli.command()
@_verbosity_options
@_common_options
@click.option("--limit", default=20, show_default=True, help="How many runs to list.")
@_format_option
@_setting_options({"output"})
def runs(
    database_url: str | None,
    config_path: str | None,
    limit: int,
    output_format: str,
    **overrides: Any,
) -> None:
    """List recent runs from the run log, newest first, with the results table each wrote.

    When results_table is set (flag, environment or config file), only that table's runs
    are listed; otherwise the runs of every results table sharing the run log. Times are
    ISO 8601 in UTC.

    \b
    Example:
        related runs
        related runs --results-table similarities --limit 5 --format json
    """
    origins: dict[str, str] = {}
    settings = load_settings(
        environ=os.environ,
        config_path=config_path,
        overrides={**overrides, "database_url": database_url},
        origins=origins,
    )
    only = settings.output.results_table if "results_table" in origins else None
    with connect(settings.require_database_url(), settings.run) as db:
        records = db.list_runs(settings.output.runs_table, limit=limit, results_table=only)
    if output_format == "json":
        click.echo(_json([dataclasses.asdict(r) for r in records]))
        return
    if not records:
        where = f" for {only}" if only else ""
        click.echo(f"no runs{where} logged in {settings.output.runs_table} yet")
        return
    table_width = max(len("table"), *(len(r.results_table) for r in records))
    click.echo(
        f"{'run':>5}  {'status':<11} {'started':<25} {'table':<{table_width}} {'entries':>7} "
        f"{'+rows':>6} {'~rows':>6} {'-rows':>6}  message"
    )
    for r in records:
        click.echo(
            f"{r.run_id:>5}  {r.status:<11} {_iso(r.started_at):<25} "
            f"{r.results_table:<{table_width}} {_blank(r.entries):>7} "
            f"{_blank(r.rows_inserted):>6} {_blank(r.rows_updated):>6} "
            f"{_blank(r.rows_deleted):>6}  {r.message or ''}"
        )


def _iso(value: Any) -> str:
    """2026-12-04T05:06:07+00:00: the run log's times are aware UTC datetimes."""
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else str(value)


def _blank(value: Any) -> str:
    return "" if value is None else str(value)


@cli.command(name="eval")
@_verbosity_options
@_common_options
@click.option(
    "--truth",
    "truth_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help='Known related pairs: JSON {"entry_id": [related ids]} or CSV entry_id,related_entry_id.',
)
@click.option("--symmetric", is_flag=True, help="Count every truth pair in both directions.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Score a fresh computation with the current settings instead of the stored results.",
)
@_format_option
@_setting_options({"source", "tokenizer", "vectors", "neighbours", "output"})
@click.pass_context
def evaluate_command(
    ctx: click.Context,
    database_url: str | None,
    config_path: str | None,
    truth_path: str,
    symmetric: bool,
    dry_run: bool,
    output_format: str,
    **overrides: Any,
) -> None:
    """Score related entries against pairs you know belong together.

    Prints nDCG@10, recall@10, precision@5, MRR@10 and coverage, averaged over the entries
    of the truth file that have at least one link. A handful of pairs is enough to compare
    two settings with --dry-run.

    \b
    Example:
        related eval --truth pairs.csv
        related eval --truth truth.json --dry-run --title-weight 5 --format json
    """
    from related.evaluate import evaluate_database, format_evaluation, load_truth, symmetrise

    settings = _settings(config_path, {**overrides, "database_url": database_url})
    truth = load_truth(truth_path)
    if symmetric:
        truth = symmetrise(truth)
    evaluation = evaluate_database(
        settings, truth, fresh=dry_run, progress=_progress_factory(ctx.obj["quiet"])
    )
    if output_format == "json":
        click.echo(json.dumps(evaluation.to_dict()))
    else:
        click.echo(format_evaluation(evaluation))


@cli.command()
@_verbosity_options
@click.argument("entry_a")
@click.argument("entry_b")
@_common_options
@click.option("--limit", default=10, show_default=True, help="Terms to show in each list.")
@_format_option
@_setting_options({"source", "tokenizer", "vectors"})
def explain(
    entry_a: str,
    entry_b: str,
    database_url: str | None,
    config_path: str | None,
    limit: int,
    output_format: str,
    **overrides: Any,
) -> None:
    """Why ENTRY_A and ENTRY_B are related: the shared terms and what each contributes.

    The contributions of all shared terms add up to the cosine score the job computes with
    the same settings; the terms strong in one entry and absent from the other follow.

    \b
    Example:
        related explain 12 31
        related explain docker-intro docker-compose --limit 20 --format json
    """
    from related.explain import explain_in_database, format_explanation

    settings = _settings(config_path, {**overrides, "database_url": database_url})
    explanation = explain_in_database(settings, entry_a, entry_b, limit=limit)
    if output_format == "json":
        click.echo(json.dumps(explanation.to_dict(), ensure_ascii=False))
    else:
        click.echo(format_explanation(explanation, entry_a=entry_a, entry_b=entry_b, limit=limit))


@cli.command(name="config")
@_verbosity_options
@_common_options
@_format_option
@_setting_options({"source", "tokenizer", "vectors", "neighbours", "output", "run"})
def show_config(
    database_url: str | None, config_path: str | None, output_format: str, **overrides: Any
) -> None:
    """Print every setting as the job would use it, and where its value came from.

    The text form is a TOML document a config file could hold (unset settings commented
    out); the database password is masked. Useful to check what a CI job or container sees.

    \b
    Example:
        related config
        RELATED_TOP_K=5 related config --format json
    """
    origins: dict[str, str] = {}
    settings = load_settings(
        environ=os.environ,
        config_path=config_path,
        overrides={**overrides, "database_url": database_url},
        origins=origins,
    )
    url = mask_url(settings.database_url) if settings.database_url else None
    rows = [("database_url", url, origins.get("database_url", "not set"))]
    for info in setting_infos():
        section = getattr(settings, info.section)
        rows.append((info.name, getattr(section, info.name), origins.get(info.name, "default")))
    if output_format == "json":
        payload = {name: {"value": value, "from": origin} for name, value, origin in rows}
        click.echo(json.dumps(payload, ensure_ascii=False))
        return
    click.echo(settings_toml(settings, origins, database_url=url or ""))


@cli.command()
@_verbosity_options
@click.argument("entry_id")
@_common_options
@_format_option
@_setting_options({"source", "output"})
def show(
    entry_id: str,
    database_url: str | None,
    config_path: str | None,
    output_format: str,
    **overrides: Any,
) -> None:
    """Show the stored related entries of ENTRY_ID, with titles and scores.

    \b
    Example:
        related show 42
        related show my-first-post --format json
    """
    settings = _settings(config_path, {**overrides, "database_url": database_url})
    with connect(settings.require_database_url(), settings.run) as db:
        title, neighbours = db.read_neighbours(
            entry_id, layout=ResultsLayout.from_settings(settings.output), source=settings.source
        )
    if output_format == "json":
        payload = {
            "entry_id": entry_id,
            "title": title,
            "related": [n.__dict__ for n in neighbours],
        }
        click.echo(json.dumps(payload, ensure_ascii=False, default=str))
        return
    click.echo(format_neighbours(entry_id, title, neighbours))


def format_neighbours(entry_id: Any, title: str | None, neighbours: list) -> str:
    lines = [f"{entry_id}  {title if title is not None else '(entry not found in the source)'}"]
    if not neighbours:
        lines.append("  (no related entries stored)")
    for n in neighbours:
        lines.append(f"  {n.rank:>2}. {n.score:.3f}  {n.related_entry_id}  {n.title or ''}")
    return "\n".join(lines)


@cli.command()
@_verbosity_options
@click.option(
    "--database-url",
    default="sqlite:///related-demo.db",
    show_default=True,
    help="Where to create the sample database (SQLite).",
)
@click.option("--top-k", default=5, show_default=True, help="Related entries per entry.")
@click.pass_context
def demo(ctx: click.Context, database_url: str, top_k: int) -> None:
    """Create a sample SQLite blog, run the job on it and show a few results.

    \b
    Example:
        related demo
        related demo --database-url sqlite:////tmp/demo.db
    """
    from related.db import sqlite_path
    from related.sample import SAMPLE_SOURCE, create_sample_database, sample_entries

    path = Path(sqlite_path(database_url))
    count = create_sample_database(path)
    click.echo(f"created {count} sample entries in {mask_url(database_url)}")
    settings = load_settings(
        environ={},
        overrides={
            "database_url": database_url,
            "top_k": top_k,
            **{k: getattr(SAMPLE_SOURCE, k) for k in ("tags_column", "source_where")},
        },
    )
    report = run_job(settings, progress=_progress_factory(ctx.obj["quiet"]))
    click.echo(format_report(report))
    shown_topics: set[str] = set()
    with connect(database_url) as db:
        for entry in sample_entries():
            if (
                entry["category"] in shown_topics
                or not entry["published"]
                or len(shown_topics) >= 3
            ):
                continue
            shown_topics.add(entry["category"])
            title, neighbours = db.read_neighbours(
                str(entry["id"]),
                layout=ResultsLayout.from_settings(settings.output),
                source=SourceSettings(),
            )
            click.echo("")
            click.echo(format_neighbours(entry["id"], title, neighbours))


def main() -> None:
    cli(prog_name="related")
