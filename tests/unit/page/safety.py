"""What "safe to open" means, checked on a parsed page: nothing from the files became
an element or an attribute, and the page can load and run nothing."""

from __future__ import annotations

from tests.unit.page.parse import Page

HOSTILE = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(2)>",
    "</td></table><iframe src=//evil.example>",
)
#: Every tag the template and the charts write; anything else came from the data.
TAGS = frozenset(
    [
        "html",
        "head",
        "meta",
        "title",
        "style",
        "body",
        "header",
        "h1",
        "h2",
        "h3",
        "p",
        "span",
        "code",
        "div",
        "table",
        "thead",
        "tbody",
        "tfoot",
        "tr",
        "th",
        "td",
        "b",
        "details",
        "summary",
        "svg",
        "defs",
        "pattern",
        "rect",
        "path",
        "circle",
        "text",
        "line",
        "footer",
    ]
)
#: The policy: no script, no network load, not even a form or a base URL.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)


def assert_inert(page: Page) -> None:
    """No element or attribute from outside; the page loads nothing and runs nothing."""
    tags = {tag for tag, _ in page.tags}
    assert tags <= TAGS, tags - TAGS
    for tag, attrs in page.tags:
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name)
            assert name not in ("src", "href", "srcset", "action", "xlink:href"), (tag, name)
            assert "alert" not in (value or ""), (tag, name, value)
            assert "evil" not in (value or ""), (tag, name, value)
    csp = [
        dict(attrs).get("content")
        for tag, attrs in page.tags
        if tag == "meta" and dict(attrs).get("http-equiv") == "Content-Security-Policy"
    ]
    assert csp == [CSP]
