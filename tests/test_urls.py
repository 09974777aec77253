"""Database URLs: which backend, what the driver gets, and that no password is ever shown."""

from __future__ import annotations

import pytest

from related.db.urls import backend_of, mask_url, mysql_target, scrub
from related.errors import ConfigError


@pytest.mark.parametrize(
    ("url", "backend"),
    [
        ("sqlite:///blog.db", "sqlite"),
        ("postgres://u@h/db", "postgresql"),
        ("postgresql://u@h/db", "postgresql"),
        ("mysql://u@h/db", "mysql"),
        ("MariaDB://u@h/db", "mysql"),
        ("mysql+pymysql://u@h/db", "mysql"),
    ],
)
def test_the_scheme_picks_the_backend(url, backend):
    assert backend_of(url) == backend


def test_an_unknown_scheme_names_the_known_ones_and_masks_the_password():
    with pytest.raises(ConfigError) as error:
        backend_of("mssql://sa:Secr3t@h/db")
    assert "'mssql'" in str(error.value) and "Secr3t" not in str(error.value)
    assert "mysql://user@host/dbname" in str(error.value)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("mysql://blog:p%40ss@h:3306/db", "mysql://blog:***@h:3306/db"),
        ("postgresql://u:pw@h/db?sslmode=require", "postgresql://u:***@h/db?sslmode=require"),
        ("postgresql://u@h/db?password=pw&sslmode=x", "postgresql://u@h/db?password=***&sslmode=x"),
        ("sqlite:///blog.db", "sqlite:///blog.db"),
    ],
)
def test_mask_url(url, masked):
    assert mask_url(url) == masked


def test_scrub_removes_the_password_as_written_and_decoded():
    url = "mysql://blog:p%40ss%2Fw0rd@h/db"
    message = "Access denied for 'blog' with p@ss/w0rd (p%40ss%2Fw0rd)"
    assert scrub(message, url) == "Access denied for 'blog' with *** (***)"


def test_mysql_target_decodes_the_user_and_password_and_converts_parameters():
    target = mysql_target(
        "mysql://bl%3Aog:p%40ss@db.example.com:3307/my%20blog?ssl_ca=/etc/ca.pem"
        "&ssl_verify_cert=true&ssl_disabled=0&connect_timeout=5&init_command=SET%20x%3D1"
    )
    assert target.database == "my blog"
    assert target.connect_args == {
        "host": "db.example.com",
        "port": 3307,
        "user": "bl:og",
        "password": "p@ss",
        "connect_timeout": 5,
        "ssl_ca": "/etc/ca.pem",
        "ssl_verify_cert": True,
        "ssl_disabled": False,
        "init_command": "SET x=1",
    }
    defaults = mysql_target("mariadb://localhost/blog").connect_args
    assert (defaults["port"], defaults["user"], defaults["password"]) == (3306, None, "")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u:pw@h:3306/", "names no database"),
        ("mysql://u:pw@h:99999/db", "has a bad port"),
        ("mysql://u:pw@h/db?charset=latin1", "parameter 'charset' is not known"),
        ("mysql://u:pw@h/db?read_timeout=soon", "read_timeout='soon' is not whole seconds"),
    ],
)
def test_bad_mysql_urls_are_config_errors_without_the_password(url, message):
    with pytest.raises(ConfigError) as error:
        mysql_target(url)
    assert message in str(error.value) and ":pw@" not in str(error.value)
