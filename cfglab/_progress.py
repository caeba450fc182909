"""Progress bars that leave one line of text behind, not an empty widget box.

In a terminal a bar is tqdm's, written to stderr and erased when done. In a notebook (tqdm.auto picks the widget
bar) the bar is displayed with a display id and, once finished, that display is replaced by a one-line summary
("training MLP: 2000 steps in 12.3 s"). An executed notebook therefore stores a line of text where the bar was:
a static page (the HTML book) shows that line instead of the empty box that a closed widget leaves.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _notebook_bar(cls: type) -> bool:
    try:
        from tqdm.notebook import tqdm as notebook_tqdm
    except ImportError:  # no ipywidgets
        return False
    return issubclass(cls, notebook_tqdm)


@contextmanager
def bar(total: int, desc: str, *, initial: int = 0, disable: bool = False,
        summary: str | None = None) -> Iterator[Any]:
    """A tqdm bar for ``total`` steps; on exit it is closed and, in a notebook, replaced by ``summary`` (default
    "<desc>: <n> steps in <s> s"). Yields the bar (``bar.update``, ``bar.set_postfix``); the summary may be
    changed while it runs through ``bar.summary``."""
    from tqdm.auto import tqdm

    start = time.monotonic()
    if disable or not _notebook_bar(tqdm):
        b = tqdm(total=total, initial=initial, desc=desc, leave=False, disable=disable)
        try:
            yield b
        finally:
            b.close()
        return
    from IPython.display import display

    b = tqdm(total=total, initial=initial, desc=desc, leave=False, display=False)
    b.summary = summary
    handle = display(b.container, display_id=True)
    try:
        yield b
    finally:
        done = b.n
        b.close()
        text = b.summary or f"{desc}: {done} of {total} steps in {time.monotonic() - start:.1f} s"
        if handle is not None:
            handle.update({"text/plain": text}, raw=True)
