"""Reads a report card back with `html.parser`: its tables, its text, every tag and
attribute, so tests check what a browser would be given, not the template's source."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

Table = list[list[str]]


@dataclass
class Page:
    tags: list[tuple[str, list[tuple[str, str | None]]]] = field(default_factory=list)
    tables: dict[str, Table] = field(default_factory=dict)  # by id or data-outcome
    texts: dict[str, str] = field(default_factory=dict)  # element id -> its text
    text: str = ""


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._table: Table | None = None
        self._cell: list[str] | None = None
        #: elements with an id still open: tag, id, text, how deep the same tag nests
        self._open: list[tuple[str, str, list[str], list[int]]] = []
        self._all: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.page.tags.append((tag, attrs))
        a = dict(attrs)
        if tag == "table":
            name = a.get("id") or a.get("data-outcome") or f"table-{len(self.page.tables)}"
            self._table = self.page.tables.setdefault(str(name), [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
            self._cell = None
        elif tag in ("td", "th") and self._table is not None and self._table:
            self._table[-1].append("")
            self._cell = []
        for open_tag, _, _, depth in self._open:
            if open_tag == tag:
                depth[0] += 1
        if a.get("id"):
            self._open.append((tag, str(a["id"]), [], [1]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        for entry in list(self._open):
            open_tag, ident, text, depth = entry
            if open_tag == tag:
                depth[0] -= 1
                if depth[0] == 0:
                    self._open.remove(entry)
                    self.page.texts[ident] = "".join(text)

    def handle_data(self, data: str) -> None:
        self._all.append(data)
        for _, _, text, _ in self._open:
            text.append(data)
        if self._table is not None and self._table and self._table[-1]:
            self._table[-1][-1] += data

    def close(self) -> None:
        super().close()
        self.page.text = "".join(self._all)


def read_page(html: str) -> Page:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return reader.page


def body_rows(table: Table) -> Table:
    """The rows after the header row, cells stripped."""
    return [[c.strip() for c in row] for row in table[1:]]
