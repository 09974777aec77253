"""The libreoffice-help-ja corpus: fetch the Debian package, parse help pages, extract the truth.

A second corpus with curated links, unrelated to man pages, to check that what scores well on
manpages-ja is not tuned to it. The package ships LibreOffice's offline help as one HTML file
per help page (``ja/text/<module>/.../<page>.html``), and the help's authors end many pages
with a 関連項目 (related topics) section linking to other help pages. Each page is one entry:

    title  the page's <title> ("自動 URL 識別の解除")
    body   the visible text of the page's content area (div#DisplayArea), WITHOUT the 関連項目
           section, and without the header, side bars (contents tree, index, search) and the
           debug footer that every page carries; text hidden for other platforms
           (``hidden`` attributes of the macOS/Windows variants) and the help build's
           "[... not found]" markers are dropped too
    truth  the pages the 関連項目 section links to, resolved to entries; self-links, links to
           anchors of the page itself and links out of the help dropped

The section comes in two forms: a ``div.relatedtopics`` block (most pages) or, on older pages,
a ``p.related`` heading followed by link paragraphs up to the end of the page. Both run to the
end of the content area, so everything from the first such marker on is the section.

Caveat: the Japanese help is not fully translated. Newer paragraphs are still English, and about
a fifth of the pages (mostly Basic macro reference) are English throughout, so this corpus also
tests mixed Japanese/English text, which MeCab tags as nouns word by word.

Everything specific to LibreOffice's help lives in this file; the pipeline never sees it.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import debs
from manpages import Page  # same shape: id, path, title, body, links, listed

PACKAGE = "libreoffice-help-ja"
HELP_ROOT = Path("usr/share/libreoffice/help")  # pages' <base href> points here
PAGES_UNDER = "ja/text"
PARSE_VERSION = "1"  # bump when parsing changes, to invalidate the cache

_CONTENT_ID = "DisplayArea"
_RELATED_CLASSES = frozenset({"relatedtopics", "related"})
_SKIPPED_CLASSES = frozenset({"bug", "noteicon"})
_SKIPPED_TAGS = frozenset({"script", "style", "noscript", "template"})
_VOID = frozenset("area base br col embed hr img input link meta source wbr".split())
_BLOCK = frozenset(
    "address blockquote br dd div dl dt h1 h2 h3 h4 h5 h6 li ol p pre section table td th tr "
    "ul".split()
)


def fetch_package(cache: Path) -> Path:
    return debs.fetch_and_unpack(PACKAGE, cache, str(HELP_ROOT / PAGES_UNDER))


def package_version(cache: Path) -> str:
    return debs.version(PACKAGE, cache)


def load_pages(cache: Path) -> list[Page]:
    """Fetch, parse and resolve; cached as JSON next to the package."""
    tree = fetch_package(cache)
    stored = cache / f"pages-v{PARSE_VERSION}.json"
    if stored.exists():
        return [Page(**{**p, "links": tuple(p["links"])}) for p in json.loads(stored.read_text())]
    pages = build_pages(tree / HELP_ROOT)
    stored.write_text(json.dumps([p.__dict__ for p in pages], ensure_ascii=False))
    return pages


def build_pages(root: Path) -> list[Page]:
    """One entry per help page with a title or some text; ids follow the sorted paths."""
    parsed = {}
    for path in sorted((root / PAGES_UNDER).rglob("*.html")):
        page = _parse(path.read_text(encoding="utf-8", errors="replace"))
        if page.title or page.body:
            parsed[path.relative_to(root).as_posix()] = page
    ids = {name: i for i, name in enumerate(parsed, start=1)}

    pages = []
    for name, page in parsed.items():
        links: list[int] = []
        for href in page.related:
            target = ids.get(_resolve(href))
            if target is not None and target != ids[name] and target not in links:
                links.append(target)
        pages.append(
            Page(
                id=ids[name],
                path=name,
                title=page.title,
                body=page.body,
                links=tuple(links),
                listed=len(page.related),
            )
        )
    return pages


def _resolve(href: str) -> str:
    """A link as the page path it names, relative to the help root (the pages' <base href>);
    the #anchor dropped. Links out of the help resolve to nothing an entry is named."""
    parts = urlsplit(href)
    if parts.scheme or parts.netloc:
        return ""
    return posixpath.normpath(unquote(parts.path))


@dataclass(frozen=True)
class _Parsed:
    title: str
    body: str
    related: tuple[str, ...]  # hrefs in the 関連項目 section, in page order


def _parse(html: str) -> _Parsed:
    parser = _HelpPage()
    parser.feed(html)
    parser.close()
    title = " ".join("".join(parser.title).split())
    return _Parsed(title, _lines("".join(parser.body)), tuple(parser.related))


def _lines(text: str) -> str:
    """Whitespace runs to one space within a line; block boundaries ("\\n") kept, blank lines
    dropped."""
    return "\n".join(" ".join(line.split()) for line in text.split("\n") if line.strip())


class _HelpPage(HTMLParser):
    """Collects the <title>, the content area's visible text up to the 関連項目 section, and the
    links of that section.

    Void elements (<br>, <img>, <meta>) have no end tag, so only non-void elements are pushed;
    an end tag pops up to its match, so an element left open cannot swallow the rest of the page.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title: list[str] = []
        self.body: list[str] = []
        self.related: list[str] = []
        self._stack: list[tuple[str, bool, bool]] = []  # (tag, opens content, skipped)
        self._in_title = False
        self._in_related = False

    @property
    def _in_content(self) -> bool:
        return any(content for _, content, _ in self._stack)

    @property
    def _skipping(self) -> bool:
        return any(skipped for _, _, skipped in self._stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        classes = set((values.get("class") or "").split())
        content = tag == "div" and values.get("id") == _CONTENT_ID
        if self._in_content and not self._skipping and classes & _RELATED_CLASSES:
            self._in_related = True  # runs to the end of the content area
        if self._in_related and tag == "a" and values.get("href"):
            self.related.append(values["href"] or "")
        if tag == "title":
            self._in_title = True
        if tag in _BLOCK and self._in_content:
            self.body.append("\n")
        if tag not in _VOID:
            skipped = tag in _SKIPPED_TAGS or "hidden" in values or bool(classes & _SKIPPED_CLASSES)
            self._stack.append((tag, content, skipped))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i][0] == tag:
                del self._stack[i:]
                break
        if not self._in_content:
            self._in_related = False
        elif tag in _BLOCK:
            self.body.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif self._in_content and not self._in_related and not self._skipping:
            self.body.append(data)


def corpus_fingerprint(pages: list[Page]) -> str:
    digest = hashlib.sha256()
    for p in pages:
        digest.update(f"{p.id}\t{p.title}\t{p.body}\t{p.links}\n".encode())
    return digest.hexdigest()[:12]
