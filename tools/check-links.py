#!/usr/bin/env python3
"""Checks the internal links of the built user guide and the relative links of Markdown files.

Usage: python3 tools/check-links.py BOOK_HTML_DIR [FILE.md ...] [--prose FILE.md ...]

In every .html file under BOOK_HTML_DIR, each href and src that is not external must name a file
that exists there and, when it carries a #fragment, an id (or <a name>) on that page. Each
Markdown file's relative links must name an existing file or folder of the repository, and a
#fragment into a Markdown file must match one of its headings as GitHub anchors them. External
links (any scheme: http, https, mailto, ...) are not followed: CI has no internet. Every
Markdown file named (after --prose: only for this) must also speak to users: no reference to the
project's internal method notes (METHOD.md), to issues (#12, issue 12) or to commits. Exit 1
with one line per problem.
"""
import html.parser
import os
import re
import sys
import urllib.parse


class Page(html.parser.HTMLParser):
    """The ids a page defines and the links it makes (with the line of each)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids = set()
        self.links = []
        self.base = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        if tag == "base" and attrs.get("href"):
            self.base = attrs["href"]
        for key in ("href", "src"):
            if attrs.get(key) is not None:
                self.links.append((attrs[key], self.getpos()[0]))

    handle_startendtag = handle_starttag


def external(link):
    return bool(urllib.parse.urlsplit(link).scheme) or link.startswith("//")


def parse(path):
    page = Page()
    with open(path, encoding="utf-8") as f:
        page.feed(f.read())
    return page


def check_book(root):
    """Broken links of the built book, as 'page:line: link (why)'."""
    root = os.path.abspath(root)
    if not os.path.isfile(os.path.join(root, "index.html")):
        return [f"{root}: no index.html (was the book built?)"]
    pages = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name.endswith(".html"):
                path = os.path.join(dirpath, name)
                pages[path] = parse(path)
    broken = []
    for path, page in sorted(pages.items()):
        rel_page = os.path.relpath(path, root)
        # mdbook's 404 page sets <base href="/">: its links are rooted at the site, i.e. here.
        if page.base is not None and not external(page.base):
            base_dir = os.path.join(root, page.base.lstrip("/"))
        else:
            base_dir = os.path.dirname(path)
        for link, line in page.links:
            if not link or external(link):
                continue
            parts = urllib.parse.urlsplit(link)
            target_path = urllib.parse.unquote(parts.path)
            if not target_path:
                target = path
            elif target_path.startswith("/"):
                target = os.path.join(root, target_path.lstrip("/"))
            else:
                target = os.path.normpath(os.path.join(base_dir, target_path))
            if os.path.isdir(target):
                target = os.path.join(target, "index.html")
            where = f"{rel_page}:{line}: {link}"
            if not os.path.normpath(target).startswith(root + os.sep):
                broken.append(f"{where} (points outside the book)")
            elif not os.path.isfile(target):
                broken.append(f"{where} (no file {os.path.relpath(target, root)})")
            elif parts.fragment and target.endswith(".html"):
                fragment = urllib.parse.unquote(parts.fragment)
                if fragment not in pages[os.path.normpath(target)].ids:
                    broken.append(f"{where} (no id '{fragment}' on that page)")
    return broken


FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`[^`]*`")
# [text](target "title") and ![alt](target); reference definitions [id]: target
INLINE_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


def markdown_lines(path):
    """(line number, text) of the lines outside fenced code, inline code removed."""
    fenced = False
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if FENCE.match(line):
                fenced = not fenced
                continue
            if not fenced:
                yield number, INLINE_CODE.sub("", line)


def github_anchors(path):
    """The anchors GitHub gives a Markdown file's headings (lower case, punctuation dropped,
    spaces to '-', repeats numbered)."""
    seen = {}
    anchors = set()
    for _, line in markdown_lines(path):
        m = HEADING.match(line)
        if not m:
            continue
        text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1))
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def check_markdown(path):
    """Broken relative links of one Markdown file."""
    broken = []
    base = os.path.dirname(os.path.abspath(path))
    for number, line in markdown_lines(path):
        links = INLINE_LINK.findall(line)
        m = REF_DEF.match(line)
        if m:
            links.append(m.group(1))
        for link in links:
            if external(link):
                continue
            parts = urllib.parse.urlsplit(link)
            target = os.path.normpath(os.path.join(base, urllib.parse.unquote(parts.path))) \
                if parts.path else os.path.abspath(path)
            where = f"{path}:{number}: {link}"
            if not os.path.exists(target):
                broken.append(f"{where} (no such file)")
            elif parts.fragment and target.endswith(".md") \
                    and parts.fragment not in github_anchors(target):
                broken.append(f"{where} (no heading with anchor '{parts.fragment}')")
    return broken


ISSUE_REF = re.compile(r"(?<![\w&/#])#\d{1,4}\b|\b[Ii]ssues? \d+\b|\bcommits? [0-9a-f]{7,40}\b")


def internal_references(path):
    """Lines of a Markdown file that point into the project's internals instead of at the
    reader: the method notes (anywhere), issues and commits (in prose)."""
    found = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if "METHOD.md" in line:
                found.append(f"{path}:{number}: cites METHOD.md, which users do not have")
    for number, line in markdown_lines(path):
        m = ISSUE_REF.search(line)
        if m:
            found.append(f"{path}:{number}: '{m.group(0)}' refers to the project's issues or commits")
    return found


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    broken = check_book(argv[1])
    rest = argv[2:]
    cut = rest.index("--prose") if "--prose" in rest else len(rest)
    linked, prose_only = rest[:cut], rest[cut + 1:]
    for md in linked:
        broken += check_markdown(md)
    for md in linked + prose_only:
        broken += internal_references(md)
    for line in broken:
        print(f"broken: {line}", file=sys.stderr)
    if broken:
        print(f"{len(broken)} broken link(s) or internal reference(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
