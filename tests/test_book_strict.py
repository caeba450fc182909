"""The book build fails loudly on a broken internal link, a missing document or a missing image.

A tiny two-page book of markdown pages (nothing executed) is built in a temporary folder with the project's own
``_config.yml`` and the exact ``jupyter-book build`` flags of the Makefile's ``book`` target. A clean tiny book must
build, so the failure of the broken one is caused by the flags and not by a broken setup.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JB = Path(sys.executable).parent / "jupyter-book"

pytestmark = pytest.mark.skipif(not JB.is_file(), reason=f"no jupyter-book next to the test interpreter ({JB})")

PNG = bytes.fromhex(  # a valid 1x1 PNG, so the clean book shows an image that exists
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf00000301010018dd8db00000000049454e44ae426082")


def makefile_flags() -> list[str]:
    """The options the Makefile's ``book`` target passes to ``jupyter-book build .``."""
    text = (ROOT / "Makefile").read_text(encoding="utf8")
    recipe = re.search(r"^book:.*\n\t(.+)$", text, flags=re.M)
    assert recipe, "no `book:` target in the Makefile"
    words = shlex.split(recipe.group(1))
    assert "build" in words, recipe.group(1)
    after = words[words.index("build") + 1:]
    return [w for w in after if w.startswith("-")]


def write_book(folder: Path, page: str) -> None:
    """The project's _config.yml and what it points to, a root page and one chapter page with text ``page``."""
    (folder / "book").mkdir()
    (folder / "_config.yml").write_text((ROOT / "_config.yml").read_text(encoding="utf8"), encoding="utf8")
    (folder / "book" / "references.bib").write_text((ROOT / "book" / "references.bib").read_text(encoding="utf8"),
                                                    encoding="utf8")
    (folder / "book" / "_vendor").symlink_to(ROOT / "book" / "_vendor", target_is_directory=True)
    (folder / "book" / "_ext").symlink_to(ROOT / "book" / "_ext", target_is_directory=True)  # local Sphinx extensions
    (folder / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: page\n", encoding="utf8")
    (folder / "intro.md").write_text("# Intro\n\nRead [the page](page.md), also as {doc}`page`.\n", encoding="utf8")
    (folder / "figure.png").write_bytes(PNG)
    (folder / "page.md").write_text("# Page\n\n(sec-page)=\n## A section\n\n" + page, encoding="utf8")


def build(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(JB), "build", ".", *makefile_flags()], cwd=folder, capture_output=True, text=True,
                          timeout=300)


def test_the_makefile_builds_with_warnings_as_errors_and_nitpicky_references():
    flags = makefile_flags()
    assert {"--warningiserror", "--nitpick"} <= set(flags) or {"-W", "-n"} <= set(flags), flags


def test_a_clean_tiny_book_builds(tmp_path):
    write_book(tmp_path, "Back to [the intro](intro.md), to {ref}`sec-page` and [here](#sec-page).\n\n"
                         "![a dot](figure.png)\n")
    result = build(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "_build" / "html" / "page.html").is_file()


def test_broken_links_and_a_missing_image_fail_the_build_and_are_named(tmp_path):
    write_book(tmp_path, "A [broken link](missing.md), a {doc}`missing document <nowhere>`, "
                         "a [broken anchor](#no-such-anchor).\n\n![a missing figure](missing.png)\n")
    result = build(tmp_path)
    log = result.stdout + result.stderr
    assert result.returncode != 0, log[-3000:]
    for problem in ("missing.md", "unknown document: 'nowhere'", "no-such-anchor", "missing.png"):
        assert problem in log, f"{problem!r} not reported:\n{log[-3000:]}"
