"""The course's address has one source (``repository.url`` in _config.yml) and every page's setup cell is generated
from it (tools/course.py); when the install fails, the setup cell says so in one sentence."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("course", ROOT / "tools" / "course.py")
assert _spec is not None and _spec.loader is not None
course = importlib.util.module_from_spec(_spec)
sys.modules["course"] = course
_spec.loader.exec_module(course)

GITHUB = re.compile(r"https://github\.com/[\w.-]+/[\w.-]+")
COLAB = re.compile(r"https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/[\w.-]+")


def test_every_setup_cell_is_the_generated_one():
    assert not course.stale(), "run `python tools/course.py --sync`:\n" + "\n".join(course.stale())


def text_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "book").glob("*.md"))]
    files += course.pages() + sorted((ROOT / "student").glob("*.ipynb"))
    return files


def test_every_address_of_the_course_is_the_configured_one():
    repo, colab = course.repository(), course.colab_url("x").rsplit("/", 1)[0]
    wrong = []
    for path in text_files():
        text = path.read_text(encoding="utf8")
        wrong += [f"{path.relative_to(ROOT)}: {m}" for m in GITHUB.findall(text)
                  if m.startswith("https://github.com/") and m != repo and "cfglab" in m.lower()]
        wrong += [f"{path.relative_to(ROOT)}: {m}" for m in COLAB.findall(text) if m != colab]
    assert not wrong, f"addresses that are not _config.yml's {repo}:\n" + "\n".join(wrong)
    readme = (ROOT / "README.md").read_text(encoding="utf8")
    assert f"git+{repo}" in readme and f"git+{repo}" in (ROOT / "book" / "student.md").read_text(encoding="utf8")


def test_a_fork_changes_one_line(tmp_path):
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://github.com/someone/fork/\n  branch: dev\n")
    assert course.repository(tmp_path) == "https://github.com/someone/fork"
    assert course.colab_url("student/a.ipynb", tmp_path) == \
        "https://colab.research.google.com/github/someone/fork/blob/dev/student/a.ipynb"
    assert 'REPOSITORY = "https://github.com/someone/fork"' in course.setup_source(tmp_path)
    (tmp_path / "_config.yml").write_text("repository:\n  url: http://example.com/x\n")
    with pytest.raises(ValueError, match="repository.url must be"):
        course.repository(tmp_path)


HIDE_INSTALLED_CFGLAB = """\
import importlib.util, sys
sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in getattr(f, '__module__', '')]
sys.path_hooks[:] = [h for h in sys.path_hooks if 'editable' not in getattr(h, '__module__', '')]
sys.path_importer_cache.clear()
assert importlib.util.find_spec('cfglab') is None, 'cfglab is still importable'
"""


def test_a_failed_install_stops_with_one_sentence(tmp_path):
    """In a kernel, with cfglab not importable and an address pip cannot reach, the setup cell's output is one line
    (what failed and what to do), not a CalledProcessError traceback."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    bogus = (tmp_path / "no-such-repository").as_uri()            # a git+file address that fails at once, offline
    source = course.setup_source().replace(f'REPOSITORY = "{course.repository()}"', f'REPOSITORY = "{bogus}"')
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(HIDE_INSTALLED_CFGLAB + source)])
    (tmp_path / "content").mkdir()
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path / "content")}})
    with pytest.raises(CellExecutionError):
        client.execute()
    (err,) = [o for o in nb.cells[0].outputs if o.output_type == "error"]
    assert err.ename == "SetupError" and len(err.traceback) == 1, err.traceback
    line = err.traceback[0]
    assert line.startswith(f"Could not install cfglab from {bogus}") and "pip install git+" in line
    assert "Traceback" not in line and "CalledProcessError" not in line
