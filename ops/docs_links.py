"""MkDocs hook (`mkdocs.yml` → `hooks:`): the site's links into the repository's own files.

A documentation page links a source file the way GitHub resolves it, relative to the page, e.g.
`[monitor/canary.py](../monitor/canary.py)` from `docs/monitoring.md`. MkDocs alone would call that a
link to a missing page (only `docs/` is its world). This hook, at build time:

- finds every inline Markdown link of every page that leaves `docs/` but stays inside the repository;
- checks the target exists: a missing file or folder is a warning naming the page and the link, so
  `mkdocs build --strict` (`make docs`) fails on it as it does on a broken link between pages;
- renders each linked file as a page of the site under `src/` (its text, highlighted) and each linked
  folder as a listing of the files git tracks in it, and rewrites the link to that page.

So the same Markdown links work on GitHub, in the built site and offline, without a `repo_url`.

It also makes the Mermaid diagrams render offline: when `make install` has put the pinned `mermaid`
npm package in `node_modules/`, its `mermaid.min.js` is added to the site and loaded on every page, and
Material uses it instead of fetching Mermaid from a CDN in the reader's browser (without it, that fetch
is Material's default).
Link targets are resolved without the `#fragment`; external URLs and links inside `docs/` are left to
MkDocs. The functions below are pure (paths in, paths or text out) and tested in
`tests/test_docs_site.py`; the `on_*` functions are MkDocs' hook events.
"""

from __future__ import annotations

import logging
import posixpath
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.docs_links")

# An inline link or image target: `](target)` or `](target "title")`; the target has no spaces.
LINK = re.compile(r"\]\((?P<target>[^)\s]+)(?P<title>\s+\"[^\"]*\")?\)")
SOURCE_PREFIX = "src"
LANGUAGES = {
    ".py": "python",
    ".toml": "toml",
    ".yml": "yaml",
    ".yaml": "yaml",
    ".json": "json",
    ".md": "markdown",
    ".sh": "bash",
    ".cfg": "ini",
    ".txt": "text",
}
NAMED_LANGUAGES = {"Makefile": "makefile", "run": "bash"}
MERMAID_JS = Path("node_modules/mermaid/dist/mermaid.min.js")
MERMAID_URI = "assets/javascripts/mermaid.min.js"


@dataclass
class SourceLinks:
    """What one build found: per page, link target → generated page; and the pages to generate."""

    repo_root: Path
    docs_dir: Path
    rewrites: dict[str, dict[str, str]] = field(default_factory=dict)
    generated: dict[str, Path] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    mermaid: Path | None = None


def is_external(target: str) -> bool:
    """URLs, mail links, pure fragments and site-absolute paths are not repository links."""
    return "://" in target or target.startswith(("mailto:", "#", "/"))


def source_page_uri(repo_path: str, *, is_dir: bool) -> str:
    """The generated page of a repository file or folder, as a path inside the site's sources.

    MkDocs leaves out of the site every path with a part that starts with a dot, so `.ci/run` becomes
    `src/dot.ci/run.md`.
    """
    parts = [f"dot{part}" if part.startswith(".") else part for part in repo_path.split("/") if part]
    if is_dir:
        return posixpath.join(SOURCE_PREFIX, *parts, "index.md")
    return posixpath.join(SOURCE_PREFIX, *parts[:-1], f"{parts[-1]}.md")


def resolve_link(page_uri: str, target: str, *, repo_root: Path, docs_dir: Path) -> tuple[str, bool] | None:
    """The repository path a page's link points at, and whether it is a folder.

    None when the link stays inside `docs/` or is external (MkDocs checks those); raises
    `FileNotFoundError` when it leaves `docs/` towards something the repository does not have.
    """
    path_part = target.split("#", 1)[0]
    if not path_part or is_external(target):
        return None
    page_dir = (docs_dir / page_uri).parent
    resolved = (page_dir / path_part).resolve()
    root = repo_root.resolve()
    if resolved.is_relative_to(docs_dir.resolve()):
        return None
    if not resolved.is_relative_to(root):
        raise FileNotFoundError(f"{target} leaves the repository")
    if not resolved.exists():
        raise FileNotFoundError(f"{target}: no such file or folder in the repository")
    return resolved.relative_to(root).as_posix(), resolved.is_dir()


def scan_page(page_uri: str, markdown: str, links: SourceLinks) -> None:
    """Record the repository links of one page (and the problems) in `links`."""
    for match in LINK.finditer(markdown):
        target = match.group("target")
        try:
            found = resolve_link(page_uri, target, repo_root=links.repo_root, docs_dir=links.docs_dir)
        except FileNotFoundError as error:
            links.problems.append(f"Doc file '{page_uri}' links into the repository: {error}")
            continue
        if found is None:
            continue
        repo_path, is_dir = found
        generated = source_page_uri(repo_path, is_dir=is_dir)
        links.generated[generated] = links.repo_root / repo_path
        fragment = target.split("#", 1)[1] if "#" in target else ""
        relative = posixpath.relpath(generated, start=posixpath.dirname(page_uri) or ".")
        links.rewrites.setdefault(page_uri, {})[target] = relative + (f"#{fragment}" if fragment else "")


def rewrite_links(markdown: str, rewrites: dict[str, str]) -> str:
    """The page's Markdown with each recorded repository link pointing at its generated page."""

    def replace(match: re.Match[str]) -> str:
        target = match.group("target")
        if target not in rewrites:
            return match.group(0)
        return f"]({rewrites[target]}{match.group('title') or ''})"

    return LINK.sub(replace, markdown)


def fence_for(text: str) -> str:
    """A backtick fence longer than any run of backticks in `text`."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def language_of(path: Path) -> str:
    return NAMED_LANGUAGES.get(path.name) or LANGUAGES.get(path.suffix, "text")


def file_page(repo_path: str, text: str, language: str) -> str:
    """The Markdown of a generated source page: a title and the file's text, fenced."""
    fence = fence_for(text)
    body = text if text.endswith("\n") else text + "\n"
    return (
        f"# `{repo_path}`\n\n"
        "This repository's file as it was when the site was built.\n\n"
        f'{fence}{language} linenums="1"\n{body}{fence}\n'
    )


def folder_page(repo_path: str, files: list[str]) -> str:
    """The Markdown of a generated folder page: the files git tracks under it."""
    listing = "\n".join(f"- `{name}`" for name in files) or "- (no tracked files)"
    return f"# `{repo_path or '.'}/`\n\nFiles tracked in this folder when the site was built:\n\n{listing}\n"


def tracked_files(repo_root: Path, repo_path: str) -> list[str]:
    """The files git tracks under a folder (all files on disk when this is not a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--", repo_path or "."],
            cwd=repo_root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return [line for line in out.splitlines() if line]
    except (OSError, subprocess.CalledProcessError):
        base = repo_root / repo_path
        return sorted(p.relative_to(repo_root).as_posix() for p in base.rglob("*") if p.is_file())


def render(generated_uri: str, source: Path, repo_root: Path) -> str:
    repo_path = source.relative_to(repo_root).as_posix() if source != repo_root else ""
    if source.is_dir():
        return folder_page(repo_path, tracked_files(repo_root, repo_path))
    return file_page(repo_path, source.read_text(encoding="utf-8", errors="replace"), language_of(source))


# ---- MkDocs hook events --------------------------------------------------------------------------

_state: SourceLinks | None = None


def on_config(config: Any) -> Any:
    global _state
    repo_root = Path(config.config_file_path).resolve().parent
    _state = SourceLinks(repo_root=repo_root, docs_dir=Path(config.docs_dir).resolve())
    if (repo_root / MERMAID_JS).is_file():
        from mkdocs.config.config_options import ExtraScriptValue

        _state.mermaid = repo_root / MERMAID_JS
        if MERMAID_URI not in [str(script) for script in config.extra_javascript]:
            config.extra_javascript.append(ExtraScriptValue(MERMAID_URI))
    else:
        log.info("%s not installed (make install): Mermaid will load from Material's CDN", MERMAID_JS)
    return config


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    assert _state is not None
    for file in list(files):
        if file.is_documentation_page() and not file.generated_by:
            scan_page(file.src_uri, file.content_string, _state)
    for problem in _state.problems:
        log.warning(problem)
    for uri, source in sorted(_state.generated.items()):
        if files.get_file_from_path(uri) is None:
            files.append(File.generated(config, uri, content=render(uri, source, _state.repo_root)))
    if _state.mermaid is not None and files.get_file_from_path(MERMAID_URI) is None:
        files.append(File.generated(config, MERMAID_URI, abs_src_path=str(_state.mermaid)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    assert _state is not None
    rewrites = _state.rewrites.get(page.file.src_uri)
    return rewrite_links(markdown, rewrites) if rewrites else markdown
