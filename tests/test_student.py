"""The student edition (tools/student_edition.py, student/, book/student.md).

Fast tests: the generated files are up to date and cover every chapter, the transformation on small synthetic
notebooks, every checker's answer to a stub, and the setup cell from student/ and from a Colab-like folder.
Slow tests (marker ``student``, ``make test-student``): each student notebook runs in a kernel to the end as it is,
every stub unfinished, where every check says "not written yet" with its hint and hands the cells below the
course's reference (so nothing after it fails). With every solution in, a student notebook is its chapter cell for
cell (a fast test), and the chapters run with every check passing in strict mode in nbval and the book build.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("student_edition", ROOT / "tools" / "student_edition.py")
assert _spec is not None and _spec.loader is not None
se = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(se)

CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
NAMES = [p.stem for p in CHAPTERS]
CACHE = os.environ.get("CFGLAB_CACHE")  # the environment's model cache, read before conftest isolates each test


# -- the committed files --------------------------------------------------------------------------------------------

def test_student_edition_is_up_to_date(capsys):
    code = se.main(["--check"])
    out = capsys.readouterr().out
    assert code == 0, f"run `make student`:\n{out}"
    assert CHAPTERS and sorted(p.stem for p in (ROOT / "student").glob("*.ipynb")) == NAMES


def test_book_page_lists_every_student_notebook():
    page = (ROOT / "book" / "student.md").read_text(encoding="utf8")
    for path in sorted((ROOT / "student").glob("*.ipynb")):
        assert f"{{download}}`{path.name} <../student/{path.name}>`" in page, f"book/student.md lacks {path.name}"
        assert f"({se.colab_url(f'student/{path.name}')})" in page, f"book/student.md: no Colab link to {path.name}"
    assert "file: book/student" in (ROOT / "_toc.yml").read_text(encoding="utf8")


@pytest.mark.parametrize("name", NAMES)
def test_chapter_links_its_student_edition(name):
    chapter = nbformat.read(ROOT / "chapters" / f"{name}.ipynb", as_version=4)
    first = next(c for c in chapter.cells if c.cell_type == "markdown")
    assert se.chapter_link_line(name) in first.source.split("\n")


@pytest.mark.parametrize("name", NAMES)
def test_student_notebook_holds_stubs_where_the_chapter_holds_solutions(name):
    chapter = nbformat.read(ROOT / "chapters" / f"{name}.ipynb", as_version=4)
    student = nbformat.read(ROOT / "student" / f"{name}.ipynb", as_version=4)
    solutions = {c.id: c.source for c in chapter.cells if "solution" in c.metadata.get("tags", [])}
    stubs = {c.id: c.source for c in student.cells if "stub" in c.metadata.get("tags", [])}
    assert stubs.keys() == solutions.keys()
    for cell_id, source in stubs.items():
        want = {f.name: f for f in ast.parse(solutions[cell_id]).body if isinstance(f, ast.FunctionDef)}
        for fn in ast.parse(source).body:
            if isinstance(fn, (ast.Import, ast.ImportFrom)):   # a solution cell may import what it uses
                continue
            assert isinstance(fn, ast.FunctionDef) and ast.dump(fn.args) == ast.dump(want.pop(fn.name).args)
            raise_ = fn.body[-1]
            assert isinstance(raise_, ast.Raise) and ast.unparse(raise_.exc).startswith("NotImplementedError(")
        assert not want, f"functions without a stub: {list(want)}"
    text = nbformat.writes(student)
    assert "solution-start" not in text and "solution-end" not in text and '"solution"' not in text
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in student.cells
               if c.cell_type == "code")
    assert student.cells[0].source.startswith(f"{chapter_title(chapter)}\n\n**Student edition.**")


def chapter_title(nb: nbformat.NotebookNode) -> str:
    return nb.cells[0].source.split("\n", 1)[0]


# -- the transformation, on small synthetic notebooks ---------------------------------------------------------------

SOLUTION = '''import math

# Hint: scale the noise by "sqrt(2 h)",
#   not by h.
def step(x: float, h: float = 0.5, *, z=None) -> float:
    """One step."""
    return x + math.sqrt(2 * h) * z


# an ordinary comment
# Hint: call step twice.
def two_steps(x, h, z):
    return step(step(x, h, z=z), h, z=z)
'''


def toy_chapter(solution: str = SOLUTION) -> nbformat.NotebookNode:
    """A chapter in the course's exercise format: title, setup, exercise + solution start, solution, end, check."""
    cells = [new_markdown_cell("# 99. Toy\n\nWhat you will learn.\n\n" + se.chapter_link_line("99_toy")),
             new_code_cell("import math", metadata={"tags": ["setup"]}),
             new_markdown_cell("```{exercise} Step\n:label: ex-step\nWrite `step`.\n```\n\n"
                               "````{solution-start} ex-step\n:class: dropdown\n````"),
             new_code_cell(solution, metadata={"tags": ["solution"]}),
             new_markdown_cell(":::{solution-end}\n:::"),
             new_code_cell("assert check(step)", metadata={"tags": ["check"]})]
    cells[1].outputs = [nbformat.v4.new_output("stream", text="old output")]
    cells[1].execution_count = 3
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}})


def test_stub_keeps_signature_and_docstring_and_raises_the_hint():
    stub, names = se.stub_source(SOLUTION, "here")
    assert names == ["step", "two_steps"]
    solved, stubbed = {}, {}
    exec(SOLUTION, solved)
    exec(stub, stubbed)
    assert stubbed["math"] is math  # imports are kept
    for name in names:
        assert inspect.signature(stubbed[name]) == inspect.signature(solved[name])
    assert stubbed["step"].__doc__ == "One step."
    with pytest.raises(NotImplementedError) as err:
        stubbed["step"](1.0, z=0.0)
    assert str(err.value) == 'scale the noise by "sqrt(2 h)", not by h.'
    with pytest.raises(NotImplementedError, match="^call step twice.$"):
        stubbed["two_steps"](1.0, 0.1, 0.0)
    assert "ordinary comment" not in stub and "return" not in stub


@pytest.mark.parametrize("source", [
    "def f(x):\n    # Hint: in the\n    #   body.\n    return x\n",
    'def f(x):\n    """Doc."""\n    # Hint: in the body.\n    return x\n',
])
def test_a_hint_may_open_the_function_body(source):
    stub, _ = se.stub_source(source, "here")
    namespace: dict = {}
    exec(stub, namespace)
    with pytest.raises(NotImplementedError, match="^in the body.$"):
        namespace["f"](0)


def test_a_long_hint_is_wrapped_into_lines_of_at_most_110_characters():
    hint = "use torch.softmax(logits, -1) and then " + "a rather long explanation " * 12 + "at the end."
    stub, _ = se.stub_source(f"# Hint: {hint}\ndef f(logits):\n    return logits\n", "here")
    assert max(len(line) for line in stub.splitlines()) <= 110 and len(stub.splitlines()) > 3
    assert "torch.softmax(logits, -1)" in stub  # no line break inside brackets
    namespace: dict = {}
    exec(stub, namespace)
    with pytest.raises(NotImplementedError) as err:
        namespace["f"](0)
    assert str(err.value) == " ".join(hint.split())


@pytest.mark.parametrize("source, message", [
    ("x = 1\n\n# Hint: h\ndef f():\n    return x\n", "line 1 is a Assign statement"),
    ("# Hint: h\ndef f():\n    return 1\nprint(f())\n", "line 4 is a Expr statement"),
    ("def f(x):\n    return x\n", "function 'f' (line 1) has no hint"),
    ("# Hint: h\n\ndef f(x):\n    return x\n", "function 'f' (line 3) has no hint"),
    ("# Hint: h\ndef f(x):\n    return x\n\ndef g(x):\n    return x\n", "function 'g' (line 5) has no hint"),
    ("import math\n", "defines no function"),
    ("# Hint: h\ndef f(x:\n    return x\n", "not valid Python"),
])
def test_a_bad_solution_cell_is_refused_naming_chapter_and_cell(source, message):
    chapter = toy_chapter(source)
    with pytest.raises(se.StudentEditionError, match="^chapters/99_toy.ipynb, cell 3 ") as err:
        se.student_notebook(chapter, "99_toy")
    assert message in str(err.value)


def test_a_solution_directive_is_refused():
    chapter = toy_chapter()
    chapter.cells[2].source += "\n\n```{solution} ex-step\nThe answer.\n```"
    with pytest.raises(se.StudentEditionError, match="cell 2 .*solution-start"):
        se.student_notebook(chapter, "99_toy")


def test_student_notebook_of_a_toy_chapter():
    chapter = toy_chapter()
    before = nbformat.writes(chapter)
    student = se.student_notebook(chapter, "99_toy")
    assert nbformat.writes(chapter) == before  # the chapter is not modified
    kinds = [(c.cell_type, c.metadata.get("tags", [])) for c in student.cells]
    assert kinds == [("markdown", []), ("code", ["setup"]), ("markdown", []), ("code", ["stub"]), ("markdown", []),
                     ("code", ["check"])]  # solution-end cell dropped, "your turn" cell added after the stub
    title, note = student.cells[0].source.split("\n\n")[:2]
    assert title == "# 99. Toy" and note == se.student_note("99_toy")
    assert se.chapter_link_line("99_toy") not in student.cells[0].source
    assert student.cells[2].source == "```{exercise} Step\n:label: ex-step\nWrite `step`.\n```"
    assert student.cells[3].id == chapter.cells[3].id and student.cells[4].id == f"{chapter.cells[3].id}-todo"
    assert "`step` and `two_steps`" in student.cells[4].source
    assert "raise NotImplementedError" in student.cells[4].source
    assert student.cells[1].outputs == [] and student.cells[1].execution_count is None
    assert se.render(student) == se.render(se.student_notebook(chapter, "99_toy"))  # deterministic


def test_check_write_and_link_on_a_scratch_tree(tmp_path):
    (tmp_path / "chapters").mkdir()
    (tmp_path / "book").mkdir()
    chapter = toy_chapter()
    chapter.cells[0].source = "# 99. Toy\n\nWhat you will learn."  # not linked yet
    nbformat.write(chapter, tmp_path / "chapters" / "99_toy.ipynb")
    (tmp_path / "book" / "student.md").write_text(f"# S\n\n{se.TABLE_BEGIN}\n{se.TABLE_END}\n", encoding="utf8")
    found = se.problems(tmp_path)
    assert "student/99_toy.ipynb is missing" in found and "book/student.md is stale" in found
    assert any("chapters/99_toy.ipynb: its first markdown cell lacks" in p for p in found)
    assert se.link_chapters(tmp_path) == [tmp_path / "chapters" / "99_toy.ipynb"]
    assert se.link_chapters(tmp_path) == []  # idempotent
    orphan = tmp_path / "student" / "98_gone.ipynb"
    orphan.parent.mkdir()
    orphan.write_text("{}", encoding="utf8")
    assert "student/98_gone.ipynb has no chapter" in se.problems(tmp_path)
    assert len(se.write(tmp_path)) == 3 and not orphan.exists()  # notebook, page, orphan removed
    assert se.problems(tmp_path) == [] and se.write(tmp_path) == []
    assert "| 99. Toy | {download}`99_toy.ipynb <../student/99_toy.ipynb>` |" in \
        (tmp_path / "book" / "student.md").read_text(encoding="utf8")
    chapter = nbformat.read(tmp_path / "chapters" / "99_toy.ipynb", as_version=4)
    chapter.cells[3].source = chapter.cells[3].source.replace("call step twice", "call step two times")
    nbformat.write(chapter, tmp_path / "chapters" / "99_toy.ipynb")
    assert se.problems(tmp_path) == ["student/99_toy.ipynb is stale"]


# -- every checker answers a stub in words --------------------------------------------------------------------------

def test_every_checker_says_not_written_yet_with_the_hint(capsys):
    import cfglab.exercises as ex

    def stub(*args, **kwargs):
        raise NotImplementedError("the hint of this stub")

    names = [n for n in ex.__all__ if n.startswith("check_") and n != "check_function"]
    used = {m for path in CHAPTERS for m in re.findall(r"\bcheck_\w+", path.read_text(encoding="utf8"))}
    assert used and used <= set(names), f"checks used by chapters but not exported: {used - set(names)}"
    for name in names:
        verdict = getattr(ex, name)(stub)
        assert not verdict and "not written yet" in verdict.message and verdict.message.endswith(
            "Hint: the hint of this stub"), f"{name}: {verdict.message}"
    assert "Traceback" not in capsys.readouterr().out


# -- the setup cell, from student/ of a checkout and from a folder without cfglab (Colab) -----------------------------

HIDE_INSTALLED_CFGLAB = """
import importlib.util, sys
sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in getattr(f, '__module__', '')]
sys.path_hooks[:] = [h for h in sys.path_hooks if 'editable' not in getattr(h, '__module__', '')]
sys.path_importer_cache.clear()
assert importlib.util.find_spec('cfglab') is None, 'cfglab is still importable'
"""


def setup_source() -> str:
    nb = nbformat.read(ROOT / "student" / f"{NAMES[0]}.ipynb", as_version=4)
    return next(c.source for c in nb.cells if "setup" in c.metadata.get("tags", []))


def run_python(code: str, cwd: Path) -> str:
    run = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def test_setup_cell_uses_the_checkout_from_student_folder():
    out = run_python(HIDE_INSTALLED_CFGLAB + setup_source() + "\nprint(cl.__file__)", ROOT / "student")
    assert Path(out.strip().splitlines()[-1]) == ROOT / "cfglab" / "__init__.py"


def test_setup_cell_installs_from_github_elsewhere(tmp_path):
    repo = se.course.repository()
    fake_pip = f"""
import subprocess, types
calls = []
def fake_run(cmd, **kwargs):  # stands for pip: record the command, then make the checkout importable
    calls.append(cmd)
    sys.path.insert(0, {str(ROOT)!r})
    return types.SimpleNamespace(returncode=0, stdout="", stderr="")
subprocess.run = fake_run
"""
    check = (f"\nassert calls == [[sys.executable, '-m', 'pip', 'install', '-q', 'git+{repo}']], calls\n"
             "print('ok')")
    (tmp_path / "content").mkdir()
    out = run_python(HIDE_INSTALLED_CFGLAB + fake_pip + setup_source() + check, tmp_path / "content")
    assert out.strip().endswith("ok")


# -- execution in a kernel (slow: `make test-student`) --------------------------------------------------------------

def execute(nb: nbformat.NotebookNode) -> tuple[int, Exception] | None:
    """Run ``nb`` cell by cell in a fresh python3 kernel started in student/; return (index, error) of the first
    failing cell, or None when every cell ran."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT / "student")}})
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            try:
                client.execute_cell(cell, index)
            except CellExecutionError as err:
                return index, err
    return None


def printed(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


@pytest.fixture
def kernel_env(monkeypatch):
    """The kernel inherits this process's environment: one thread, and the environment's model cache."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    if CACHE is None:
        monkeypatch.delenv("CFGLAB_CACHE", raising=False)
    else:
        monkeypatch.setenv("CFGLAB_CACHE", CACHE)
    return monkeypatch


@pytest.mark.student
@pytest.mark.parametrize("name", NAMES)
def test_student_notebook_runs_to_the_end_with_every_stub_unfinished(name, kernel_env):
    """A student who has written nothing yet still runs the whole notebook: each check says "not written yet" with
    the stub's hint, once, and the cells below use the course's reference."""
    kernel_env.delenv("CFGLAB_EXERCISES", raising=False)   # a learner's kernel: checks fall back, never raise
    nb = nbformat.read(ROOT / "student" / f"{name}.ipynb", as_version=4)
    failed = execute(nb)
    assert failed is None, f"cell {failed and failed[0]} failed with every stub unfinished: {failed and failed[1]}"
    stubs = {c.id: c for c in nb.cells if "stub" in c.metadata.get("tags", [])}
    checks = [c for c in nb.cells if "check" in c.metadata.get("tags", [])]
    assert len(checks) >= len(stubs) >= 1 or not stubs
    for cell in checks:
        out = printed(cell)
        once = cell.source.count(".or_reference()")          # each check of the cell says it, and says it once
        assert out.count("is not written yet") == once >= 1, f"{name}: a check cell printed {out!r}"
        assert "Hint: " in out and "the cells below use the course's reference" in out, out
        assert "AssertionError" not in out and "Traceback" not in out


@pytest.mark.parametrize("name", NAMES)
def test_with_every_solution_in_a_student_notebook_is_its_chapter(name):
    """A student who writes every solution runs exactly the chapter's code, cell for cell: the chapter itself is
    executed, every check passing in strict mode, by `make test-notebooks` (nbval) and by the book build, so this
    structural identity is what 'runs to the end with all solutions in' needs (without a third execution)."""
    chapter = nbformat.read(ROOT / "chapters" / f"{name}.ipynb", as_version=4)
    solutions = {c.id: c.source for c in chapter.cells if "solution" in c.metadata.get("tags", [])}
    student = nbformat.read(ROOT / "student" / f"{name}.ipynb", as_version=4)
    filled = [solutions[c.id] if "stub" in c.metadata.get("tags", []) else c.source
              for c in student.cells if c.cell_type == "code"]
    assert filled == [c.source for c in chapter.cells if c.cell_type == "code"]
    checks = [c.source for c in chapter.cells if "check" in c.metadata.get("tags", [])]
    assert all(".or_reference()" in src for src in checks), f"{name}: a check cell that does not hand on"
