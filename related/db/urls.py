"""Database URLs: the one place a password is handled.

Every form the job accepts (SQLAlchemy/Django convention):

    sqlite:///blog.db                       relative to the working directory
    sqlite:////var/data/blog.db             absolute
    postgresql://user:pw@host:5432/db?sslmode=require   any libpq URL (postgres:// too)
    mysql://user:pw@host:3306/db?ssl_ca=/etc/ca.pem     MySQL (mariadb://, mysql+pymysql:// too)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from related.errors import ConfigError

SCHEMES = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mysql+pymysql": "mysql",
    "mariadb+pymysql": "mysql",
}

_PASSWORD_IN_NETLOC = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@?#]*):([^@/?#]*)@")
_PASSWORD_IN_QUERY = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, safe for logs and error messages."""
    masked = _PASSWORD_IN_NETLOC.sub(r"\1:***@", url)
    return _PASSWORD_IN_QUERY.sub(r"\1***", masked)


def url_secrets(url: str) -> list[str]:
    """The password(s) in a URL, as written and percent-decoded, to scrub from driver errors."""
    found = [m.group(2) for m in [_PASSWORD_IN_NETLOC.match(url)] if m and m.group(2)]
    found += [m.group(0).split("=", 1)[1] for m in _PASSWORD_IN_QUERY.finditer(url)]
    found += [unquote(secret) for secret in found]
    return sorted({s for s in found if s}, key=len, reverse=True)


def scrub(message: str, url: str) -> str:
    for secret in url_secrets(url):
        message = message.replace(secret, "***")
    return message


def backend_of(url: str) -> str:
    """'sqlite', 'postgresql' or 'mysql' from the URL's scheme; ConfigError otherwise."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in SCHEMES:
        raise ConfigError(
            f"Unsupported database URL scheme {scheme or '(none)'!r} in {mask_url(url)!r}. "
            "Use sqlite:///path.db, postgresql://user@host/dbname or mysql://user@host/dbname."
        )
    return SCHEMES[scheme]


def sqlite_path(url: str) -> Path:
    """sqlite:///relative.db -> relative.db; sqlite:////abs.db -> /abs.db."""
    rest = url[len("sqlite:///") :].split("?", 1)[0]
    if not url.startswith("sqlite:///") or not rest:
        raise ConfigError(
            f"Bad SQLite URL {mask_url(url)!r}. Use sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db."
        )
    return Path(rest)


# Query parameters of a MySQL URL, passed to the driver under these names.
_MYSQL_SSL = ("ssl_ca", "ssl_cert", "ssl_key")
_MYSQL_FLAGS = ("ssl_verify_cert", "ssl_verify_identity", "ssl_disabled")
_MYSQL_SECONDS = ("connect_timeout", "read_timeout", "write_timeout")
MYSQL_PARAMETERS = (
    *_MYSQL_SSL,
    *_MYSQL_FLAGS,
    *_MYSQL_SECONDS,
    "unix_socket",
    "password",
    "init_command",  # a statement run once at connect, e.g. SET SESSION sql_mode = '...'
)


@dataclass(frozen=True)
class MySQLTarget:
    """What a mysql:// URL says, as keyword arguments for the driver."""

    database: str
    connect_args: dict[str, object] = field(default_factory=dict)


def mysql_target(url: str) -> MySQLTarget:
    """mysql://user:pw@host:3306/db?ssl_ca=... -> the database name and the driver's arguments.

    Percent-escapes in the user and password are decoded (a ``@`` in a password is ``%40``).
    The character set is always utf8mb4: it is not a parameter.
    """
    parts = urlsplit(url)
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise ConfigError(
            f"MySQL URL {mask_url(url)!r} names no database. Use mysql://user:password@host:3306/"
            "dbname."
        )
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"MySQL URL {mask_url(url)!r} has a bad port.") from None
    args: dict[str, object] = {
        "host": parts.hostname or "localhost",
        "port": port or 3306,
        "user": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else "",
        "connect_timeout": 10,
    }
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in MYSQL_PARAMETERS:
            raise ConfigError(
                f"MySQL URL parameter {name!r} is not known. Known: "
                f"{', '.join(MYSQL_PARAMETERS)} (charset is always utf8mb4)."
            )
        if name in _MYSQL_FLAGS:
            args[name] = value.lower() in ("1", "true", "yes", "on")
        elif name in _MYSQL_SECONDS:
            try:
                args[name] = int(value)
            except ValueError:
                raise ConfigError(
                    f"MySQL URL parameter {name}={value!r} is not whole seconds."
                ) from None
        else:
            args[name] = value
    return MySQLTarget(database=database, connect_args=args)
