"""The library's exceptions. The CLI maps them to exit codes in one place (cli.py)."""


class RelatedError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class ConfigError(RelatedError):
    """A setting, flag, config file or database URL is wrong: fix the configuration."""

    exit_code = 2


class SourceError(RelatedError):
    """The source of entries is unusable (missing table/column, no rows, duplicate ids...)."""

    exit_code = 2


class DatabaseError(RelatedError):
    """The database failed at run time (unreachable, connection lost, write failed)."""

    exit_code = 1
