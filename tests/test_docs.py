"""The repository's documentation stands on its own: every cited document and section exists.

Scans the tracked files (``git ls-files``; a walk of the checkout when git or the repository metadata is missing)
for citations of ``docs/<name>.md``, optionally followed by section numbers, and for relative links in Markdown
files, and checks them against the files and the ``§N.M`` headings of docs/. Also refuses references to material
outside the repository.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# Folders never scanned by the fallback walk: VCS data, environments, caches, and run or data outputs.
WALK_EXCLUDED = {".git", ".venv", "venv", "env", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
                 "node_modules", "build", "dist", "runs", "results", "data"}

SECTION = r"§(\d+(?:\.\d+)*)"
SECTION_NC = r"§\d+(?:\.\d+)*"
# "docs/<name>.md", not preceded by a path character (so "../docs/augmix.md" is left to the link check).
DOC_PATH = re.compile(r"(?<![\w/.-])(docs/(?:[\w.-]+/)*[\w.-]+\.md)")
# Section numbers right after a cited path: "docs/metrics.md §5.1", "`docs/augmix.md` §7",
# "docs/metrics.md §4.4, §4.5, §8", "docs/corruptions.md §5.1-§5.3" (both ends are checked).
SECTIONS_AFTER = re.compile(r"`?[ \t]*" + SECTION_NC + r"(?:[ \t]*(?:,|-|–|and|or)[ \t]*" + SECTION_NC + r")*")
SECTION_IN_LIST = re.compile(SECTION)
MD_LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.*)$")
# Spelled in two pieces so that this file does not match its own check.
FORBIDDEN = ("shared" + "/reference", ".." + "/shared")


@dataclass(frozen=True)
class Citation:
    file: str      # repository-relative path of the citing file
    line: int
    target: str    # repository-relative path of the cited file
    section: str | None

    def where(self) -> str:
        return f"{self.file}:{self.line}"


@lru_cache(maxsize=1)
def tracked_files() -> tuple[str, ...]:
    """Repository-relative paths of the tracked files that exist in the checkout."""
    try:
        listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        listed = None
    if listed is not None and listed.returncode == 0:
        names = [n for n in listed.stdout.decode("utf-8", "surrogateescape").split("\0") if n]
    else:  # no git, or not a git checkout (e.g. an unpacked archive): every file of the tree
        names = []
        for folder, subfolders, files in os.walk(ROOT):
            subfolders[:] = [d for d in subfolders if d not in WALK_EXCLUDED and not d.endswith(".egg-info")]
            names += [os.path.relpath(os.path.join(folder, f), ROOT) for f in files]
    return tuple(sorted(n.replace(os.sep, "/") for n in names if (ROOT / n).is_file()))


@cache
def text_of(name: str) -> str | None:
    """The file's text, or None for binary files (images, archives)."""
    data = (ROOT / name).read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def text_files() -> list[tuple[str, str]]:
    files = tracked_files()
    if not files:
        pytest.skip(f"no files found under {ROOT}: neither `git ls-files` nor a walk of the tree listed any")
    return [(name, text) for name in files if (text := text_of(name)) is not None]


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def doc_citations() -> list[Citation]:
    """Every ``docs/<name>.md`` mention in the tracked text files, one entry per cited section (or one without)."""
    out = []
    for name, text in text_files():
        for match in DOC_PATH.finditer(text):
            line = line_of(text, match.start())
            after = SECTIONS_AFTER.match(text, match.end())
            sections = SECTION_IN_LIST.findall(after.group(0)) if after else []
            for section in sections or [None]:
                out.append(Citation(name, line, match.group(1), section))
    return out


def markdown_links() -> list[Citation]:
    """Relative link targets of the tracked Markdown files, resolved to repository-relative paths."""
    out = []
    for name, text in text_files():
        if not name.endswith(".md"):
            continue
        for match in MD_LINK.finditer(text):
            target = match.group(1).split("#", 1)[0]
            if not target or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("/"):
                continue  # in-page anchor, URL (http:, mailto:, ...) or absolute path
            resolved = os.path.normpath(os.path.join(os.path.dirname(name), target)).replace(os.sep, "/")
            out.append(Citation(name, line_of(text, match.start()), resolved, None))
    return out


@cache
def heading_sections(target: str) -> frozenset[str]:
    """The section numbers written in the headings of a Markdown document ("## §5 ..." -> "5")."""
    numbers = set()
    for line in (ROOT / target).read_text(encoding="utf-8").splitlines():
        heading = HEADING.match(line)
        if heading:
            numbers.update(re.findall(SECTION + r"(?![\d.]*\d)", heading.group(1)))
    return frozenset(numbers)


def exists_in_checkout(target: str) -> bool:
    return not target.startswith("../") and (ROOT / target).exists()


def test_the_reference_documents_exist_with_numbered_sections():
    for name in ("README.md", "augmix.md", "corruptions.md", "metrics.md", "formats.md"):
        assert (DOCS / name).is_file(), f"docs/{name} is missing"
    for name in ("augmix.md", "corruptions.md", "metrics.md", "formats.md"):
        assert heading_sections(f"docs/{name}"), f"docs/{name} has no '§N' headings"


def test_section_numbers_are_unique_within_each_document():
    for path in sorted(DOCS.glob("*.md")):
        seen: dict[str, str] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            heading = HEADING.match(line)
            if not heading:
                continue
            for number in re.findall(SECTION + r"(?![\d.]*\d)", heading.group(1)):
                assert number not in seen, (f"docs/{path.name}: §{number} heads both {seen[number]!r} and "
                                            f"{heading.group(1)!r}")
                seen[number] = heading.group(1)


def test_docs_index_lists_every_document():
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in sorted(DOCS.glob("*.md")) if p.name != "README.md" and f"]({p.name})" not in index]
    assert not missing, f"docs/README.md does not link {', '.join(missing)}"


def test_no_tracked_file_points_outside_the_repository():
    offending = []
    for name, text in text_files():
        for needle in FORBIDDEN:
            for match in re.finditer(re.escape(needle), text):
                offending.append(f"{name}:{line_of(text, match.start())}: mentions {needle!r}")
    assert not offending, ("tracked files must cite the repository's own docs/ (docs/<file>.md §N), not material "
                           "outside it:\n" + "\n".join(offending))


def test_every_cited_document_exists():
    missing = sorted({f"{c.where()}: {c.target}" for c in doc_citations() if not exists_in_checkout(c.target)})
    assert not missing, "cited documents that do not exist:\n" + "\n".join(missing)


def test_every_cited_section_has_a_heading():
    problems = []
    for c in doc_citations():
        if c.section is None or not exists_in_checkout(c.target):
            continue  # a missing file is reported by test_every_cited_document_exists
        if c.section not in heading_sections(c.target):
            problems.append(f"{c.where()}: {c.target} §{c.section} (no heading contains §{c.section})")
    assert not problems, "cited sections without a heading:\n" + "\n".join(sorted(set(problems)))


def test_relative_markdown_links_resolve():
    broken = sorted({f"{c.where()}: {c.target}" for c in markdown_links() if not exists_in_checkout(c.target)})
    assert not broken, "relative links to files that do not exist in the repository:\n" + "\n".join(broken)


def test_citation_scanner_reads_the_supported_forms():
    text = ("see docs/metrics.md §5.1 and `docs/augmix.md` §7; docs/corruptions.md §4.4, §4.5, §8; "
            "docs/corruptions.md §5.1-§5.3 and docs/formats.md.\n[x](docs/augmix.md) ../docs/augmix.md")
    found = []
    for match in DOC_PATH.finditer(text):
        after = SECTIONS_AFTER.match(text, match.end())
        found.append((match.group(1), SECTION_IN_LIST.findall(after.group(0)) if after else []))
    assert found == [("docs/metrics.md", ["5.1"]), ("docs/augmix.md", ["7"]),
                     ("docs/corruptions.md", ["4.4", "4.5", "8"]), ("docs/corruptions.md", ["5.1", "5.3"]),
                     ("docs/formats.md", []), ("docs/augmix.md", [])]
    assert re.findall(SECTION + r"(?![\d.]*\d)", "§5.1 RMS (see §5.10)") == ["5.1", "5.10"]
