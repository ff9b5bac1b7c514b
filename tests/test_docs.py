"""The pages that start-up errors, code and the README send a reader to exist, and the README stays short."""
from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT

CODE = ("adapters", "bot", "core", "deploy", "geneface", "RVC", "storage", "migrations")
# a page named in code: docs/x.md, or a README by its path
PAGE = re.compile(r"(?<![\w/.-])((?:docs/[\w.-]+\.md)|(?:[\w.-]+/)*README\.md)")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)\s]*)?\)")


def _code_files() -> list[Path]:
    files = []
    for top in CODE:
        for path in (ROOT / top).rglob("*"):
            if path.is_file() and (path.suffix in (".py", ".yaml", ".html", ".js") or path.name.startswith("Dockerfile")):
                files.append(path)
    return files


def pages_named_in_code() -> dict[str, set[str]]:
    named: dict[str, set[str]] = {}
    for path in _code_files():
        for page in PAGE.findall(path.read_text(encoding="utf-8", errors="replace")):
            named.setdefault(page, set()).add(str(path.relative_to(ROOT)))
    return named


def links_in(page: Path) -> set[str]:
    """Local links of a Markdown page, as paths from the repository root."""
    out = set()
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if "://" in target or target.startswith("mailto:"):
            continue
        out.add(str((page.parent / target).resolve().relative_to(ROOT.resolve())))
    return out


def test_every_page_the_code_names_exists():
    named = pages_named_in_code()
    assert "docs/telegram.md" in named and "docs/cluster.md" in named  # the scan finds the start-up errors' pages
    missing = {page: sorted(where) for page, where in named.items() if not (ROOT / page).is_file()}
    assert not missing, f"pages named in code that do not exist: {missing}"


def test_every_local_link_of_the_readme_and_the_docs_leads_somewhere():
    pages = [ROOT / "README.md", ROOT / "bench" / "results" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    missing = {str(p.relative_to(ROOT)): sorted(t for t in links_in(p) if not (ROOT / t).exists()) for p in pages}
    missing = {page: targets for page, targets in missing.items() if targets}
    assert not missing, f"links to pages that do not exist: {missing}"


def test_the_readme_is_short_enough_to_read():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 250


def test_the_scan_sees_a_missing_page(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[a](docs/nowhere.md) and [b](https://example.org/x.md)")
    assert PAGE.findall('raise StartupError("x", doc="docs/nowhere.md")') == ["docs/nowhere.md"]
    assert [t.endswith("docs/nowhere.md") for t in LINK.findall(page.read_text())] == [True, False]
