"""Shipping: the image's install recipe run for real, the CI examples, the Dockerfile itself.

There is no Docker engine in CI, so nothing here runs `docker`. What can be checked without one
is checked for real:

* TestImageInstall: the image-install test. It copies the build context the way the Dockerfile's
  build stage sees it (its COPY lines, filtered by .dockerignore), runs the build stage's own
  `pip wheel` command, then the runtime stage's own `pip install ...` RUN line in a fresh venv,
  and runs `related --version` and `related demo` from that venv. The pip commands are read
  from the Dockerfile, so the two cannot drift apart.
* The pipeline examples validate against their published JSON schemas (check-jsonschema's
  vendored copies: offline).
* The Dockerfile's final stage: slim Python with a pinned minor, non-root, the entrypoint, no
  compiler; .dockerignore keeps tests, venvs, .git, caches and databases out.
* hadolint passes with the project's .hadolint.yaml, so `make test` catches a lint regression.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from related import __version__
from related.config import setting_infos

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
# The tools installed with the test extras live next to the running interpreter (not resolved:
# in a venv, sys.executable is a symlink into the base Python).
BIN = Path(sys.executable).parent
GITHUB_WORKFLOW = ROOT / "examples" / "github-actions" / "related.yml"
CIRCLECI_CONFIG = ROOT / "examples" / "circleci" / "config.yml"

# The demo prints each entry's neighbours as "   1. 0.400  17  <title>".
RANKED_LINE = re.compile(r"^\s+\d+\. [01]\.\d{3}  \S+  \S.*$", re.MULTILINE)


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed next to {sys.executable}: pip install -e '.[test]'")
    return str(path)


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)


def explain(result: subprocess.CompletedProcess[str]) -> str:
    command = shlex.join(str(a) for a in result.args)
    return f"$ {command}\nexit {result.returncode}\n{result.stdout}\n{result.stderr}"


# ---------------------------------------------------------------------------------------------
# Reading the Dockerfile: enough of its syntax for the file we ship, strict about the rest.


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass(frozen=True)
class Stage:
    image: str  # with the global ARG defaults substituted
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def read_instructions(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined; comment lines dropped (also inside one)."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not pending:
            start = number
        pending.append(line[:-1].strip() if line.endswith("\\") else line)
        if not line.endswith("\\"):
            keyword, _, args = " ".join(pending).partition(" ")
            instructions.append(Instruction(keyword.upper(), args.strip(), start))
            pending = []
    assert not pending, "The Dockerfile ends inside a continuation line."
    return instructions


def read_stages(text: str) -> list[Stage]:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in read_instructions(text):
        if instruction.keyword == "FROM":
            image, _, name = instruction.args.partition(" AS ")
            image = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m.group(1)], image.strip())
            stages.append(Stage(image, name.strip() or None, []))
        elif not stages and instruction.keyword == "ARG":
            key, _, default = instruction.args.partition("=")
            global_args[key] = default
        else:
            stages[-1].instructions.append(instruction)
    return stages


def json_form(instruction: Instruction) -> list[str]:
    value = json.loads(instruction.args)
    assert isinstance(value, list), f"line {instruction.line}: use the JSON (exec) form"
    return value


def key_values(instruction: Instruction) -> dict[str, str]:
    """The NAME=value pairs of an ENV, LABEL or ARG instruction."""
    return dict(token.partition("=")[::2] for token in shlex.split(instruction.args))


def pip_commands(stage: Stage, subcommand: str) -> list[list[list[str]]]:
    """Each RUN running `pip SUBCOMMAND`, as its &&-separated commands (--mount flags dropped)."""
    found = []
    for instruction in stage.all("RUN"):
        tokens = shlex.split(instruction.args)
        while tokens and tokens[0].startswith("--mount="):
            tokens.pop(0)
        commands: list[list[str]] = [[]]
        for token in tokens:
            if token == "&&":
                commands.append([])
            else:
                commands[-1].append(token)
        if any(command[:2] == ["pip", subcommand] for command in commands):
            found.append(commands)
    return found


STAGES = read_stages(DOCKERFILE.read_text(encoding="utf-8"))
BUILD, RUNTIME = STAGES[0], STAGES[-1]


# ---------------------------------------------------------------------------------------------
# .dockerignore, with Docker's rules: * and ? stay within a path segment, ** spans segments, a
# pattern matching a directory covers everything under it, "!" re-includes, the last match wins.


class DockerIgnore:
    def __init__(self, text: str):
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
            self.rules.append((negate, re.compile(self._regex(pattern))))

    @staticmethod
    def _regex(pattern: str) -> str:
        out, i = [], 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out.append("(?:.*/)?")
                i += 3
            elif pattern.startswith("**", i):
                out.append(".*")
                i += 2
            elif pattern[i] == "*":
                out.append("[^/]*")
                i += 1
            elif pattern[i] == "?":
                out.append("[^/]")
                i += 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                out.append(pattern[i : end + 1])
                i = end + 1
            else:
                out.append(re.escape(pattern[i]))
                i += 1
        return "".join(out) + r"\Z"

    def excluded(self, path: str) -> bool:
        parts = path.split("/")
        candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        excluded = False
        for negate, regex in self.rules:
            if any(regex.match(candidate) for candidate in candidates):
                excluded = not negate
        return excluded


DOCKERIGNORE = DockerIgnore((ROOT / ".dockerignore").read_text(encoding="utf-8"))


def copy_build_context(destination: Path) -> None:
    """Lay out what the build stage's COPY lines copy into its WORKDIR, as Docker would."""
    copies = BUILD.all("COPY")
    assert copies, "The build stage copies nothing."
    for instruction in copies:
        *sources, target = shlex.split(instruction.args)
        assert not any(s.startswith("--") for s in sources), f"line {instruction.line}: flags"
        for source in sources:
            path = ROOT / source
            assert path.exists() and not DOCKERIGNORE.excluded(source.rstrip("/")), (
                f"Dockerfile line {instruction.line} copies {source}, which is missing from the "
                "build context (absent, or not let through by .dockerignore)."
            )
            files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
            for file in files:
                relative = file.relative_to(ROOT).as_posix()
                if DOCKERIGNORE.excluded(relative):
                    continue
                if path.is_dir():
                    copied = destination / target / file.relative_to(path)
                elif target.endswith("/"):
                    copied = destination / target / file.name
                else:
                    copied = destination / target
                copied.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, copied)


# ---------------------------------------------------------------------------------------------
# The image-install test


@dataclass(frozen=True)
class InstalledImage:
    venv: Path
    workdir: Path
    env: dict[str, str]

    def related(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run([str(self.venv / "bin" / "related"), *args], cwd=self.workdir, env=self.env)


def image_environment() -> dict[str, str]:
    """This process's environment minus the job's settings, plus the image's ENV lines."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "PYTHONPATH", "VIRTUAL_ENV")
        and not key.startswith("RELATED_")
    }
    for instruction in RUNTIME.all("ENV"):
        env.update(key_values(instruction))
    return env


def to_local(token: str, wheels: Path) -> str:
    """The image's /wheels directory is a temporary directory here."""
    return re.sub(r"(^|=)/wheels(?=/|$)", lambda m: m.group(1) + str(wheels), token)


@pytest.fixture(scope="module")
def installed_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstalledImage]:
    base = tmp_path_factory.mktemp("image")
    context, wheels, venv, workdir = (base / d for d in ("src", "wheels", "venv", "work"))
    workdir.mkdir()
    env = image_environment()
    try:
        # Build stage: its `pip wheel` command, run on the same files in the same place.
        copy_build_context(context)
        (build_commands,) = pip_commands(BUILD, "wheel")
        (wheel_command,) = [c for c in build_commands if c[:2] == ["pip", "wheel"]]
        # The Dockerfile passes --no-cache-dir; here pip may reuse its cache, so that `make
        # test` does not rebuild unidic-lite's 47 MB sdist and re-download numpy and scipy on
        # every run. The wheels that come out are the same.
        args = [to_local(a, wheels) for a in wheel_command[2:] if a != "--no-cache-dir"]
        result = run([sys.executable, "-m", "pip", "wheel", *args], cwd=context, env=env)
        assert result.returncode == 0, explain(result)

        # Runtime stage: a fresh venv stands in for the slim image's Python, and every command
        # of the RUN line that installs the wheel runs in it, flags and all.
        result = run([sys.executable, "-m", "venv", str(venv)], env=env)
        assert result.returncode == 0, explain(result)
        (runtime_commands,) = pip_commands(RUNTIME, "install")
        for command in runtime_commands:
            program = {"pip": [str(venv / "bin" / "python"), "-m", "pip"]}.get(
                command[0], [str(venv / "bin" / command[0])]
            )
            args = []
            for token in (to_local(a, wheels) for a in command[1:]):
                if "*" in token:  # the shell's glob, e.g. /wheels/related-*.whl
                    matches = sorted(Path(token).parent.glob(Path(token).name))
                    assert matches, f"{token} matches no file"
                    args.extend(str(m) for m in matches)
                else:
                    args.append(token)
            result = run([*program, *args], cwd=workdir, env=env)
            assert result.returncode == 0, explain(result)
        yield InstalledImage(venv, workdir, env)
    finally:
        shutil.rmtree(base, ignore_errors=True)  # ~600 MB: wheels and an installed venv


class TestImageInstall:
    """The wheel installed exactly as the Dockerfile installs it, then run from that venv."""

    def test_version(self, installed_image: InstalledImage):
        result = installed_image.related("--version")
        assert result.returncode == 0, explain(result)
        assert f"version {__version__}" in result.stdout

    def test_demo_prints_related_entries(self, installed_image: InstalledImage):
        db = installed_image.workdir / "demo.db"
        result = installed_image.related("demo", "--database-url", f"sqlite:///{db}")
        assert result.returncode == 0, explain(result)
        assert "related pairs" in result.stdout
        assert len(RANKED_LINE.findall(result.stdout)) >= 3, explain(result)

    def test_installed_from_the_wheel_file_not_editable(self, installed_image: InstalledImage):
        script = (
            "import importlib.metadata, related; "
            "print(related.__file__); "
            "print(importlib.metadata.distribution('related').read_text('direct_url.json'))"
        )
        python = str(installed_image.venv / "bin" / "python")
        result = run([python, "-c", script], cwd=installed_image.workdir, env=installed_image.env)
        assert result.returncode == 0, explain(result)
        module_file, direct_url = result.stdout.split("\n", 1)
        assert Path(module_file).is_relative_to(installed_image.venv), module_file
        origin = json.loads(direct_url)
        assert "archive_info" in origin and origin["url"].endswith(".whl"), origin

    def test_build_tools_are_gone(self, installed_image: InstalledImage):
        python = str(installed_image.venv / "bin" / "python")
        script = "import importlib.util as u; print(u.find_spec('setuptools'))"
        result = run([python, "-c", script], cwd=installed_image.workdir, env=installed_image.env)
        assert result.stdout.strip() == "None", explain(result)


# ---------------------------------------------------------------------------------------------
# The pipeline examples


@pytest.mark.parametrize(
    ("example", "schemas"),
    [
        (GITHUB_WORKFLOW, ["vendor.github-workflows", "custom.github-workflows-require-timeout"]),
        (CIRCLECI_CONFIG, ["vendor.circle-ci"]),
    ],
    ids=["github-actions", "circleci"],
)
def test_pipeline_example_matches_its_published_schema(example: Path, schemas: list[str]):
    for schema in schemas:
        result = run([tool("check-jsonschema"), "--builtin-schema", schema, str(example)])
        assert result.returncode == 0, explain(result)


@pytest.mark.parametrize("example", [GITHUB_WORKFLOW, CIRCLECI_CONFIG], ids=lambda p: p.parent.name)
def test_pipeline_example_passes_the_database_url_by_name(example: Path):
    # `-e DATABASE_URL` copies the value from the step's environment; `-e DATABASE_URL=...`
    # would put the password on a command line, where CI logs and `ps` can show it.
    text = example.read_text(encoding="utf-8")
    assert re.search(r"docker run --rm -e DATABASE_URL\s", text)
    assert "DATABASE_URL=$" not in text and "DATABASE_URL=${" not in text


@pytest.mark.parametrize("example", [GITHUB_WORKFLOW, CIRCLECI_CONFIG], ids=lambda p: p.parent.name)
def test_pipeline_example_leaves_the_settings_to_the_config_file(example: Path):
    # The environment beats the config file: a RELATED_TOP_K set in the example would silently
    # replace the top_k a user writes in .related/related.toml.
    text = example.read_text(encoding="utf-8")
    setting_names = {info.env_var for info in setting_infos()}
    assert setting_names & set(re.findall(r"\bRELATED_[A-Z_]+\b", text)) == set()
    assert "RELATED_CONFIG=/config/related.toml" in text


# ---------------------------------------------------------------------------------------------
# The Dockerfile and .dockerignore


def test_runtime_stage_is_slim_python_with_a_pinned_minor():
    assert len(STAGES) >= 2, "Build the wheel in a stage of its own."
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", RUNTIME.image), RUNTIME.image


def test_runtime_stage_runs_related_as_a_user():
    users = RUNTIME.all("USER")
    assert users, "The runtime stage runs as root: add a USER."
    user = users[-1].args.split(":")[0]
    assert user not in ("root", "0"), users[-1]
    assert json_form(RUNTIME.all("ENTRYPOINT")[-1]) == ["related"]
    assert json_form(RUNTIME.all("CMD")[-1]) == ["run"]
    # The working directory belongs to that user (Docker's WORKDIR would create it as root).
    workdir = RUNTIME.all("WORKDIR")[-1].args
    owned = re.compile(r"(install -d|chown)\b.*\b(related|10001)\b.*" + re.escape(workdir))
    assert any(owned.search(r.args) for r in RUNTIME.all("RUN")), f"who owns {workdir}?"


def test_runtime_stage_has_no_compiler_and_no_apt():
    forbidden = re.compile(r"\b(apt-get|apt|apk|build-essential|gcc|g\+\+|clang|cc|make)\b")
    for instruction in RUNTIME.all("RUN"):
        assert not forbidden.search(instruction.args), f"line {instruction.line}"
    assert not RUNTIME.all("COPY"), "The runtime stage installs from a bind mount, copies none."
    (install,) = [
        c for cmds in pip_commands(RUNTIME, "install") for c in cmds if c[:2] == ["pip", "install"]
    ]
    for flag in ("--no-cache-dir", "--no-index", "--only-binary=:all:"):
        assert flag in install, f"pip install without {flag}"


def test_runtime_environment_and_labels():
    env: dict[str, str] = {}
    for instruction in RUNTIME.all("ENV"):
        env.update(key_values(instruction))
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    assert "RELATED_CONFIG" not in env, "A named but missing config file is an error (exit 2)."
    labels: dict[str, str] = {}
    for instruction in RUNTIME.all("LABEL"):
        labels.update(key_values(instruction))
    for key in ("source", "version", "description", "licenses"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    args: dict[str, str] = {}
    for instruction in RUNTIME.all("ARG"):
        args.update(key_values(instruction))
    assert args.get("VERSION") == __version__, (
        f"Dockerfile ARG VERSION={args.get('VERSION')} but related.__version__ is {__version__}: "
        "update the ARG's default."
    )


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        ("pyproject.toml", False),
        ("README.md", False),
        ("related/cli.py", False),
        ("related/data/sample_entries.json", False),
        ("tests/test_cli_sqlite.py", True),
        ("bench/README.md", True),
        (".venv/bin/python", True),
        ("venv/bin/python", True),
        (".git/HEAD", True),
        (".pytest_cache/README.md", True),
        (".ruff_cache/CACHEDIR.TAG", True),
        ("related/__pycache__/cli.cpython-311.pyc", True),
        ("related-demo.db", True),
        ("related/data/blog.db", True),
        ("build/lib/related/cli.py", True),
        ("related.egg-info/PKG-INFO", True),
    ],
)
def test_dockerignore(path: str, excluded: bool):
    assert DOCKERIGNORE.excluded(path) is excluded


def test_hadolint_is_clean():
    result = run(
        [tool("hadolint"), "--no-color", "--config", ".hadolint.yaml", "Dockerfile"], cwd=ROOT
    )
    assert result.returncode == 0 and not result.stdout.strip(), explain(result)
