"""A solution cell made into a stub: each top-level function keeps its signature and docstring, and its body
becomes ``raise NotImplementedError(hint)``, the hint being the ``# Hint: ...`` comment block directly above its
``def``. Used by ``tools/student_edition.py``, which makes the student edition of the chapters."""

from __future__ import annotations

import ast
import copy
import json

HINT = "# Hint:"


class StudentEditionError(ValueError):
    """A chapter that cannot be turned into a student notebook (the message names the chapter and the cell)."""


def hint_above(lines: list[str], line: int, indent: str = "") -> str | None:
    """The hint written directly above source line ``line`` (1-based): the ``# Hint:`` comment line nearest above
    it in the unbroken block of comments indented by ``indent`` that ends there, joined with the comment lines that
    follow it."""
    block: list[str] = []
    i = line - 2
    while i >= 0 and lines[i].startswith(indent + "#"):
        block.insert(0, lines[i][len(indent):])
        i -= 1
    starts = [k for k, text in enumerate(block) if text.startswith(HINT)]
    if not starts:
        return None
    first, rest = block[starts[-1]], block[starts[-1] + 1:]
    hint = " ".join([first[len(HINT):]] + [text.lstrip("#") for text in rest])
    return " ".join(hint.split()) or None


def function_hint(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """The hint of a function: a ``# Hint:`` comment block directly above its ``def`` (or its decorators), else one
    opening its body (above the first statement after the docstring, if any)."""
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    body = node.body[1:] if ast.get_docstring(node, clean=False) is not None and len(node.body) > 1 else node.body
    return hint_above(lines, first) or hint_above(lines, body[0].lineno, " " * body[0].col_offset)


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a double-quoted literal: JSON's escapes are Python's


def _raise_lines(hint: str, indent: str, width: int = 110) -> list[str]:
    """``raise NotImplementedError("hint")``, wrapped into lines of at most ``width`` characters."""
    if len(one := f"{indent}raise NotImplementedError({_quote(hint)})") <= width:
        return [one]
    words: list[str] = []
    depth = 0  # break lines only between words outside brackets: "t[:, None]" stays whole
    for word in hint.split(" "):
        words.append(f"{words.pop()} {word}" if depth > 0 else word)
        depth = max(0, depth + sum(word.count(c) for c in "([{") - sum(word.count(c) for c in ")]}"))
    chunks = [""]
    for word in words:
        fits = len(chunks[-1]) + 1 + len(word) <= width - len(indent) - 8
        chunks[-1:] = [f"{chunks[-1]} {word}".lstrip()] if fits or not chunks[-1] else [chunks[-1], word]
    parts = [_quote(c + " ") for c in chunks[:-1]] + [_quote(chunks[-1]) + ")"]  # implicit concatenation
    return [f"{indent}raise NotImplementedError("] + [f"{indent}    {part}" for part in parts]


def _stub(node: ast.FunctionDef | ast.AsyncFunctionDef, hint: str) -> str:
    head = copy.copy(node)
    has_doc = ast.get_docstring(node, clean=False) is not None
    head.body = ([node.body[0]] if has_doc else []) + [ast.Pass()]
    lines = ast.unparse(head).splitlines()  # signature (decorators, defaults, annotations), docstring, "pass"
    return "\n".join(lines[:-1] + _raise_lines(hint, indent=lines[-1][: len(lines[-1]) - len("pass")]))


def stub_source(source: str, where: str) -> tuple[str, list[str]]:
    """The stub of a solution cell's ``source`` and the names of its functions. Imports are kept; every top-level
    function keeps its signature and docstring and raises ``NotImplementedError(hint)``. Raises
    :class:`StudentEditionError` (naming ``where``) for anything else in the cell or a function without a hint."""
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise StudentEditionError(f"{where}: the solution cell is not valid Python ({err.msg}, line {err.lineno})"
                                  ) from None
    lines, parts, names = source.splitlines(), [], []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            parts.append(ast.unparse(node))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            hint = function_hint(lines, node)
            if hint is None:
                raise StudentEditionError(f"{where}: function {node.name!r} (line {node.lineno}) has no hint: write "
                                          f"a '{HINT} ...' comment line directly above its def")
            parts.append(_stub(node, hint))
            names.append(node.name)
        else:
            raise StudentEditionError(f"{where}: line {node.lineno} is a {type(node).__name__} statement, but a "
                                      f"solution cell may only hold imports and top-level functions")
    if not names:
        raise StudentEditionError(f"{where}: the solution cell defines no function")
    return "\n\n\n".join(parts), names
