"""The manpages-ja corpus: fetch the Debian package, render pages, extract the truth.

Each man page (a real file, not a symlink or a ``.so`` redirect) is one entry:

    title  the rendered NAME section ("ls - ディレクトリの内容をリスト表示する")
    body   every other section, rendered by groff to plain text, WITHOUT the SEE ALSO section
           (関連項目 / SEE ALSO / 参照項目 / 関連情報) and without groff's page header/footer
    truth  the pages listed in that SEE ALSO section, as ``name(section)``, resolved to entries
           (through symlinks and ``.so`` redirects); self-links and unresolved names dropped

Everything specific to man pages lives in this file; the pipeline never sees it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import debs

PACKAGE = "manpages-ja"
MAN_ROOT = Path("usr/share/man/ja")
SEE_ALSO_HEADINGS = frozenset({"関連項目", "SEE ALSO", "参照項目", "関連情報"})
NAME_HEADINGS = frozenset({"名前", "名称", "NAME"})
RENDER_VERSION = "2"  # bump when rendering changes, to invalidate the cache

_HEADING = re.compile(r"^\.(SH|Sh|sh)(?:\s+(.*))?$")
_LINK = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_.:+-]*)\s*\(([1-9][a-z]*)\)")
_FONT = re.compile(r"\\f(?:\[[^\]]*\]|\(..|.)")
_XR = re.compile(r"^\.Xr\s+(\S+)\s+(\S+)")
_ALTERNATING = re.compile(r"^\.(BR|RB|IR|RI|BI|IB)\s+(.*)$")


@dataclass(frozen=True)
class Page:
    id: int
    path: str  # relative to MAN_ROOT, e.g. man1/ls.1.gz
    title: str
    body: str
    links: tuple[int, ...]  # resolved SEE ALSO entries (truth)
    listed: int  # name(section) references in SEE ALSO before resolving


def fetch_package(cache: Path) -> Path:
    return debs.fetch_and_unpack(PACKAGE, cache, str(MAN_ROOT))


def package_version(cache: Path) -> str:
    return debs.version(PACKAGE, cache)


def load_pages(cache: Path) -> list[Page]:
    """Fetch, render and resolve; cached as JSON next to the package."""
    tree = fetch_package(cache)
    stored = cache / f"pages-v{RENDER_VERSION}.json"
    if stored.exists():
        return [Page(**{**p, "links": tuple(p["links"])}) for p in json.loads(stored.read_text())]
    pages = build_pages(tree / MAN_ROOT)
    stored.write_text(json.dumps([p.__dict__ for p in pages], ensure_ascii=False))
    return pages


def build_pages(root: Path) -> list[Page]:
    if shutil.which("groff") is None:
        raise SystemExit("groff is needed to render man pages: apt-get install groff-base")
    files = sorted(p for p in root.glob("man*/*.gz"))
    canonical = {f: _canonical(f, root) for f in files}
    real = [f for f in files if canonical[f] == f]
    ids = {f: i for i, f in enumerate(real, start=1)}
    by_name: dict[tuple[str, str], int] = {}
    for f in files:
        name, section = _name_section(f)
        target = canonical[f]
        if target in ids:
            by_name.setdefault((name, section), ids[target])
            by_name.setdefault((name, section[:1]), ids[target])

    pages = []
    for f in real:
        source = _read(f)
        sections = _split_sections(source)
        see_also = [s for h, s in sections if h in SEE_ALSO_HEADINGS]
        names = [s for h, s in sections if h in NAME_HEADINGS]
        kept = "".join(s for h, s in sections if h not in SEE_ALSO_HEADINGS | NAME_HEADINGS)
        references = [m for s in see_also for m in _LINK.findall(_plain_roff(s))]
        links: list[int] = []
        for name, section in references:
            target = by_name.get((name, section)) or by_name.get((name, section[:1]))
            if target is not None and target != ids[f] and target not in links:
                links.append(target)
        title = " ".join(_strip_header_footer(_render(_preamble(source) + "".join(names))).split())
        title = re.sub(r"^(名前|名称|NAME)\s*", "", title)
        pages.append(
            Page(
                id=ids[f],
                path=str(f.relative_to(root)),
                title=title,
                body=_strip_header_footer(_render(kept)),
                links=tuple(links),
                listed=len(references),
            )
        )
    return pages


def _canonical(path: Path, root: Path, depth: int = 0) -> Path | None:
    """The real page behind a symlink or a one-line ``.so manN/x.N`` redirect."""
    if depth > 5:
        return None
    if path.is_symlink():
        target = (path.parent / os.readlink(path)).resolve()
        return _canonical(target, root, depth + 1) if target.exists() else None
    first = _read(path).lstrip().split("\n", 1)[0]
    if first.startswith(".so "):
        target = root / first[4:].strip()
        if not target.exists():
            target = target.with_name(target.name + ".gz")
        return _canonical(target, root, depth + 1) if target.exists() else None
    return path


def _name_section(path: Path) -> tuple[str, str]:
    stem = path.name.removesuffix(".gz")
    name, _, section = stem.rpartition(".")
    return name, section


def _read(path: Path) -> str:
    return gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")


def _split_sections(source: str) -> list[tuple[str, str]]:
    """[(heading, roff text)]; the text before the first heading has heading ''."""
    sections: list[tuple[str, list[str]]] = [("", [])]
    lines = source.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        match = _HEADING.match(lines[i].rstrip("\n"))
        if match:
            own = [lines[i]]
            heading = match.group(2)
            if heading is None and i + 1 < len(lines):  # ".SH" alone: heading on next line
                i += 1
                own.append(lines[i])
                heading = lines[i]
            heading = " ".join(_plain_roff(heading or "").replace('"', " ").split())
            sections.append((heading, own))
        else:
            sections[-1][1].append(lines[i])
        i += 1
    return [(h, "".join(text)) for h, text in sections]


def _preamble(source: str) -> str:
    """.TH and friends: what must precede a section for groff to render it."""
    return _split_sections(source)[0][1]


def _plain_roff(text: str) -> str:
    """Roff source to rough text, enough to read ``name(section)`` references."""
    out = []
    for line in text.splitlines():
        match = _ALTERNATING.match(line)
        xr = _XR.match(line)
        if xr:  # mdoc: .Xr ls 1 , -> ls(1)
            line = f"{xr.group(1)}({xr.group(2)})"
        elif match:  # .BR ls (1), -> ls(1),
            line = "".join(part.strip('"') for part in match.group(2).split())
        elif line.startswith((".B ", ".I ")):
            line = line[3:]
        elif line.startswith((".", "'")):
            continue
        line = _FONT.sub("", line).replace("\\-", "-").replace("\\&", "").replace("\\(em", " ")
        out.append(line)
    return "\n".join(out)


def _render(roff: str) -> str:
    """groff to plain UTF-8 text: one continuous page, no bold/underline overstrikes."""
    result = subprocess.run(
        ["groff", "-Tutf8", "-Kutf8", "-mandoc", "-rcR=1", "-rLL=200n", "-P-cbou"],
        input=roff.encode("utf-8"),
        capture_output=True,
        check=False,
    )
    return result.stdout.decode("utf-8", errors="replace")


def _strip_header_footer(text: str) -> str:
    lines = [line.rstrip() for line in text.splitlines()]
    nonblank = [i for i, line in enumerate(lines) if line.strip()]
    if len(nonblank) >= 2:
        lines = lines[nonblank[0] + 1 : nonblank[-1]]
    return "\n".join(line.strip() for line in lines if line.strip())


def corpus_fingerprint(pages: list[Page]) -> str:
    digest = hashlib.sha256()
    for p in pages:
        digest.update(f"{p.id}\t{p.title}\t{p.body}\t{p.links}\n".encode())
    return digest.hexdigest()[:12]
