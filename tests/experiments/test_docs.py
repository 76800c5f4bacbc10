"""The documentation: README within its size, pages that speak of the project alone and link
only inside the repository, a layout page that lists every module of both packages, and the
licence and citation files. The results tables: test_results_pages."""

import os
import re
import subprocess

import pytest
import yaml

from tests.helpers import REPO

README = os.path.join(REPO, "README.md")
DOCS = sorted(os.path.join(REPO, "docs", f) for f in os.listdir(os.path.join(REPO, "docs")) if f.endswith(".md"))
PAGES = [README, *DOCS]
PACKAGES = ("fairseq_r3f", "r3f_experiments")
# How the project's work is organised is not the reader's business; neither are paths outside the checkout.
FORBIDDEN = [
    "as the issue specifies",
    "the issue's",
    "the lead",
    "session",
    "no gpu time was left",
    "../shared",
    "shared/notes",
    "/work/",
    "reference-facts",
]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def test_readme_is_at_most_10_kb():
    assert os.path.getsize(README) <= 10_000


@pytest.mark.parametrize("page", PAGES, ids=lambda p: os.path.relpath(p, REPO))
def test_pages_speak_of_the_project_alone(page):
    lowered = text(page).lower()
    found = [phrase for phrase in FORBIDDEN if phrase in lowered]
    assert not found, f"{os.path.relpath(page, REPO)} mentions {found}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: os.path.relpath(p, REPO))
def test_links_stay_in_the_repository_and_resolve(page):
    for target in LINK.findall(text(page)):
        if re.match(r"[a-z]+://", target) or target.startswith("#") or target.startswith("mailto:"):
            continue
        path = os.path.normpath(os.path.join(os.path.dirname(page), target.split("#")[0]))
        assert path.startswith(REPO + os.sep), f"{page}: {target} leaves the repository"
        assert os.path.exists(path), f"{page}: {target} does not exist"


def documented_modules(layout: str) -> set:
    """Every ``.py`` path the Layout section names: written in full, or as a name under the folder
    its bullet (or an enclosing bullet) names, e.g. "- `fairseq_r3f/method/`:" then "  - `noise.py`"."""
    documented, folder = set(), None
    for line in layout.splitlines():
        indent = len(line) - len(line.lstrip())
        names = re.findall(r"`([^`\s]+)`", line)
        folders = [n for n in names if n.endswith("/") and n.startswith(PACKAGES)]
        if indent == 0 and line.lstrip().startswith("- "):
            folder = folders[0] if folders else None
        elif folders:
            folder = folders[0]
        for name in names:
            if not name.endswith(".py"):
                continue
            if name.startswith(PACKAGES):
                documented.add(name)
            elif folder is not None and "/" not in name:
                documented.add(folder + name)
    return documented


def test_development_layout_lists_every_package_module():
    page = text(os.path.join(REPO, "docs", "development.md"))
    layout = page.split("## Layout", 1)[1].split("\n## ", 1)[0]
    tracked = subprocess.run(
        ["git", "ls-files", *PACKAGES], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    modules = {p for p in tracked if p.endswith(".py") and os.path.basename(p) != "__init__.py"}
    documented = {p for p in documented_modules(layout) if os.path.basename(p) != "__init__.py"}
    assert modules - documented == set(), "modules missing from docs/development.md's layout"
    assert documented - modules == set(), "docs/development.md lists modules that do not exist"


def test_licence_and_citation():
    assert text(os.path.join(REPO, "LICENSE")).startswith("MIT License")
    citation = yaml.safe_load(text(os.path.join(REPO, "CITATION.cff")))
    assert citation["cff-version"] == "1.2.0" and citation["license"] == "MIT"
    assert citation["preferred-citation"]["title"] == "Better Fine-Tuning by Reducing Representational Collapse"
    assert "@inproceedings" in text(README) and "2008.03156" in text(README)
