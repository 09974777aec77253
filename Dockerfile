# syntax=docker/dockerfile:1
#
# The `related` batch job as an image: it starts, computes related entries, writes them back
# in one transaction and exits (0 success, 1 runtime failure, 2 bad usage or configuration,
# 3 another run holds the lock, 130 interrupted). Schedule it; it is not a server.
#
#   make docker-build                  # docker build -t related:VERSION -t related:latest .
#   docker run --rm -e DATABASE_URL related:latest               # runs `related run`
#   docker run --rm -e DATABASE_URL related:latest run --dry-run --format json
#
# Configuration comes from the environment: DATABASE_URL plus any RELATED_* setting
# (RELATED_TOP_K=5, RELATED_SOURCE_TABLE=posts, ...; `related run --help` lists them).
# A config file is optional. Mount it and point RELATED_CONFIG at it:
#   docker run --rm -e DATABASE_URL -e RELATED_CONFIG=/config/related.toml \
#     -v "$PWD/related.toml:/config/related.toml:ro" related:latest
# RELATED_CONFIG is not set below on purpose: a config file that is named but missing is a
# configuration error (exit 2), and most runs need nothing but DATABASE_URL.
# A related.toml in the working directory /work is also read, so mounting a blog directory at
# /work works for SQLite (run as your own uid so the job can write there):
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD:/work" \
#     -e DATABASE_URL=sqlite:///blog.db related:latest

# One Python for both stages; 3.11 is what the tests run on (see tests/test_shipping.py).
ARG PYTHON_VERSION=3.11

# ---------------------------------------------------------------------------------------------
# build: a wheel for the project and for every runtime dependency. Nothing of this stage
# reaches the runtime image; its /wheels directory is only bind-mounted while installing.
# The stage is never shipped, so it carries none of the labels .hadolint.yaml requires.
# hadolint ignore=DL3049
FROM python:${PYTHON_VERSION}-slim-bookworm AS build

WORKDIR /src
COPY pyproject.toml README.md ./
COPY related/ related/

# Every dependency is a manylinux wheel on PyPI (mecab-python3 bundles libmecab, psycopg[binary]
# bundles libpq, numpy and scipy bundle their BLAS) except unidic-lite, which is published only
# as an sdist. It is pure Python (a dictionary and a setup.py), so it builds here without a
# compiler, and the runtime stage installs nothing but ready wheels.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# ---------------------------------------------------------------------------------------------
# runtime: the official slim Python, the wheels, a non-root user. No compiler, no apt packages.
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime

# The project's version; tests/test_shipping.py checks that it equals related.__version__.
ARG VERSION=0.1.0
# Where the image's source lives; CI overrides it with the real repository URL.
ARG SOURCE=https://github.com/OWNER/related

LABEL org.opencontainers.image.title="related" \
      org.opencontainers.image.description="Related entries for Japanese blogs: MeCab tokens, TF-IDF, top-k cosine neighbours, written back to SQLite or PostgreSQL in one transaction." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# --no-index --find-links: only the wheels built above, nothing fetched or built here.
# --only-binary: a dependency that lost its wheel fails the build instead of compiling.
# setuptools and wheel come with the base image and are build tools; the job never uses them.
# (Removing them does not shrink the base layer, it keeps them from being run or scanned.)
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels --only-binary=:all: \
        /wheels/related-*.whl \
    && pip uninstall --yes setuptools wheel \
    && related --version

# A fixed numeric uid, so Kubernetes' runAsNonRoot can check it without /etc/passwd.
# /work is the user's own working directory: relative SQLite paths and ./related.toml land there.
RUN groupadd --gid 10001 related \
    && useradd --no-log-init --uid 10001 --gid related --home-dir /work --shell /usr/sbin/nologin related \
    && install -d -o related -g related -m 0755 /work
WORKDIR /work
USER 10001:10001

# `docker stop` and Kubernetes send this instead of SIGTERM, which Python as PID 1 would
# ignore until the SIGKILL. SIGINT ends the job like Ctrl-C: the write-back transaction rolls
# back, the previous results stay, and the exit code is 130.
STOPSIGNAL SIGINT

ENTRYPOINT ["related"]
CMD ["run"]
