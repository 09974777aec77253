"""Debian packages as benchmark data: downloaded once with apt-get, unpacked, never committed."""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import unquote


def fetch_and_unpack(package: str, cache: Path, unpacked: str) -> Path:
    """``apt-get download package`` into ``cache`` (once) and unpack it into ``cache/tree``;
    skipped when ``tree/unpacked`` already exists. Returns the tree."""
    cache.mkdir(parents=True, exist_ok=True)
    tree = cache / "tree"
    if (tree / unpacked).is_dir():
        return tree
    debs = sorted(cache.glob(f"{package}_*.deb"))
    if not debs:
        for command in (["apt-get", "update", "-qq"], ["apt-get", "download", package]):
            subprocess.run(command, cwd=cache, check=True)
        debs = sorted(cache.glob(f"{package}_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(tree)], check=True)
    return tree


def version(package: str, cache: Path) -> str:
    """The Debian version from the .deb's name (apt writes an epoch's colon as %3a)."""
    debs = sorted(cache.glob(f"{package}_*.deb"))
    return unquote(debs[-1].name.split("_")[1]) if debs else "unknown"
