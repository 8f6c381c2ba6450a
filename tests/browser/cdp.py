"""Browser-test helpers: a local HTTP server, and Debian's headless Chromium driven through the
Chrome DevTools Protocol (CDP) over a websocket (the ``websocket-client`` package).

No Playwright or Selenium: their browser downloads cannot work here, and CDP is all we need.
Typical use in a test::

    from . import cdp

    def test_page(tmp_path):
        chromium = cdp.require_chromium()              # skip, or fail under CI=true
        with cdp.serve_directory(BUILD) as base, cdp.Chromium(chromium) as browser:
            page = browser.new_page()
            page.goto(base + "/book/intro.html")
            page.wait_for("document.querySelector('.widget-slider') !== null")
            page.focus(".widget-slider .noUi-handle")
            page.press_key("ArrowRight")
            assert cdp.external_requests(page.requested_urls()) == []

A chapter run live in JupyterLab (see test_live_jupyter.py)::

    with cdp.jupyter_lab([NOTEBOOK], tmp_path) as lab, cdp.Chromium(chromium) as browser:
        page = browser.new_page()
        cdp.lab_open_notebook(page, lab, NOTEBOOK.name)
        cdp.lab_run_all_cells(page)
        page.wait_for("...the kernel's output is there...", timeout=120)
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

try:
    import websocket  # websocket-client
except ImportError:  # pragma: no cover - reported by require_chromium()
    websocket = None

#: Repository root (tests/browser/cdp.py -> ../..).
ROOT = Path(__file__).resolve().parents[2]
#: Where README command 1 (scripts/setup_and_build.sh) puts the built book.
BUILD_HTML = ROOT / "_build" / "html"

#: Flags for running as root in a container with no network but loopback. Without the
#: background-networking flags Chromium keeps trying to reach Google's hosts.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
    "--window-size=1280,1600",
    # Belt and braces: no host but this machine resolves, so nothing can leave it. Requests
    # to other hosts are still *attempted*, so CDP sees them and the tests can fail on them.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
]

DEFAULT_TIMEOUT = 30.0


# --- skip rules ----------------------------------------------------------------------------

def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str):
    """Skip the test on a developer machine; under CI=true a missing prerequisite is a failure."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def require_chromium() -> str:
    """Path of the Chromium binary, or skip (fail under CI=true) when there is none."""
    path = find_chromium()
    if path is None:
        skip_or_fail("chromium is not installed (apt-get update && apt-get install -y chromium)")
    if websocket is None:
        skip_or_fail("websocket-client is not installed (pip install -r requirements.txt)")
    return path


def require_build() -> Path:
    """The built book, or skip (fail under CI=true) when it has not been built."""
    if not (BUILD_HTML / "index.html").is_file():
        skip_or_fail(f"{BUILD_HTML.relative_to(ROOT)} does not exist: build the book first with "
                     "README command 1: bash scripts/setup_and_build.sh")
    return BUILD_HTML


# --- a static file server on loopback ----------------------------------------------------------

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve_directory(root: Path):
    """Serve ``root`` on http://127.0.0.1:<free port>; yields the base URL (no trailing slash)."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, timeout: float = 60.0, process: subprocess.Popen | None = None):
    """Poll ``url`` until it answers (any HTTP status); fail early if ``process`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout} s")
            time.sleep(0.2)


# --- requests that leave the machine -------------------------------------------------------------

LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def is_local_url(url: str) -> bool:
    """True for data:, blob:, about: URLs and for http(s)/ws(s) URLs to this machine."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    if parts.scheme in ("http", "https", "ws", "wss"):
        return (parts.hostname or "") in LOCAL_HOSTS
    return False


def external_requests(urls) -> list[str]:
    """The URLs among ``urls`` that would leave this machine."""
    return sorted({u for u in urls if not is_local_url(u)})


# --- Chromium and CDP ---------------------------------------------------------------------------

class CDPError(RuntimeError):
    pass


class Chromium:
    """A headless Chromium with a fresh profile and remote debugging on a free loopback port."""

    def __init__(self, executable: str | None = None, extra_flags=()):
        self.executable = executable or require_chromium()
        self.extra_flags = list(extra_flags)
        self.process: subprocess.Popen | None = None
        self.profile: str | None = None
        self.port: int | None = None
        self.pages: list[Page] = []

    def start(self) -> "Chromium":
        self.profile = tempfile.mkdtemp(prefix="bounce-chromium-")
        log = open(os.path.join(self.profile, "chromium.log"), "wb")
        cmd = [self.executable, *CHROMIUM_FLAGS, *self.extra_flags,
               f"--user-data-dir={self.profile}",
               "--remote-debugging-address=127.0.0.1",
               "--remote-debugging-port=0",   # Chromium picks a port and writes it to a file
               "about:blank"]
        self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + DEFAULT_TIMEOUT
        while not (port_file.is_file() and port_file.read_text().strip()):
            if self.process.poll() is not None:
                raise CDPError(f"chromium exited with {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise CDPError(f"chromium did not open its debugging port:\n{self.log_tail()}")
            time.sleep(0.05)
        self.port = int(port_file.read_text().split()[0])
        return self

    def log_tail(self, n: int = 30) -> str:
        try:
            lines = Path(self.profile, "chromium.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def new_page(self) -> "Page":
        """Open a new tab and connect to it."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank",
                                     method="PUT")
        with urllib.request.urlopen(req, timeout=DEFAULT_TIMEOUT) as resp:
            target = json.load(resp)
        page = Page(target["webSocketDebuggerUrl"])
        self.pages.append(page)
        return page

    def close(self):
        for page in self.pages:
            page.close()
        self.pages.clear()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.profile:
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Chromium":
        return self.start()

    def __exit__(self, *exc):
        self.close()


class Page:
    """One tab. ``send`` calls a CDP method; every event received is kept in ``events``."""

    def __init__(self, ws_url: str):
        self.ws = websocket.create_connection(ws_url, timeout=DEFAULT_TIMEOUT,
                                              suppress_origin=True)
        self._id = 0
        self.events: list[dict] = []
        for domain in ("Page", "Network", "Runtime"):
            self.send(f"{domain}.enable")

    # transport
    def _receive(self, timeout: float) -> dict | None:
        self.ws.settimeout(max(timeout, 0.01))
        try:
            message = json.loads(self.ws.recv())
        except websocket.WebSocketTimeoutException:
            return None
        if "method" in message:
            self.events.append(message)
        return message

    def send(self, method: str, timeout: float = DEFAULT_TIMEOUT, **params) -> dict:
        self._id += 1
        call_id = self._id
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer to {method} within {timeout} s")
            message = self._receive(left)
            if message is not None and message.get("id") == call_id:
                if "error" in message:
                    raise CDPError(f"{method}: {message['error']}")
                return message.get("result", {})

    def pump(self, seconds: float):
        """Keep receiving events for ``seconds`` (e.g. to catch late requests)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._receive(left)

    def open_requests(self) -> set:
        """Ids of the page's network requests (not ``data:``/``blob:``) with no
        ``loadingFinished`` or ``loadingFailed`` event yet."""
        sent, done = set(), set()
        for e in self.events:
            m = e["method"]
            if m == "Network.requestWillBeSent":
                if not e["params"]["request"]["url"].startswith(("data:", "blob:")):
                    sent.add(e["params"]["requestId"])
            elif m in ("Network.loadingFinished", "Network.loadingFailed"):
                done.add(e["params"]["requestId"])
        return sent - done

    def settle(self, quiet: float = 0.5, timeout: float = 10.0):
        """Receive events until the network is idle: no request open (:meth:`open_requests`)
        and no event at all for ``quiet`` seconds (Puppeteer's ``networkidle0`` rule: 500 ms),
        so late requests (fonts, images) show up; at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while (now := time.monotonic()) < deadline:
            if now - last >= quiet and not self.open_requests():
                return
            if self._receive(min(0.05, deadline - now)) is not None:
                last = time.monotonic()

    def wait_event(self, method: str, timeout: float = DEFAULT_TIMEOUT, since: int = 0) -> dict:
        """Wait for event ``method`` (looking at events from index ``since`` on)."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events[since:]:
                if event["method"] == method:
                    return event
            since = len(self.events)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {method} event within {timeout} s")
            self._receive(left)

    # navigation and scripting
    def goto(self, url: str, timeout: float = DEFAULT_TIMEOUT):
        """Load ``url`` and wait for its load event."""
        mark = len(self.events)
        result = self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise CDPError(f"cannot load {url}: {result['errorText']}")
        self.wait_event("Page.loadEventFired", timeout=timeout, since=mark)

    def evaluate(self, expression: str, timeout: float = DEFAULT_TIMEOUT):
        """Value of a JavaScript expression (promises are awaited)."""
        result = self.send("Runtime.evaluate", timeout=timeout, expression=expression,
                           returnByValue=True, awaitPromise=True, userGesture=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CDPError(f"JavaScript error in {expression!r}: {text}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = DEFAULT_TIMEOUT, interval: float = 0.1):
        """Poll a JavaScript expression until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"still false after {timeout} s: {expression}")
            self.pump(interval)

    # input
    def focus(self, selector: str):
        """Scroll the first element matching ``selector`` into view and focus it."""
        found = self.evaluate(f"""(() => {{
            const el = document.querySelector({json.dumps(selector)});
            if (!el) return false;
            el.scrollIntoView({{block: 'center'}});
            el.focus();
            return document.activeElement === el;
        }})()""")
        if not found:
            raise CDPError(f"cannot focus {selector!r}")

    def press_key(self, key: str):
        """Press and release one key (e.g. "ArrowRight", "Enter") on the focused element."""
        code, vk = _KEYS[key]
        text = "\r" if key == "Enter" else ""
        # As Puppeteer does: keys that type text go down with "keyDown", others "rawKeyDown".
        down = dict(type="keyDown", text=text) if text else dict(type="rawKeyDown")
        for params in (down, dict(type="keyUp")):
            self.send("Input.dispatchKeyEvent", key=key, code=code, windowsVirtualKeyCode=vk,
                      nativeVirtualKeyCode=vk, **params)

    def press_shortcut(self, key: str, modifiers: int):
        """A key with modifiers (1 Alt, 2 Ctrl, 4 Meta, 8 Shift), e.g. Shift+Enter."""
        code, vk = _KEYS[key]
        for kind in ("rawKeyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", type=kind, key=key, code=code,
                      windowsVirtualKeyCode=vk, nativeVirtualKeyCode=vk, modifiers=modifiers)

    def click(self, selector: str):
        """A real mouse click in the middle of the first element matching ``selector``."""
        box = self.evaluate(f"""(() => {{
            const el = document.querySelector({json.dumps(selector)});
            if (!el) return null;
            el.scrollIntoView({{block: 'center'}});
            const r = el.getBoundingClientRect();
            return [r.left + r.width / 2, r.top + r.height / 2];
        }})()""")
        if not box:
            raise CDPError(f"nothing to click at {selector!r}")
        x, y = box
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                      clickCount=1)

    # what the page did
    def requested_urls(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events
                if e["method"] == "Network.requestWillBeSent"]

    def failed_requests(self) -> list[str]:
        by_id = {e["params"]["requestId"]: e["params"]["request"]["url"] for e in self.events
                 if e["method"] == "Network.requestWillBeSent"}
        failed = [by_id.get(e["params"]["requestId"], "?") for e in self.events
                  if e["method"] == "Network.loadingFailed"]
        failed += [e["params"]["response"]["url"] for e in self.events
                   if e["method"] == "Network.responseReceived"
                   and e["params"]["response"]["status"] >= 400]
        return failed

    def exceptions(self) -> list[str]:
        """Uncaught JavaScript exceptions so far."""
        return [e["params"]["exceptionDetails"].get("exception", {}).get("description")
                or e["params"]["exceptionDetails"].get("text", "")
                for e in self.events if e["method"] == "Runtime.exceptionThrown"]

    def screenshot(self, path) -> None:
        import base64
        data = self.send("Page.captureScreenshot", format="png")["data"]
        Path(path).write_bytes(base64.b64decode(data))

    def close(self):
        """Close the tab and the connection."""
        with contextlib.suppress(Exception):
            self.send("Page.close", timeout=5)
        with contextlib.suppress(Exception):
            self.ws.close()


# --- JupyterLab on loopback ---------------------------------------------------------------------

LAB_TOKEN = "bounce-test-token"

#: True once the notebook has a started kernel and it is idle. (The indicator says "idle"
#: once *before* the kernel starts, while the toolbar still says "No Kernel".)
LAB_KERNEL_READY = """(() => {
    const name = ((document.querySelector('.jp-KernelName') || {}).innerText || '').trim();
    const state = document.querySelector('.jp-Notebook-ExecutionIndicator');
    return name !== '' && name !== 'No Kernel' && state !== null
        && state.dataset.status === 'idle';
})()"""

#: Presses OK on any JupyterLab dialog (e.g. "Select Kernel"), as a reader would; true if
#: there was none. Use it as `f"{LAB_ACCEPT_DIALOG} && (condition)"` inside wait_for.
LAB_ACCEPT_DIALOG = """(() => {
    const ok = document.querySelector('.jp-Dialog .jp-Dialog-button.jp-mod-accept');
    if (ok) ok.click();
    return !ok;
})()"""


@contextlib.contextmanager
def jupyter_lab(notebooks, workdir: Path, timeout: float = 90.0):
    """Run ``jupyter lab`` on 127.0.0.1 (free port, token ``LAB_TOKEN``) over a folder holding
    copies of ``notebooks``; yields its base URL. The kernels find swiotlb_lib through
    PYTHONPATH. Copies, because JupyterLab autosaves and committed notebooks must not change.
    Settings, workspaces and runtime files all live in ``workdir``; nothing is fetched from
    the internet (no news, no update checks)."""
    workdir = Path(workdir)
    root = workdir / "notebooks"
    root.mkdir(parents=True)
    for nb in notebooks:
        shutil.copy(nb, root / Path(nb).name)
    config = workdir / "config"
    config.mkdir()
    (config / "jupyter_server_config.json").write_text(json.dumps({"LabApp": {
        "news_url": None,
        "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
    }}))
    settings = workdir / "settings"
    for name, value in [("notebook-extension/tracker", {"autoStartDefaultKernel": True}),
                        ("apputils-extension/notification", {"fetchNews": "false"})]:
        path = settings / "@jupyterlab" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    env = dict(os.environ,
               JUPYTER_CONFIG_DIR=str(config),
               JUPYTER_RUNTIME_DIR=str(workdir / "runtime"))
    port = free_port()
    log_path = workdir / "jupyter.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
             f"--IdentityProvider.token={LAB_TOKEN}", f"--ServerApp.root_dir={root}",
             f"--LabApp.workspaces_dir={workdir / 'workspaces'}",
             f"--LabApp.user_settings_dir={settings}"],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_for_http(f"{base}/api/status?token={LAB_TOKEN}", timeout=timeout, process=server)
        except (RuntimeError, TimeoutError) as e:
            pytest.fail(f"jupyter lab did not start: {e}\n{log_path.read_text(errors='replace')}")
        yield base
    finally:
        server.terminate()  # the server shuts its kernels down on SIGTERM
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def lab_open_notebook(page: "Page", base: str, name: str, timeout: float = 90.0):
    """Open notebook ``name`` in JupyterLab and wait until its kernel is started and idle."""
    page.goto(f"{base}/lab/tree/{name}?token={LAB_TOKEN}", timeout=timeout)
    page.wait_for("document.querySelectorAll('.jp-Notebook .jp-Cell').length > 0",
                  timeout=timeout)
    page.wait_for(f"{LAB_ACCEPT_DIALOG} && {LAB_KERNEL_READY}", timeout=timeout)
    page.pump(1.0)  # and still ready a moment later
    page.wait_for(f"{LAB_ACCEPT_DIALOG} && {LAB_KERNEL_READY}", timeout=timeout)


def lab_run_all_cells(page: "Page"):
    """Run > Run All Cells, clicked with the mouse."""
    page.evaluate("""(() => {
        const run = [...document.querySelectorAll('.lm-MenuBar-item')]
            .find(e => e.innerText.trim() === 'Run');
        run.id = 'bounce-run-menu';
    })()""")
    page.click("#bounce-run-menu")
    run_all = '.lm-Menu [data-command="runmenu:run-all"]'
    page.wait_for(f"document.querySelector({json.dumps(run_all)}) !== null", timeout=10)
    page.click(run_all)


_KEYS = {
    "ArrowRight": ("ArrowRight", 39),
    "ArrowLeft": ("ArrowLeft", 37),
    "ArrowUp": ("ArrowUp", 38),
    "ArrowDown": ("ArrowDown", 40),
    "Enter": ("Enter", 13),
    "Escape": ("Escape", 27),
    "Tab": ("Tab", 9),
}
