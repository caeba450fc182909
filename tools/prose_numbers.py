"""Find measured-looking numbers in a chapter's prose that the chapter's code neither sets nor prints.

The course's rule: a measurement is printed by the page's code and checked there (``cl.check``); the prose says it
in words. A decimal (0.541), a percentage (12 %), a ratio (23.8x), a power of ten (10^-3) or an approximate value
("w ≈ 5", "about 1.6", "~0.3") written in a markdown cell must therefore be produced by the same notebook: a
number of one of its code cells (a setting such as ``steps=32``, a constant such as 0.1) or of one of its outputs
(a printed measurement). An approximate value is a measurement by its own words, so only an output produces it.
Matching allows the rounding the prose uses: "0.54" is produced by a printed 0.5412, "12 %"
by 0.1203 or 12.03, "about 1.6" by 1.63.

Not scanned: display math (``$$ ... $$`` and ``{math}`` blocks, derivations), equation labels, ``{cite}`` and other
roles' targets, link targets, HTML comments. Inline math and inline code are scanned.

``python tools/prose_numbers.py NOTEBOOK...`` prints what it finds (exit status 1 if anything) and is run on the
executed chapters of the built book by ``tests/test_prose.py``.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_NUM = r"\d+(?:[.,]\d{3})*(?:\.\d+)?"
# Display math, directives whose body is math or code, labels after $$ blocks, roles with targets, links, comments.
_SKIP = [
    re.compile(r"\$\$.*?\$\$(?:\s*\([\w:-]+\))?", re.S),
    re.compile(r"^(?P<f>`{3,}|:{3,})\{(?:math|code|code-block|raw)\}.*?^(?P=f)[ \t]*$", re.S | re.M),
    re.compile(r"\{[\w:-]+\}`[^`]*`"),                     # {cite}`...`, {eq}`...`, {download}`...`
    re.compile(r"\]\([^)]*\)"),                              # link targets
    re.compile(r"<!--.*?-->", re.S),
    re.compile(r"^:label:.*$", re.M),
    re.compile(r"https?://\S+"),
]
_APPROX = r"(?:≈|\\approx|\\sim|~|about|around|roughly|nearly|almost|approximately|circa|close to)"
_PATTERNS = [  # in this order: a span matched by an earlier pattern is not matched again
    ("power of ten", re.compile(r"10\^\{?(?P<n>-?\d+)\}?")),
    ("approximate", re.compile(rf"{_APPROX}\s*\$?\s*(?:[A-Za-z_\\{{}}^]+\s*=\s*)?(?P<n>-?{_NUM})"
                               r"(?P<pct>(?:\s|\\,|\\;)*\\?%)?", re.I)),
    ("percentage", re.compile(rf"(?<![\w.])(?P<n>{_NUM})(?:\s|\\,|\\;)*(?:\\?%|per ?cent\b)")),
    ("ratio", re.compile(rf"(?<![\w.])(?P<n>{_NUM})\s*(?:x|×|\\times)(?![\w(])(?!\s*\d)")),  # not 64 x 64
    ("ratio", re.compile(rf"(?<![\w.])(?:x|×)(?P<n>{_NUM})(?![\w.])")),
    ("decimal", re.compile(r"(?<![\w.\-/])(?P<n>-?\d+\.\d+)(?![\w.]|\.\d)")),
]
_TOKEN = re.compile(r"(?<![\w.])-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class Finding:
    """A number in markdown cell ``cell`` that nothing in the notebook produces."""

    cell: int
    kind: str
    text: str
    context: str

    def __str__(self) -> str:
        return f"cell {self.cell}: {self.kind} {self.text!r} in '...{self.context}...'"


def prose(source: str) -> str:
    """The scanned part of a markdown cell: everything but display math, roles, links, labels and comments."""
    for pat in _SKIP:
        source = pat.sub(" ", source)
    return source


def numbers_in(text: str) -> set[float]:
    """Every number token of a code cell or an output (including ``1e-3``, ``.5``, ``-2``, and ``12,000``)."""
    out = set()
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    for m in _TOKEN.finditer(text):
        try:
            out.add(float(m.group(0)))
        except ValueError:
            continue
    return out


def _decimals(s: str) -> int:
    return len(s.split(".")[1]) if "." in s else 0


def produced(value: str, kind: str, pct: bool, known: set[float]) -> bool:
    """Whether a prose number is one of ``known`` at the precision it is written with (a percentage also as a
    fraction; a power of ten as 10**n)."""
    s = value.replace(",", "")
    v = float(s)
    if kind == "power of ten":
        target = 10.0 ** v
        return any(k != 0 and math.isclose(k, target, rel_tol=1e-9) for k in known) or v in known
    d = _decimals(s)
    half = 0.5 * 10.0 ** -d
    candidates = [v]
    if pct or kind == "percentage":
        candidates.append(v / 100)
        half_frac = half / 100
    for k in known:
        if abs(k - v) <= half + 1e-12 or abs(abs(k) - abs(v)) <= half + 1e-12:
            return True
        if len(candidates) > 1 and abs(k - v / 100) <= half_frac + 1e-12:
            return True
    return False


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _outputs_text(cell: dict[str, Any]) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if "text" in out:
            parts.append("".join(out["text"]) if isinstance(out["text"], list) else out["text"])
        for mime, val in (out.get("data") or {}).items():
            if mime.startswith("text/") or mime == "application/json":
                parts.append("".join(val) if isinstance(val, list) else str(val))
    return "\n".join(parts)


def known_numbers(nb: dict[str, Any]) -> tuple[set[float], set[float]]:
    """The numbers the notebook's code sets and the numbers it prints: every token of every code cell, and of
    every output."""
    code: set[float] = set()
    printed: set[float] = set()
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            code |= numbers_in(_source(cell))
            printed |= numbers_in(_outputs_text(cell))
    return code, printed


def scan(nb: dict[str, Any]) -> list[Finding]:
    """Every measured-looking number of the notebook's markdown that its code and outputs do not produce."""
    code, printed = known_numbers(nb)
    found = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        text = prose(_source(cell))
        seen: set[tuple[int, int]] = set()
        for kind, pat in _PATTERNS:
            for m in pat.finditer(text):
                span = m.span("n")
                if any(a <= span[0] < b for a, b in seen):
                    continue
                seen.add(m.span())
                pct = bool(m.groupdict().get("pct"))
                known = printed if kind == "approximate" else code | printed
                if not produced(m.group("n"), kind, pct, known):
                    a, b = max(0, m.start() - 40), min(len(text), m.end() + 40)
                    found.append(Finding(i, kind, m.group(0).strip(), " ".join(text[a:b].split())))
    return found


def main(argv: list[str]) -> int:
    bad = 0
    for arg in argv:
        nb = json.loads(Path(arg).read_text())
        for f in scan(nb):
            print(f"{arg}: {f}")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
