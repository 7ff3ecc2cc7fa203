"""Write constraints.txt: every package the installed cancel-worker needs to run, pinned.

    .venv/bin/python scripts/pin-constraints.py      # or: make constraints

The image is built with these pins (`pip wheel -c constraints.txt` in the Dockerfile),
so a rebuild gets the libraries the tests passed with; pyproject.toml keeps the ranges
that `pip install` accepts. Walks the runtime requirements of the installed
distribution (no extras), as `importlib.metadata` reports them in this environment.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement

HEADER = """\
# The image's dependencies, pinned (Dockerfile: pip wheel -c constraints.txt), so a
# rebuild gets the libraries the tests passed with. pyproject.toml keeps the ranges a
# pip install accepts; tests/unit/test_constraints.py checks every pin is in its range.
# Refresh: make constraints (the runtime closure of .venv, after make install).
"""


def closure(root: str) -> dict[str, str]:
    """name -> installed version, for `root`'s runtime requirements and theirs."""
    found: dict[str, str] = {}
    todo = [root]
    while todo:
        try:
            dist = distribution(todo.pop())
        except PackageNotFoundError:  # a requirement of another platform
            continue
        name = dist.metadata["Name"].lower().replace("_", "-")
        if name in found:
            continue
        found[name] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    found.pop(root)
    return found


def main() -> None:
    pins = closure("cancel-worker")
    out = Path(__file__).resolve().parent.parent / "constraints.txt"
    out.write_text(HEADER + "".join(f"{n}=={v}\n" for n, v in sorted(pins.items())))
    print(f"{out}: {len(pins)} packages pinned")


if __name__ == "__main__":
    main()
