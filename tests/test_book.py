"""Checks of the built book in _build/html, run after `make book`.

A static pass over every HTML page checks that nothing is loaded from the network (scripts, stylesheets, fonts):
the book must work offline. A browser pass renders each toc page in Debian's headless Chromium and checks the
DOM after the scripts ran: MathJax typeset every formula, no raw `$$` is left, every image resolves to a file of
the site, and chapter pages carry the Colab launch link. Skipped when the book is not built or Chromium is absent.
"""

from __future__ import annotations

import functools
import json
import os
import re
import select
import subprocess
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML, installed with jupyter-book

ROOT = Path(__file__).resolve().parents[1]
# CFGLAB_BOOK_HTML points the tests at another build, e.g. a reduced book built with `--toc` and `--path-output`.
HTML = Path(os.environ.get("CFGLAB_BOOK_HTML", ROOT / "_build" / "html"))
CHROMIUM = Path("/usr/bin/chromium")
CHAPTER_DIR = "chapters/"

needs_build = pytest.mark.skipif(not (HTML / "index.html").is_file(),
                                 reason="book not built: run `make book` first (no _build/html/index.html)")
needs_chromium = pytest.mark.skipif(not CHROMIUM.is_file(),
                                    reason=f"no Chromium at {CHROMIUM}: apt-get install chromium chromium-driver")


def toc_pages() -> list[str]:
    """Document names of _toc.yml (root first), e.g. 'book/intro', 'chapters/01_langevin'."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf8"))
    pages = [str(Path(toc["root"]).with_suffix(""))]

    def walk(node: dict) -> None:  # a part, chapter or section: its own file, then its children in order
        if "file" in node:
            pages.append(str(Path(node["file"]).with_suffix("")))
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key) or []:
                walk(child)

    walk({key: value for key, value in toc.items() if key != "root"})
    return pages


PAGES = toc_pages()
ROOT_PAGE = PAGES[0]


class Tags(HTMLParser):
    """Every start tag with its attributes, the visible text outside code, scripts and typeset math, and any text
    still sitting in a Sphinx math element (class "math") outside MathJax's output, i.e. math left untypeset."""

    SKIP = {"script", "style", "pre", "code", "textarea", "mjx-container", "svg", "math"}
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.raw_math: list[str] = []
        self._stack: list[tuple[str, bool, bool]] = []  # (tag, inside a skipped element, inside raw math)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        if tag in self.VOID:
            return
        parent_skipped, parent_math = self._stack[-1][1:] if self._stack else (False, False)
        skipped = parent_skipped or tag in self.SKIP
        classes = a.get("class", "").split()
        in_math = not skipped and "eqno" not in classes and (parent_math or "math" in classes)  # eqno: "(2)"
        self._stack.append((tag, skipped, in_math))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._stack) - 1, -1, -1):  # tolerate implicitly closed tags
            if self._stack[i][0] == tag:
                del self._stack[i:]
                return

    def handle_data(self, data: str) -> None:
        skipped, in_math = self._stack[-1][1:] if self._stack else (False, False)
        if in_math and data.strip():
            self.raw_math.append(data.strip())
        if not skipped:
            self.text.append(data)


def parse(html: str) -> Tags:
    p = Tags()
    p.feed(html)
    p.close()
    return p


def html_file(page: str) -> Path:
    return HTML / f"{page}.html"


@functools.cache
def dom(page: str) -> str:
    """The DOM of a built page after its scripts ran, dumped by headless Chromium (no network, no profile)."""
    path = html_file(page)
    assert path.is_file(), f"{page} is in _toc.yml but {path} was not built"
    with tempfile.TemporaryDirectory() as profile:
        cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom",
               path.as_uri()]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0 and "</html>" in run.stdout, f"Chromium failed on {page}:\n{run.stderr[-2000:]}"
    return run.stdout


# -- static: nothing comes from the network -------------------------------------------------------------------

# <link rel=...> values that only name a related page and make the browser fetch nothing.
NAVIGATION_RELS = {"canonical", "next", "prev", "index", "search", "alternate", "author", "license", "help"}
REMOTE = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)


def remote_resources(html: str) -> list[str]:
    found = []
    for tag, a in parse(html).tags:
        if tag == "script" and REMOTE.match(a.get("src", "")):
            found.append(f"<script src={a['src']}>")
        elif tag == "link" and REMOTE.match(a.get("href", "")):
            rels = set(a.get("rel", "").lower().split())
            if not rels <= NAVIGATION_RELS:
                found.append(f"<link rel={a.get('rel')} href={a['href']}>")
        elif tag in ("img", "iframe", "source", "audio", "video") and REMOTE.match(a.get("src", "")):
            found.append(f"<{tag} src={a['src']}>")
    return found


@needs_build
def test_no_page_loads_remote_scripts_or_styles():
    pages = sorted(HTML.rglob("*.html"))
    assert pages
    bad = {str(p.relative_to(HTML)): r for p in pages if (r := remote_resources(p.read_text(encoding="utf8")))}
    assert not bad, f"pages loading from the network: {bad}"


@needs_build
def test_no_stylesheet_imports_remote_fonts_or_css():
    remote_url = re.compile(r"(url\(\s*[\"']?|@import\s+[\"'])(https?:)?//", re.IGNORECASE)
    bad = [str(p.relative_to(HTML)) for p in sorted(HTML.rglob("*.css"))
           if remote_url.search(p.read_text(encoding="utf8", errors="replace"))]
    assert not bad, f"stylesheets that fetch from the network: {bad}"


@needs_build
@pytest.mark.parametrize("page", PAGES)
def test_mathjax_and_widget_scripts_are_local(page):
    """Pages with math load the vendored MathJax, pages with widget state the vendored RequireJS and widget
    manager, all from files under _static/."""
    html = html_file(page).read_text(encoding="utf8")
    srcs = [a["src"] for tag, a in parse(html).tags if tag == "script" and "src" in a]
    needed = []
    if has_source_math(page):
        needed.append("mathjax/tex-svg-full.js")
    if "application/vnd.jupyter.widget-state+json" in html:
        needed += ["requirejs/require.js", "jupyter-widgets/embed-amd.js"]
    for name in needed:
        found = [s for s in srcs if urlsplit(s).path.endswith(name)]
        assert found, f"{page}: no <script> for {name}"
        target = (html_file(page).parent / urlsplit(found[0]).path).resolve()
        assert target.is_file() and target.is_relative_to((HTML / "_static").resolve()), f"{page}: {found[0]}"


def has_source_math(page: str) -> bool:
    return any("math" in a.get("class", "").split() for _, a in parse(html_file(page).read_text("utf8")).tags)


# -- browser: what a reader sees --------------------------------------------------------------------------------

@needs_build
@needs_chromium
@pytest.mark.parametrize("page", PAGES)
def test_math_is_typeset(page):
    if page != ROOT_PAGE and not page.startswith(CHAPTER_DIR) and not has_source_math(page):
        pytest.skip(f"{page} has no math")
    html = dom(page)
    p = parse(html)
    assert "<mjx-container" in html, f"{page}: no MathJax output in the rendered page"
    assert "mjx-merror" not in html and "data-mjx-error" not in html, f"{page}: MathJax reported a TeX error"
    assert not p.raw_math, f"{page}: math left untypeset: {p.raw_math[:3]}"
    text = "".join(p.text)
    assert "$$" not in text, f"{page}: raw $$ in the text: ...{text[max(text.find('$$') - 80, 0):][:160]}..."


@needs_build
@needs_chromium
@pytest.mark.parametrize("page", PAGES)
def test_images_resolve_to_files_of_the_site(page):
    page_dir = html_file(page).parent
    imgs = [a.get("src", "") for tag, a in parse(dom(page)).tags if tag == "img"]
    for src in imgs:
        if src.startswith("data:"):
            continue
        assert not REMOTE.match(src), f"{page}: remote image {src}"
        path = (page_dir / unquote(urlsplit(src).path)).resolve()
        assert path.is_relative_to(HTML.resolve()), f"{page}: image {src} points outside the site"
        assert path.is_file() and path.stat().st_size > 0, f"{page}: image {src} is missing ({path})"
        head = path.read_bytes()[:16]
        assert head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"<svg", b"<?xml")), \
            f"{page}: {src} is not an image"
    if page.startswith(CHAPTER_DIR):  # every chapter of the course plots something
        assert imgs, f"{page}: no figure on a chapter page"


@needs_build
@needs_chromium
@pytest.mark.parametrize("page", [p for p in PAGES if p.startswith(CHAPTER_DIR)])
def test_chapter_has_colab_launch_button(page):
    hrefs = [a.get("href", "") for tag, a in parse(dom(page)).tags if tag == "a"]
    colab = [h for h in hrefs if "colab.research.google.com" in h]
    assert colab, f"{page}: no Colab launch link"
    assert any(urlsplit(h).path.endswith(f"/{page}.ipynb") for h in colab), f"{page}: Colab link {colab}"


# -- interaction: the explorer's static view and the animations respond in the browser, offline ----------------------

class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: file descriptors
    3 and 4 of the browser, no port, no WebDriver), to press keys, click and read the DOM afterwards. The page runs
    with the network emulated offline, and every request it makes is recorded in :attr:`requests`."""

    def __init__(self, page: str, width: int | None = None) -> None:
        self._profile = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)
        cmd_r, self._cmd_w = os.pipe()   # we write commands, the browser reads them on its fd 3
        self._out_r, out_w = os.pipe()   # the browser writes replies and events on its fd 4
        hi = [os.dup(fd) for fd in (cmd_r, out_w)]   # copies >= 5 (fds 3 and 4 may be taken), so dup2 is safe
        while min(hi) < 5:
            hi = [os.dup(fd) for fd in hi]

        def wire() -> None:  # in the child, before exec: the pipes become its fds 3 and 4 (dup2 makes them inheritable)
            os.dup2(hi[0], 3)
            os.dup2(hi[1], 4)

        self._log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={self._profile.name}", "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, close_fds=False, preexec_fn=wire)
        for fd in (cmd_r, out_w, *hi):
            os.close(fd)
        self._buf, self._id, self.requests = b"", 0, []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for method, params in (("Network.enable", {}), ("Page.enable", {}), ("Runtime.enable", {}),
                               ("Emulation.setFocusEmulationEnabled", {"enabled": True}),
                               ("Network.emulateNetworkConditions", {"offline": True, "latency": 0,
                                                                      "downloadThroughput": -1,
                                                                      "uploadThroughput": -1})):
            self.call(method, params, session=True)
        if width is not None:  # a window this many CSS pixels wide (a laptop: 1280)
            self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": 900, "deviceScaleFactor": 1,
                                                             "mobile": False}, session=True)
        self.call("Page.navigate", {"url": html_file(page).as_uri()}, session=True)
        self.wait_for("document.readyState === 'complete'")

    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            ready, _, _ = select.select([self._out_r], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(self._out_r, 1 << 20) if ready else b""
            if not chunk:
                raise TimeoutError("no reply from Chromium (it exited or hung)")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, *, session: bool = False, timeout: float = 30) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self._cmd_w, data):]
        deadline = time.monotonic() + timeout
        while True:
            m = self._message(deadline)
            if m.get("method") == "Network.requestWillBeSent":
                self.requests.append(m["params"]["request"]["url"])
            if m.get("id") == self._id:
                assert "error" not in m, f"{method}: {m['error']}"
                return m["result"]

    def js(self, expression: str) -> object:
        """Evaluate a JavaScript expression in the page and return its (JSON) value."""
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                      session=True)
        assert "exceptionDetails" not in r, f"{expression[:80]}: {r['exceptionDetails']}"
        return r["result"].get("value")

    def wait_for(self, condition: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not self.js(f"!!({condition})"):
            assert time.monotonic() < deadline, f"timed out waiting for {condition}"
            time.sleep(0.1)

    def click(self, selector: str) -> None:
        """A real mouse click (pressed and released) at the centre of the element."""
        x, y = self.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
                       "e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect(); "
                       "return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
                      session=True)

    def press(self, selector: str, key: str, code: int) -> None:
        """Focus the element and press a key on it (e.g. "ArrowRight", 39)."""
        self.js(f"document.querySelector({json.dumps(selector)}).focus()")
        for kind in ("rawKeyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", {"type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code,
                                                 "nativeVirtualKeyCode": code}, session=True)

    def remote_requests(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(("file:", "data:", "about:", "blob:"))]

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
            self.proc.wait(timeout=10)
        except (AssertionError, TimeoutError, OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(timeout=30)
        for fd in (self._cmd_w, self._out_r):
            os.close(fd)
        self._log.close()
        self._profile.cleanup()


@pytest.fixture
def browser():
    opened: list[Browser] = []
    yield lambda page, width=None: opened.append(Browser(page, width)) or opened[-1]
    for b in opened:
        b.close()


def pages_containing(marker: str) -> list[str]:
    """Toc pages whose built HTML contains ``marker`` (none when the book is not built)."""
    return [p for p in PAGES if html_file(p).is_file() and marker in html_file(p).read_text(encoding="utf8")]


EXPLORER = 'class="cfglab-explorer"'     # the static view of cfglab.explore (cfglab/_views.py, frame_switcher)
ANIMATION = '<div class="animation">'     # matplotlib's JS animation (cfglab.animate)
WIDGET_VIEW = 'type="application/vnd.jupyter.widget-view+json"'
PLAYGROUND = "chapters/20_explorer"


@needs_build
@pytest.mark.skipif(PLAYGROUND not in PAGES, reason=f"{PLAYGROUND} is not in _toc.yml")
def test_playground_page_has_the_explorer_and_the_animation():
    html = html_file(PLAYGROUND).read_text(encoding="utf8")
    assert EXPLORER in html and ANIMATION in html, f"{PLAYGROUND}: no static explorer view or no animation"
    assert len(html.encode("utf8")) < 3e6, f"{PLAYGROUND} weighs {len(html.encode('utf8')) / 1e6:.1f} MB"


@needs_build
@needs_chromium
@pytest.mark.parametrize("page", pages_containing(EXPLORER))
def test_explorer_static_view_responds_offline(page, browser):
    b = browser(page)
    root = ".cfglab-explorer"
    state = (f"(() => {{ const r = document.querySelector('{root}'), img = r.querySelector('img'); return {{"
             "src: img.src, shown: img.complete && img.naturalWidth > 0, "
             "ranges: r.querySelectorAll('input[type=range]').length, "
             "buttons: r.querySelectorAll('button').length, value: r.querySelector('.cfglab-value')"
             ".textContent, caption: r.querySelector('.cfglab-caption').textContent, pressed: Array.from("
             "r.querySelectorAll('button')).map(x => x.getAttribute('aria-pressed'))}; })()")
    b.wait_for(f"document.querySelector('{root} img').complete")
    s0 = b.js(state)
    assert s0["ranges"] == 1 and s0["buttons"] >= 2 and s0["shown"], f"{page}: controls or frame missing: {s0}"
    assert s0["src"].startswith("data:image/png;base64,") and s0["pressed"][0] == "true"
    b.press(f"{root} input[type=range]", "ArrowRight", 39)   # the reader moves the slider one notch
    s1 = b.js(state)
    assert s1["src"] != s0["src"] and s1["value"] != s0["value"] and s1["caption"] != s0["caption"], \
        f"{page}: the slider did not swap the frame: {s0['value']!r} -> {s1['value']!r}"
    b.click(f"{root} button:nth-of-type(2)")                  # ... and picks another preset
    s2 = b.js(state)
    assert s2["src"] != s1["src"] and s2["pressed"][:2] == ["false", "true"] and s2["value"] == s1["value"], \
        f"{page}: the preset button did not swap the frame"
    assert s2["shown"], f"{page}: the swapped frame did not decode"
    assert not b.remote_requests(), f"{page}: requests to the network: {b.remote_requests()}"


@needs_build
@needs_chromium
@pytest.mark.parametrize("page", pages_containing(ANIMATION))
def test_animation_shows_frames_and_steps_offline(page, browser):
    b = browser(page)
    state = ("(() => { const a = document.querySelector('.animation'), img = a.querySelector('img'), "
             "s = a.querySelector('input[type=range]'); return {src: img.src || '', shown: img.complete && "
             "img.naturalWidth > 0, frames: Number(s.max) + 1, at: Number(s.value), buttons: "
             "a.querySelectorAll('.anim-buttons button').length, modes: a.querySelectorAll('input[type=radio]').length,"
             " icons: Array.from(a.querySelectorAll('.anim-buttons button')).map(x => x.textContent.trim())}; })()")
    b.wait_for("(() => { const i = document.querySelector('.animation img'); return i && i.src && i.complete; })()")
    s0 = b.js(state)
    assert s0["shown"] and s0["src"].startswith("data:image/png;base64,"), f"{page}: no animation frame: {s0}"
    assert 2 <= s0["frames"] <= 40 and s0["buttons"] == 9 and s0["modes"] == 3, f"{page}: controls: {s0}"
    assert all(s0["icons"]), f"{page}: a control button has no label: {s0['icons']}"
    b.click(".animation button[title='Pause']")
    b.click(".animation button[title='First frame']")
    first = b.js(state)
    b.click(".animation button[title='Next frame']")
    s1 = b.js(state)
    assert s1["at"] == first["at"] + 1 and s1["src"] != first["src"] and s1["shown"], f"{page}: Next frame did nothing"
    assert not b.remote_requests(), f"{page}: requests to the network: {b.remote_requests()}"


@needs_build
@needs_chromium
@pytest.mark.parametrize("page", pages_containing(WIDGET_VIEW))
def test_embedded_widgets_render_controls(page, browser):
    """Every ipywidgets view stored in a page whose model is in the page's embedded widget state is drawn by the
    vendored widget manager with controls, never as an empty box; a view whose model was closed before the notebook
    finished (e.g. a progress bar with leave=False) must take no space at all."""
    html = html_file(page).read_text(encoding="utf8")
    state = re.search(r'<script type="application/vnd.jupyter.widget-state\+json">(.*?)</script>', html, re.DOTALL)
    stored = set(json.loads(state.group(1))["state"]) if state else set()
    b = browser(page)
    b.wait_for("document.readyState === 'complete'")
    views = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # the manager renders asynchronously, after the page has loaded
        views = b.js(f"Array.from(document.querySelectorAll('script[{WIDGET_VIEW}]')).map(s => {{ "
                     "const v = s.previousElementSibling, drawn = !!v && v.classList.contains('widget-subarea'); "
                     "return {id: JSON.parse(s.textContent).model_id, drawn: drawn, "
                     "h: drawn ? v.getBoundingClientRect().height : 0, area: s.parentElement.getBoundingClientRect()"
                     ".height, controls: drawn ? v.querySelectorAll('input, button, select, .widget-label, .progress,"
                     " .widget-slider, .widget-html-content, img').length : 0}; })")
        if all(v["drawn"] for v in views if v["id"] in stored):
            break
        time.sleep(0.25)
    live = [v for v in views if v["id"] in stored]
    bad = [v for v in live if not (v["drawn"] and v["h"] > 0 and v["controls"])]
    assert not bad, f"{page}: {len(bad)} of {len(live)} stored widget views rendered empty: {bad[:3]}"
    ghosts = [v for v in views if v["id"] not in stored and v["area"] > 0]
    assert not ghosts, f"{page}: widget views without a stored model take space (an empty box): {ghosts[:3]}"
    assert not b.remote_requests(), f"{page}: requests to the network: {b.remote_requests()}"


# -- layout: a page reads on a laptop ---------------------------------------------------------------------------------

WINDOW = 1280  # CSS pixels: a laptop screen (book/_vendor/cfglab.css fits 110 characters of code there)


@needs_build
@needs_chromium
@pytest.mark.parametrize("page", PAGES)
def test_no_code_or_output_block_scrolls_sideways_in_a_1280_pixel_window(page, browser):
    b = browser(page, WINDOW)
    b.wait_for("document.readyState === 'complete'")
    time.sleep(0.5)  # MathJax and the widget manager lay out asynchronously
    wide = b.js("Array.from(document.querySelectorAll('article pre, article div.cell_output, "
                "article .table-wrapper, article div.output')).filter(e => e.scrollWidth > e.clientWidth + 2)"
                ".map(e => ({tag: e.tagName + '.' + e.className, scroll: e.scrollWidth, client: e.clientWidth, "
                "text: e.textContent.trim().slice(0, 60)}))")
    assert not wide, f"{page}: {len(wide)} blocks scroll sideways at {WINDOW} px: {wide[:4]}"


@needs_build
@pytest.mark.parametrize("page", [p for p in PAGES if p.startswith(CHAPTER_DIR)])
def test_equations_are_numbered_per_page(page):
    numbers = re.findall(r'<span class="eqno">\((\d+)\)', html_file(page).read_text(encoding="utf8"))
    if not numbers:
        pytest.skip(f"{page} has no numbered equation")
    assert numbers[0] == "1", f"{page}: the first equation is ({numbers[0]}), numbering runs across pages"
