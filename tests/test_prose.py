"""The claims rule of CONTRIBUTING.md, held for every page of the book.

Source checks (fast): no bare ``assert`` in a chapter (claims are ``cl.check`` lines the reader sees), no code line
wider than the page, no "seed post" wording. Executed checks (after ``make book``, on the notebooks the build
executed, ``_build/jupyter_execute``): no measured-looking number in the prose that the page does not set or print
(``tools/prose_numbers.py``), no printed line wider than the page, and every claim line a page printed passed.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML, installed with jupyter-book

ROOT = Path(__file__).resolve().parents[1]
EXECUTED = ROOT / "_build" / "jupyter_execute"
WIDTH = 110  # characters of a code or output block that a 1280-pixel window shows (book/_vendor/cfglab.css)

_spec = importlib.util.spec_from_file_location("prose_numbers", ROOT / "tools" / "prose_numbers.py")
assert _spec is not None and _spec.loader is not None
prose_numbers = importlib.util.module_from_spec(_spec)
sys.modules["prose_numbers"] = prose_numbers  # its dataclass looks its module up while it is being loaded
_spec.loader.exec_module(prose_numbers)


def toc_notebooks() -> list[str]:
    """The notebook pages of _toc.yml, e.g. 'chapters/01_langevin', 'book/benchmarks'."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf8"))
    found: list[str] = []

    def walk(node: dict) -> None:
        if "file" in node and (ROOT / f"{node['file']}.ipynb").is_file():
            found.append(node["file"])
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key) or []:
                walk(child)

    walk(toc)
    return found


PAGES = toc_notebooks()


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf8"))


def code_cells(nb: dict) -> list[tuple[int, str]]:
    return [(i, "".join(c["source"]) if isinstance(c["source"], list) else c["source"])
            for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]


# -- sources ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("page", PAGES)
def test_no_bare_assert_in_a_page(page):
    """Claims are cl.check lines, printed where the reader sees them; exercise checks end in .or_reference()."""
    found = []
    for i, src in code_cells(load(ROOT / f"{page}.ipynb")):
        tree = ast.parse("\n".join(line for line in src.splitlines() if not line.lstrip().startswith(("%", "!"))))
        found += [f"cell {i}, line {n.lineno}: {ast.unparse(n)[:80]}" for n in ast.walk(tree)
                  if isinstance(n, ast.Assert)]
    assert not found, f"{page}: bare assert statements (use cl.check):\n" + "\n".join(found)


@pytest.mark.parametrize("page", PAGES)
def test_code_lines_fit_the_page(page):
    long = [f"cell {i}: {len(line)} chars: {line[:60]}..." for i, src in code_cells(load(ROOT / f"{page}.ipynb"))
            for line in src.splitlines() if len(line) > WIDTH]
    assert not long, f"{page}: code lines over {WIDTH} characters:\n" + "\n".join(long)


def test_the_explainers_are_named_by_title_not_as_seeds():
    pat = re.compile(r"\bseed (?:post|article|claim|explainer|text)s?\b", re.I)
    files = [ROOT / f"{p}.ipynb" for p in PAGES] + sorted((ROOT / "book").glob("*.md"))
    bad = [f"{f.relative_to(ROOT)}: {m.group(0)!r}" for f in files for m in pat.finditer(f.read_text(encoding="utf8"))]
    assert not bad, "readers do not know the explainers as seeds; cite them by title:\n" + "\n".join(bad)


# -- the scanner itself ---------------------------------------------------------------------------------------------

def _nb(markdown: str, code: str = "", output: str = "") -> dict:
    cell = {"cell_type": "code", "source": code, "outputs": [{"output_type": "stream", "text": output}]}
    return {"cells": [{"cell_type": "markdown", "source": markdown}, cell]}


@pytest.mark.parametrize("markdown,code,output,flagged", [
    ("the weights are about 0.67 and 0.32", "", "", ["about 0.67", "0.32"]),
    ("the weights are about 0.67 and 0.32", "", "weights [0.671 0.318]", []),
    ("a quarter miss: 26 % of them", "", "0.2612", []),
    ("a quarter miss: 26 % of them", "", "0.31", ["26 %"]),
    ("beyond $w \\approx 5$", "w = 5", "", ["\\approx 5"]),       # an approximation must be printed, not set
    ("the course is 23.8x faster", "", "ratio 23.81", []),
    ("the course is 23.8x faster", "", "", ["23.8x"]),
    ("with 10 % label dropout", "p_uncond=0.1", "", []),          # a setting, as a fraction
    ("$$ x = 0.541 $$ (eq-a)", "", "", []),                        # display math is a derivation
    ("see {cite}`ho2022classifier` and 8x8 digits", "", "", []),
    ("a step of 10^{-3}", "t_min = 1e-3", "", []),
])
def test_the_scanner_flags_exactly_the_unproduced_numbers(markdown, code, output, flagged):
    got = [f.text for f in prose_numbers.scan(_nb(markdown, code, output))]
    assert got == flagged


# -- the executed book ----------------------------------------------------------------------------------------------

def needs_build(fn):
    """A check of the executed book (marker ``book``: `make test-book` runs it after `make book`)."""
    skip = pytest.mark.skipif(not EXECUTED.is_dir(), reason="book not built: run `make book` first")
    return pytest.mark.book(skip(fn))


def executed(page: str) -> dict:
    path = EXECUTED / f"{page}.ipynb"
    assert path.is_file(), f"{page} is in _toc.yml but the build did not execute it ({path})"
    return load(path)


def printed_lines(nb: dict) -> list[tuple[int, str]]:
    out = []
    for i, c in enumerate(nb["cells"]):
        for o in c.get("outputs", []) if c["cell_type"] == "code" else []:
            text = o.get("text") or (o.get("data") or {}).get("text/plain") or ""
            if "text/html" in (o.get("data") or {}) or "text/markdown" in (o.get("data") or {}):
                continue  # rendered as HTML or Markdown, which wraps
            out += [(i, line) for line in ("".join(text) if isinstance(text, list) else text).splitlines()]
    return out


@needs_build
@pytest.mark.parametrize("page", PAGES)
def test_prose_numbers_are_produced_by_the_page(page):
    found = prose_numbers.scan(executed(page))
    assert not found, (f"{page}: numbers in the prose that no code cell sets and no output prints (say them in "
                       "words and print them with cl.check):\n" + "\n".join(map(str, found)))


@needs_build
@pytest.mark.parametrize("page", PAGES)
def test_printed_lines_fit_the_page(page):
    long = [f"cell {i}: {len(line)} chars: {line[:60]}..." for i, line in printed_lines(executed(page))
            if len(line) > WIDTH]
    assert not long, f"{page}: printed lines over {WIDTH} characters:\n" + "\n".join(long)


@needs_build
@pytest.mark.parametrize("page", PAGES)
def test_every_claim_line_passed(page):
    lines = printed_lines(executed(page))
    failed = [line for _, line in lines if line.startswith("✗ ")]
    assert not failed, f"{page}: claims that failed: {failed}"
