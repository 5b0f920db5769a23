"""Check, offline, that every relative link and repository path in the README and the docs resolves.

``sphinx-build -n`` checks the references between pages; this checks what Sphinx does not see: the README,
Markdown links to files outside docs/ (tests, example DAGs), anchors (``page.md#heading``), and file paths
written as code (```tests/chaos/test_kill_resume.py::test_x``` must name a file that exists and a name in it).
External links are listed, never fetched: ``make docs`` runs offline.

Usage: ``python scripts/check_links.py [--list-external]``; exits 1 naming each broken link.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The repository's own files, linked by URL from pages that Sphinx renders: checked as local paths.
REPO_URL = "https://github.com/airflow-provider-baseten/airflow-provider-baseten/blob/main/"

MD_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
RST_LINK = re.compile(r"`[^`<]*<([^>`]+)>`_")
RST_PATH = re.compile(r"^\s*\.\. (?:image|figure|literalinclude|include|exampleinclude)::\s*(\S+)", re.M)
MYST_PATH = re.compile(r"^```\{(?:exampleinclude|include|literalinclude|image|figure)\}\s*(\S+)", re.M)
CODE_PATH = re.compile(r"``?([\w./-]+/[\w.-]+\.(?:py|md|rst|sh|toml|json|mjs|png|cfg))(::[\w:]+)?``?")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)


def pages() -> list[Path]:
    """The README, the changelog and every docs page."""
    found = [ROOT / "README.md", ROOT / "CHANGELOG.md"]
    found += sorted(p for p in (ROOT / "docs").rglob("*") if p.suffix in (".md", ".rst") and "_build" not in p.parts)
    return found


def anchors(page: Path) -> set[str]:
    """GitHub's (and MyST's) heading slugs of a Markdown page."""
    text = FENCE.sub("", page.read_text())
    slugs = set()
    for title in re.findall(r"^#{1,6} (.*)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        slugs.add(slug)
    return slugs


def check_target(page: Path, target: str) -> str | None:
    """Why ``target`` (as written in ``page``) does not resolve, or None."""
    if target.startswith(REPO_URL):
        return check_target(ROOT / "README.md", target[len(REPO_URL) :])
    if re.match(r"^[a-z]+:", target) or target.startswith("//"):
        return None  # external: listed, not fetched
    path_part, _, anchor = target.partition("#")
    if path_part.startswith("/"):  # Sphinx: relative to the docs source folder
        file = (ROOT / "docs" / path_part.lstrip("/")).resolve()
    else:
        file = (page.parent / path_part).resolve() if path_part else page
    if not file.exists():
        return f"{target}: no such file {file.relative_to(ROOT) if file.is_relative_to(ROOT) else file}"
    if anchor and file.suffix == ".md" and anchor not in anchors(file):
        return f"{target}: no heading #{anchor} in {file.relative_to(ROOT)}"
    return None


def check_code_path(path: str, name: str | None) -> str | None:
    """A repository path written as code must exist, and ``::name`` must be defined in it."""
    first = path.split("/", 1)[0]
    if not (ROOT / first).exists() or path.startswith("/"):
        return None  # not a path in this repository (an example path such as /data/x.jsonl)
    file = ROOT / path
    if not file.exists():
        return f"`{path}`: no such file"
    for part in (name or "").strip(":").split("::"):
        if part and not re.search(rf"\b(def|class) {re.escape(part)}\b", file.read_text()):
            return f"`{path}::{name.strip(':') if name else ''}`: no {part} in {path}"
    return None


def main(argv: list[str]) -> int:
    broken: list[str] = []
    external: set[str] = set()
    for page in pages():
        text = page.read_text()
        prose = FENCE.sub("", text)
        targets = MD_LINK.findall(prose) + RST_LINK.findall(prose) + RST_PATH.findall(text) + MYST_PATH.findall(text)
        for target in targets:
            if re.match(r"^[a-z]+:", target) and not target.startswith(REPO_URL):
                external.add(target)
            elif problem := check_target(page, target):
                broken.append(f"{page.relative_to(ROOT)}: {problem}")
        for path, name in CODE_PATH.findall(prose):
            if problem := check_code_path(path, name or None):
                broken.append(f"{page.relative_to(ROOT)}: {problem}")
    if "--list-external" in argv:
        print("External links (not fetched):", *sorted(external), sep="\n  ")
    for line in broken:
        print("broken link:", line, file=sys.stderr)
    print(f"checked links in {len(pages())} pages: {len(broken)} broken, {len(external)} external (not fetched)")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
