"""The documentation site: the questions index, the answers it links, and the strict build.

`docs/questions.md` must list Q1..Q34 exactly once each, each linking to an answer heading `{#qN}` that
exists on the linked page; every answer must link at least one repository file; and
`mkdocs build --strict` (what `make docs` runs) must pass, which fails on a broken link between pages, a
missing anchor, or a link into the repository whose file does not exist (the hook `ops/docs_links.py`).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ops.docs_links import SourceLinks, fence_for, rewrite_links, scan_page, source_page_uri

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
QUESTIONS = DOCS / "questions.md"
QUESTION_COUNT = 34
INDEX_ENTRY = re.compile(r"\*\*\[Q(?P<n>\d+)\]\((?P<page>[^)#]+)#(?P<anchor>[^)]+)\)\*\*")
ANSWER_HEADING = re.compile(r"^## Q(?P<n>\d+)\. .*\{#(?P<anchor>q\d+)\}\s*$", re.MULTILINE)


def answer_sections(page: Path) -> dict[int, str]:
    """Each answer on a page: its number → its Markdown, up to the next `## ` heading."""
    text = page.read_text(encoding="utf-8")
    headings = list(ANSWER_HEADING.finditer(text))
    sections: dict[int, str] = {}
    for heading in headings:
        rest = text[heading.end() :]
        following = re.search(r"^## ", rest, re.MULTILINE)
        sections[int(heading.group("n"))] = rest[: following.start()] if following else rest
    return sections


def test_the_index_lists_q1_to_q34_exactly_once_each() -> None:
    # Given the questions index
    entries = [int(m.group("n")) for m in INDEX_ENTRY.finditer(QUESTIONS.read_text(encoding="utf-8"))]

    # Then every id from Q1 to Q34 is there exactly once, and nothing else
    assert sorted(entries) == list(range(1, QUESTION_COUNT + 1)), entries


def test_every_index_entry_links_to_its_own_answer_heading() -> None:
    # Given each entry of the index
    for match in INDEX_ENTRY.finditer(QUESTIONS.read_text(encoding="utf-8")):
        n, page, anchor = int(match.group("n")), DOCS / match.group("page"), match.group("anchor")

        # Then the linked page exists and holds the answer under the anchor `qN`, once
        assert anchor == f"q{n}", match.group(0)
        assert page.is_file(), match.group(0)
        assert n in answer_sections(page), f"{page.relative_to(ROOT)} has no heading for Q{n} {{#q{n}}}"


def test_each_answer_appears_on_exactly_one_page_and_links_a_repository_file() -> None:
    # Given every answer heading on every page of the site
    found: dict[int, list[str]] = {}
    for page in sorted(DOCS.rglob("*.md")):
        uri = page.relative_to(DOCS).as_posix()
        for n, section in answer_sections(page).items():
            found.setdefault(n, []).append(uri)
            # Then the answer links at least one file of the repository outside docs/
            links = SourceLinks(repo_root=ROOT, docs_dir=DOCS)
            scan_page(uri, section, links)
            assert not links.problems, links.problems
            assert links.generated, f"Q{n} on {uri} links no repository file"

    # And each of Q1..Q34 is answered once
    assert sorted(found) == list(range(1, QUESTION_COUNT + 1))
    assert all(len(pages) == 1 for pages in found.values()), found


def test_a_repository_link_is_rewritten_to_its_generated_page() -> None:
    # Given a page two levels deep linking a file and a folder of the repository, and a page of the site
    links = SourceLinks(repo_root=ROOT, docs_dir=DOCS)
    markdown = "[m](../../monitor/canary.py#judge) [f](../../monitor/) [p](../scaling.md#q12)"

    # When it is scanned and rewritten
    scan_page("monitoring/x.md", markdown, links)
    rewritten = rewrite_links(markdown, links.rewrites["monitoring/x.md"])

    # Then repository links point at generated pages under src/ (fragment kept), the page link is untouched
    assert rewritten == (
        "[m](../src/monitor/canary.py.md#judge) [f](../src/monitor/index.md) [p](../scaling.md#q12)"
    )
    assert links.generated["src/monitor/canary.py.md"] == ROOT / "monitor/canary.py"
    assert not links.problems


def test_a_link_to_a_missing_repository_file_is_a_problem() -> None:
    # Given a page linking a file the repository does not have, and one leaving the repository
    links = SourceLinks(repo_root=ROOT, docs_dir=DOCS)

    # When it is scanned
    scan_page("cost.md", "[gone](../monitor/no_such_module.py) [out](../../etc/passwd)", links)

    # Then both links are reported, naming the page, and no page is generated for them
    assert len(links.problems) == 2
    assert all("cost.md" in problem for problem in links.problems)
    assert not links.generated


def test_dot_folders_get_pages_mkdocs_keeps() -> None:
    assert source_page_uri(".ci/run", is_dir=False) == "src/dot.ci/run.md"
    assert source_page_uri("monitor/detectors", is_dir=True) == "src/monitor/detectors/index.md"
    assert source_page_uri("", is_dir=True) == "src/index.md"


def test_a_source_page_fence_is_longer_than_any_backtick_run_in_the_file() -> None:
    assert fence_for("no ticks") == "```"
    assert fence_for("a ```` b") == "`````"


def _build(config: Path, site_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
        check=False,
    )


@pytest.mark.slow
def test_the_site_builds_strictly_with_every_answer_anchor(tmp_path: Path) -> None:
    # When the site is built as `make docs` builds it
    result = _build(ROOT / "mkdocs.yml", tmp_path / "site")

    # Then the strict build passes (no broken link, anchor or repository link), and no link leads to a
    # page MkDocs leaves out of the site (it says so only at INFO level)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "excluded from the built site" not in result.stdout + result.stderr

    # And every answer's anchor is in the built HTML of its page, and the repository files it links are pages
    for match in INDEX_ENTRY.finditer(QUESTIONS.read_text(encoding="utf-8")):
        page = tmp_path / "site" / match.group("page").replace(".md", "").removesuffix("index") / "index.html"
        assert f'id="{match.group("anchor")}"' in page.read_text(encoding="utf-8"), page
    assert (tmp_path / "site" / "src" / "monitor" / "canary.py" / "index.html").is_file()
    assert (tmp_path / "site" / "src" / "dot.ci" / "run" / "index.html").is_file()
    # And Mermaid is served by the site itself (the pinned npm package), not fetched from a CDN
    assert (tmp_path / "site" / "assets" / "javascripts" / "mermaid.min.js").is_file()
    assert 'src="../assets/javascripts/mermaid.min.js"' in (
        tmp_path / "site" / "architecture" / "index.html"
    ).read_text(encoding="utf-8")


@pytest.mark.slow
def test_a_broken_repository_link_fails_the_strict_build(tmp_path: Path) -> None:
    # Given a minimal site in a folder of the repository's shape, with the hook and a link to a missing file
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    (repo / "present.py").write_text("x = 1\n")
    (repo / "docs" / "index.md").write_text("# Home\n\n[here](../present.py) [gone](../absent.py)\n")
    (repo / "mkdocs.yml").write_text(f"site_name: t\nhooks:\n  - {ROOT / 'ops' / 'docs_links.py'}\n")

    # When it is built strictly
    result = _build(repo / "mkdocs.yml", tmp_path / "site")

    # Then the build fails naming the missing file; with the link fixed it passes and renders the file
    assert result.returncode != 0
    assert "absent.py" in result.stdout + result.stderr
    (repo / "docs" / "index.md").write_text("# Home\n\n[here](../present.py)\n")
    fixed = _build(repo / "mkdocs.yml", tmp_path / "site")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "x = 1" in (tmp_path / "site" / "src" / "present.py" / "index.html").read_text(encoding="utf-8")
