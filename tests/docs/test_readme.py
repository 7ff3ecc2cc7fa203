"""The README's first screen teaches the first five minutes; the docs pages hold the rest."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import markdown
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
FIRST_SCREEN = 60


class Text(HTMLParser):
    """The rendered page as a reader sees it: text, code, and the table's cells."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.cells: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.cells.append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
        if self._cell is not None:
            self._cell.append(data)


def rendered(text: str) -> Text:
    html = markdown.markdown(text, extensions=["tables", "fenced_code"])
    page = Text()
    page.feed(html)
    return page


def test_the_readme_fits_a_few_screens() -> None:
    assert len(README.splitlines()) <= 250


def test_the_first_screen_names_install_demo_the_three_step_night_and_exit_codes() -> None:
    first = rendered("\n".join(README.splitlines()[:FIRST_SCREEN]))
    text = " ".join(" ".join(first.parts).split())
    # install, with the Python version and how to get the command on the PATH
    assert "3.11 or newer" in text
    assert "pipx install ." in text and "pip install ." in text
    assert "docker build" in text and "source .venv/bin/activate" in text
    assert "command not found" in text
    # the two set-up commands, the demo in one command
    assert "make demo" in text and "make test" in text
    # the night: credentials as environment variables, then check, dry run, run
    for variable in ("BAMBORA_CLIENT_ID", "BAMBORA_CLIENT_SECRET_FILE"):
        assert f"export {variable}=" in text
    steps = [
        "cancel-worker check payments.csv",
        "cancel-worker run payments.csv --dry-run",
        "cancel-worker run payments.csv #",
    ]
    assert [text.index(step) for step in steps] == sorted(text.index(step) for step in steps)
    assert "Rerun the same command to resume" in text
    # every exit code, in a table of its own
    codes = [cell for cell in first.cells if re.fullmatch(r"[0-9 /]+", cell)]
    assert codes == ["0", "1", "5", "2", "3", "4", "130 / 143"]


def test_every_docs_page_is_in_the_site_and_says_what_it_is_for() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["strict"] is True
    nav = {page for entry in config["nav"] for page in entry.values()}
    pages = {p.name for p in (REPO / "docs").glob("*.md")}
    assert nav == pages
    for name in pages - {"index.md", "pitfalls.md"}:
        paragraphs = (REPO / "docs" / name).read_text(encoding="utf-8").split("\n\n")
        assert paragraphs[0].startswith("# ") and paragraphs[1].startswith("For "), name


@pytest.mark.parametrize("link", sorted(set(re.findall(r"\]\((docs/[^)#]+)", README))))
def test_the_readme_links_to_pages_that_exist(link: str) -> None:
    assert (REPO / link).is_file()
