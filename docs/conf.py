"""Sphinx configuration of qgen's documentation: the README's sections as pages, an API reference
from the docstrings, and the tutorial. Build with ``.venv/bin/python -m qgen.docs`` (warnings are
errors, as in CI)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path.insert(0, str(REPO))

import qgen  # noqa: E402  (after the path: the checkout's qgen, not an installed one)

project = "qgen"
author = "the qgen authors"
release = version = qgen.__version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
# docs/results holds measured results for the repository's readers (CSV, figures, their READMEs);
# the README's links to them are kept as repository paths (``_repository_file`` below)
exclude_patterns = ["_build", "results", "images"]
html_theme = "alabaster"
html_static_path: list[str] = []
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# the heavy optional stacks are imported only where they run; the reference needs none of them
autodoc_mock_imports = ["ray", "qiskit_ibm_runtime"]
myst_heading_anchors = 3
nitpicky = False


def _readme_pages() -> list[str]:
    """One page per ``## `` section of README.md, written into docs/guide/ (generated, git-ignored),
    each including that section, so the README stays the one source of the text."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    titles = re.findall(r"^## (.+)$", readme, flags=re.M)
    guide = DOCS / "guide"
    guide.mkdir(exist_ok=True)
    names = []
    for i, title in enumerate(titles):
        name = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        end = f':end-before: "## {titles[i + 1]}"\n' if i + 1 < len(titles) else ""
        text = (f"# {title}\n\n```{{include}} ../../README.md\n:start-after: \"## {title}\"\n{end}"
                ":relative-images:\n:relative-docs: docs/\n```\n")
        page = guide / f"{name}.md"
        if not page.is_file() or page.read_text(encoding="utf-8") != text:
            page.write_text(text, encoding="utf-8")
        names.append(f"guide/{name}")
    # README links BENCHMARKS.md beside itself: a page of that name beside the guide pages resolves it
    (guide / "BENCHMARKS.md").write_text("```{include} ../../BENCHMARKS.md\n:relative-images:\n```\n", encoding="utf-8")
    names.append("guide/BENCHMARKS")
    (guide / "index.md").write_text("# User guide\n\nThe sections of the README, one per page.\n\n```{toctree}\n"
                                    ":maxdepth: 1\n\n" + "\n".join(n.split("/")[1] for n in names) + "\n```\n",
                                    encoding="utf-8")
    return names


_readme_pages()


NOT_PAGES = tuple(f"{d}/" for d in exclude_patterns[1:])  # folders of docs/ that hold no page


def _in_repository(contnode, path: Path):
    """The link's text and the repository path it points to."""
    from docutils import nodes

    where = path.relative_to(REPO).as_posix()
    return nodes.inline("", "", contnode, nodes.Text(" ("), nodes.literal(where, where),
                        nodes.Text(" in the repository)"))


def _repository_file(node) -> Path | None:
    """The repository file a README link names when it is not a page: a document under
    ``NOT_PAGES`` (docs/results/...) or a file beside the README (examples/tutorial.py, CITATION.cff)."""
    target = node.get("reftarget", "")
    if node.get("refdomain") == "doc":
        path = DOCS / f"{target}.md"
        return path if target.startswith(NOT_PAGES) and path.is_file() else None
    if node.get("reftype") == "myst" and target and not target.startswith("#"):
        path = (REPO / target).resolve()
        return path if path.is_file() and REPO in path.parents else None
    return None


def _repository_links(app, doctree) -> None:
    """README links to repository files that are not pages become their repository paths, before
    MyST's resolver would call them unknown; any other unresolved link still fails the build."""
    from sphinx.addnodes import pending_xref

    for node in list(doctree.findall(pending_xref)):
        path = _repository_file(node)
        if path is not None:
            node.replace_self(_in_repository(node[0].deepcopy(), path))


def setup(app):
    app.connect("doctree-read", _repository_links)
