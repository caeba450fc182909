"""The student edition of the course, generated from the chapters so that exercises and solutions cannot drift.

For every ``chapters/NN_name.ipynb`` this writes ``student/NN_name.ipynb``: the same notebook without outputs, where
each code cell tagged ``solution`` becomes a stub (each top-level ``def`` keeps its signature and docstring, its body
becomes ``raise NotImplementedError("<hint>")``), the ``{solution-start}``/``{solution-end}`` markers are dropped,
a short "your turn" cell follows each stub, and the first cell says that this is the student edition. The hint of a
function is the ``# Hint: ...`` comment block (continued on further ``#`` lines) written directly above its ``def``
in the chapter. It also keeps the table of student notebooks in ``book/student.md`` up to date.

Run ``python tools/student_edition.py`` (``make student``) to write them, ``--check`` to list what is missing or
stale (exit status 1), and ``--link-chapters`` to also add the line that links each chapter to its student edition.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat
from nbformat import NotebookNode

if str(Path(__file__).resolve().parent) not in sys.path:  # the sibling module, also when imported by file path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import course  # noqa: E402  # the repository address, from _config.yml
from solution_stubs import StudentEditionError, stub_source  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REPO = course.repository()
STUB_TAG = "stub"
TABLE_BEGIN = "% BEGIN student table: written by `make student` (tools/student_edition.py), do not edit by hand"
TABLE_END = "% END student table"
# A {solution-start} or {solution-end} directive: its opening fence, any options, and the same closing fence.
_MARKER = re.compile(r"^(?P<fence>`{3,}|:{3,})\{solution-(?:start|end)\}.*?^(?P=fence)[ \t]*$\n?", re.M | re.S)


def colab_url(path: str) -> str:
    """The Colab address of a notebook of the repository, e.g. ``colab_url("student/01_langevin.ipynb")``."""
    return course.colab_url(path)


def chapter_link_line(name: str) -> str:
    """The line of a chapter's first cell that links its student edition (a download in the book, and Colab)."""
    return (f"**Student edition** (the exercises without their solutions): {{download}}`download the notebook "
            f"<../student/{name}.ipynb>` or [open it in Colab]({colab_url(f'student/{name}.ipynb')}).")


def student_note(name: str) -> str:
    """The paragraph that opens a student notebook, under the chapter's title."""
    return (f"**Student edition.** Every exercise solution of this chapter is replaced by a stub that raises "
            f"`NotImplementedError` with a hint: write each function, then run the check below it. The full chapter, "
            f"with solutions, is [`chapters/{name}.ipynb`](../chapters/{name}.ipynb) in a checkout of the "
            f"repository, [on GitHub]({REPO}/blob/{course.branch()}/chapters/{name}.ipynb) and "
            f"[in Colab]({colab_url(f'chapters/{name}.ipynb')}).")


def your_turn(names: list[str]) -> str:
    """The markdown cell placed after the stub of the functions ``names``."""
    listed = " and ".join(f"`{n}`" for n in names)
    return (f"**Your turn.** Write {listed} in the cell above: replace each `raise NotImplementedError(...)` with your "
            f"code (keep the signature), then run the check below. The exception's message is a hint, and the check "
            f"explains what is off if your answer is not right yet.")


def _tidy(markdown: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", markdown).strip()


def student_notebook(chapter: NotebookNode, name: str) -> NotebookNode:
    """The student edition of the chapter notebook ``chapter`` (file stem ``name``); ``chapter`` is not modified."""
    nb = copy.deepcopy(chapter)
    nb.metadata.pop("widgets", None)
    cells, first_markdown = [], True
    for index, cell in enumerate(nb.cells):
        where = f"chapters/{name}.ipynb, cell {index} (id {cell.get('id', '?')})"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            tags = cell.metadata.get("tags", [])
            if "solution" in tags:
                cell.source, names = stub_source(cell.source, where)
                cell.metadata["tags"] = [STUB_TAG if t == "solution" else t for t in tags]
                cells += [cell, nbformat.v4.new_markdown_cell(your_turn(names), id=f"{cell.id[:59]}-todo")]
                continue
        elif cell.cell_type == "markdown":
            if re.search(r"\{solution\}", cell.source):
                raise StudentEditionError(f"{where}: a {{solution}} directive would show its answer in the student "
                                          f"edition; use {{solution-start}}, a code cell tagged 'solution' and "
                                          f"{{solution-end}} (CONTRIBUTING.md)")
            cell.source = _tidy(_MARKER.sub("", cell.source))
            if first_markdown:
                first_markdown = False
                kept = [line for line in cell.source.split("\n") if line != chapter_link_line(name)]
                title, rest = (kept[0], kept[1:]) if kept and kept[0].startswith("# ") else ("", kept)
                cell.source = _tidy("\n\n".join([title, student_note(name), "\n".join(rest)]))
            if not cell.source:
                continue
        cells.append(cell)
    nb.cells = cells
    return nb


def render(nb: NotebookNode) -> str:
    """The notebook file's text, as ``nbformat.write`` writes it (deterministic: sorted keys, fixed indent)."""
    nbformat.validate(nb)
    text = nbformat.writes(nb, version=4)
    return text if text.endswith("\n") else text + "\n"


def chapter_title(nb: NotebookNode, name: str) -> str:
    """The ``# N. Title`` heading of a chapter, without the ``#`` (``name`` when there is none)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            first = cell.source.lstrip().split("\n", 1)[0]
            return first[2:].strip() if first.startswith("# ") else name
    return name


def table(chapters: dict[str, NotebookNode]) -> str:
    """The markdown table of book/student.md: title, download and Colab link of every student notebook."""
    rows = ["| Chapter | Notebook | Colab |", "|---|---|---|"]
    for name, nb in chapters.items():
        title = chapter_title(nb, name).replace("|", "\\|")
        rows.append(f"| {title} | {{download}}`{name}.ipynb <../student/{name}.ipynb>` | "
                    f"[open in Colab]({colab_url(f'student/{name}.ipynb')}) |")
    return "\n".join(rows)


def with_table(page: str, rows: str) -> str:
    """``page`` with the text between its table markers replaced by ``rows``."""
    begin, end = page.find(TABLE_BEGIN), page.find(TABLE_END)
    if begin < 0 or end < begin:
        raise StudentEditionError(f"book/student.md: no '{TABLE_BEGIN}' ... '{TABLE_END}' lines around the table")
    return page[: begin + len(TABLE_BEGIN)] + "\n" + rows + "\n" + page[end:]


def read_chapters(root: Path = ROOT) -> dict[str, NotebookNode]:
    """Every ``chapters/*.ipynb`` of ``root``, by file stem, in name order."""
    return {p.stem: nbformat.read(p, as_version=4) for p in sorted((root / "chapters").glob("*.ipynb"))}


def expected(root: Path = ROOT) -> dict[Path, str]:
    """What the generated files must contain: each ``student/NN_name.ipynb`` and ``book/student.md``."""
    chapters = read_chapters(root)
    files = {root / "student" / f"{name}.ipynb": render(student_notebook(nb, name)) for name, nb in chapters.items()}
    page = root / "book" / "student.md"
    files[page] = with_table(page.read_text(encoding="utf8"), table(chapters))
    return files


def problems(root: Path = ROOT) -> list[str]:
    """Generated files that are missing, stale or orphaned, and chapters that do not link their student edition."""
    found = []
    files = expected(root)
    for path, text in files.items():
        rel = path.relative_to(root)
        if not path.is_file():
            found.append(f"{rel} is missing")
        elif path.read_text(encoding="utf8") != text:
            found.append(f"{rel} is stale")
    found += [f"{p.relative_to(root)} has no chapter" for p in sorted((root / "student").glob("*.ipynb"))
              if p not in files]
    for name, nb in read_chapters(root).items():
        first = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
        if chapter_link_line(name) not in first.split("\n"):
            found.append(f"chapters/{name}.ipynb: its first markdown cell lacks the student-edition line "
                         f"(run `python tools/student_edition.py --link-chapters`)")
    return found


def link_chapters(root: Path = ROOT) -> list[Path]:
    """Append the student-edition line to the first markdown cell of every chapter that lacks it."""
    changed = []
    for path in sorted((root / "chapters").glob("*.ipynb")):
        raw = path.read_text(encoding="utf8")
        nb = nbformat.reads(raw, as_version=4)
        cell = next((c for c in nb.cells if c.cell_type == "markdown"), None)
        if cell is None or chapter_link_line(path.stem) in cell.source.split("\n"):
            continue
        cell.source = cell.source.rstrip() + "\n\n" + chapter_link_line(path.stem)
        if path.read_text(encoding="utf8") != raw:  # someone saved it meanwhile: do not overwrite their work
            raise StudentEditionError(f"{path.relative_to(root)} changed while being linked; run again")
        path.write_text(render(nb), encoding="utf8")
        changed.append(path)
    return changed


def write(root: Path = ROOT) -> list[Path]:
    """Write every generated file that differs from what it must be, remove orphaned student notebooks, and
    return the paths changed."""
    files, changed = expected(root), []
    (root / "student").mkdir(exist_ok=True)
    for path, text in files.items():
        if not path.is_file() or path.read_text(encoding="utf8") != text:
            path.write_text(text, encoding="utf8")
            changed.append(path)
    for orphan in sorted((root / "student").glob("*.ipynb")):
        if orphan not in files:
            orphan.unlink()
            changed.append(orphan)
    return changed


def main(argv: list[str] | None = None) -> int:
    """Command line: write the student edition (default), ``--check`` it, or ``--link-chapters`` then write."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="list missing or stale files, exit 1 if any; write nothing")
    ap.add_argument("--link-chapters", action="store_true", help="also add the student-edition line to chapters")
    args = ap.parse_args(argv)
    try:
        if args.check:
            found = problems()
            for line in found:
                print(line)
            print("student edition: " + (f"{len(found)} problem(s)" if found else "up to date"))
            return 1 if found else 0
        changed = (link_chapters() if args.link_chapters else []) + write()
    except StudentEditionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in changed:
        print(f"wrote {path.relative_to(ROOT)}" if path.exists() else f"removed {path.relative_to(ROOT)}")
    print(f"student edition: {len(changed)} file(s) changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
