"""The documentation's wiring: CI runs the README's commands (install, test, docs build), each README
section becomes a page, README links the docs and the tutorial, CITATION.cff is complete."""

from __future__ import annotations

import re
import runpy

import yaml

import qgen
from tests.helpers import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def _readme_bash_lines() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip().startswith(".venv/")
            or line.strip().startswith("python3.11 -m venv")]


def test_ci_runs_the_readmes_install_test_and_docs_commands_verbatim() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    commands = [line.split("  #")[0].strip() for line in _readme_bash_lines()]
    install = [c for c in commands if c.startswith("python3.11 -m venv")]
    docs = [c for c in commands if "qgen.docs" in c]
    assert install and docs and ".venv/bin/python -m pytest" in commands
    for command in [*install, ".venv/bin/python -m pytest", *docs]:
        assert command in ci.splitlines(), f".ci/run does not run the README's {command!r}"


def test_every_readme_section_is_a_page_of_the_guide() -> None:
    conf = runpy.run_path(str(REPO / "docs" / "conf.py"))
    pages = conf["_readme_pages"]()
    titles = re.findall(r"^## (.+)$", README, flags=re.M)
    assert len(pages) == len(titles) + 1 and pages[-1] == "guide/BENCHMARKS"
    for page, title in zip(pages, titles):
        text = (REPO / "docs" / f"{page}.md").read_text(encoding="utf-8")
        assert text.startswith(f"# {title}\n") and f':start-after: "## {title}"' in text


def test_readme_links_the_documentation_the_tutorial_and_the_citation() -> None:
    assert "python -m qgen.docs" in README
    assert "(examples/tutorial.py)" in README and (REPO / "examples" / "tutorial.py").is_file()
    assert "(CITATION.cff)" in README
    index = (REPO / "docs" / "index.md").read_text(encoding="utf-8")
    assert all(page in index for page in ("guide/index", "tutorial", "api/index"))


def test_citation_file_has_what_cff_requires_and_the_packages_version() -> None:
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0" and cff["message"] and cff["title"].startswith("qgen")
    assert cff["authors"] and all("name" in a or "family-names" in a for a in cff["authors"])
    assert cff["version"] == qgen.__version__
