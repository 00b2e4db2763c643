"""`dpodiff ui` in a real browser: Debian's chromium, driven by Playwright, against the server on the shapes world.

A small improve runs to the end and shows the before/after images and the top candidates; a bigger one is
stopped mid-run and shows what it found. DPODIFF_UI_SCREENSHOT=1 saves the finished page to docs/ui.png.
Before the browser: the space table round trip, and the message when Gradio is not installed.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "a red circle above a blue square"
SCREENSHOT = os.environ.get("DPODIFF_UI_SCREENSHOT") == "1"
# the finished run: tiny for the test; for the screenshot (docs/ui.png) one that shows a real search
FIRST = dict(budget=16, seeds="2", steps=25) if SCREENSHOT else dict(budget=4, seeds="1", steps=5)


def _chromium() -> str:
    """Debian's chromium (.ci/run installs it); Playwright's own browser download is never used."""
    for candidate in (os.environ.get("DPODIFF_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("No chromium found for the browser test: install it with `apt-get install -y chromium` (as .ci/run does), "
                "or point DPODIFF_CHROMIUM at a Chromium binary.")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(tmp_path_factory, *model_args):
    """The UI (on the shapes world unless `model_args` name another model), on the CPU, on a free local port; its
    log is shown if it dies. Yields its address; stopped as a service manager stops it."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("ui") / "server.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "TMPDIR": str(log_path.parent)}
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "dpodiff.cli", "ui", "--port", str(port), "--device", "cpu", "--threads", "1",
                                    *map(str, model_args)], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            pytest.fail(f"dpodiff ui exited with status {process.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"dpodiff ui did not answer on {url} within 90 s:\n{log_path.read_text()}")
        time.sleep(0.5)
    yield url
    process.terminate()  # SIGTERM, as a service manager stops it: the users' runs must not stay behind
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    assert process.returncode == 143 and not list(log_path.parent.glob("dpodiff-ui-*")), log_path.read_text()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from _serve(tmp_path_factory)


@pytest.fixture(scope="module")
def browser():
    """One headless chromium for the module (Playwright's sync API allows one instance at a time)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url)
    return page


@pytest.fixture(scope="module")
def page(browser, server):
    return _open(browser, server)


def _settings(page, budget: int, seeds: str = "1", steps: int = 5) -> None:
    page.locator("#budget input").fill(str(budget))
    page.locator("#seeds textarea").fill(seeds)
    page.locator("#steps input").fill(str(steps))


def test_run_to_the_end_then_stop_a_bigger_run(page):
    from playwright.sync_api import expect

    status = page.locator("#progress-text")
    result_image = page.locator("#result-images img")
    top_rows = page.locator("#top-candidates tbody tr")

    # build the space (the run searches the table), then a small improve, run to the end
    page.locator("#prompt textarea").fill(PROMPT)
    page.get_by_role("button", name=re.compile("^Search space")).click()
    page.locator("#build-space").click()
    expect(page.locator("#space-table")).to_contain_text("negative", timeout=30_000)
    expect(page.locator("#space-table")).to_contain_text("nplib:sizes")  # a slot of the shapes world's negative-prompt library
    _settings(page, **FIRST)
    page.locator("#run").click()
    expect(status).to_contain_text(f"Done: {FIRST['budget']} of {FIRST['budget']} candidates scored", timeout=120_000)
    expect(result_image).to_be_visible()
    assert 1 <= top_rows.count() <= FIRST["budget"]
    expect(page.locator("#top-candidates")).to_contain_text(PROMPT)
    expect(page.locator("#judge")).to_contain_text("best:")
    expect(page.locator("#download")).to_contain_text(".zip")
    expect(page.locator("#stop")).to_be_disabled()
    if SCREENSHOT:
        (ROOT / "docs").mkdir(exist_ok=True)
        page.screenshot(path=str(ROOT / "docs" / "ui.png"), full_page=True)

    # a bigger one, stopped after a few candidates: it ends early and keeps what it found
    _settings(page, budget=200)
    page.locator("#run").click()
    expect(result_image).to_have_count(0, timeout=10_000)  # the last run's result is cleared
    expect(status).to_contain_text(re.compile(r"\b([3-9]|\d\d+) of 200 candidates scored"), timeout=60_000)
    page.locator("#stop").click()
    expect(status).to_contain_text("Stopped:", timeout=30_000)
    scored = int(re.search(r"Stopped: (\d+) of 200", status.inner_text()).group(1))
    assert 3 <= scored < 200
    expect(status).to_contain_text("(interrupted)")
    expect(result_image).to_be_visible()
    assert top_rows.count() >= 1
    expect(page.locator("#best")).to_contain_text("loss")
    expect(page.locator("#run")).to_be_enabled()


def test_a_flux_run_steers_through_true_cfg(browser, tmp_path_factory, tiny_flux_dir, tiny_scorer_dir):
    """On a guidance-distilled family the page names the guidance as distilled and offers true CFG; a run records both."""
    from playwright.sync_api import expect

    url_of = _serve(tmp_path_factory, "--model", tiny_flux_dir, "--scorer", tiny_scorer_dir)
    url, page = next(url_of), None
    try:
        page = _open(browser, url)
        expect(page.locator("#guidance")).to_contain_text("Distilled guidance")
        expect(page.locator("#true-cfg")).to_be_visible()
        expect(page.locator("#scheduler")).not_to_contain_text("ddim")  # a flow model keeps its own sampler
        page.locator("#prompt textarea").fill(PROMPT)
        page.locator("#true-cfg input").fill("2.5")
        _settings(page, budget=2, steps=2)
        page.locator("#run").click()
        expect(page.locator("#progress-text")).to_contain_text("Done: 2 of 2 candidates scored", timeout=120_000)
        expect(page.locator("#result-images img")).to_be_visible()
        with page.expect_download() as download:
            page.locator("#download a").first.click()
        with zipfile.ZipFile(download.value.path()) as archive:
            generation = json.loads(archive.read("result.json"))["generation"]
        assert generation["family"] == "flux" and generation["true_cfg"] == 2.5 and generation["steps"] == 2
    finally:
        if page is not None:
            page.close()
        next(url_of, None)  # stops the server


def test_space_table_round_trip():
    from dpodiff.spaces import SearchSpace, Slot, Span
    from dpodiff.ui import space_from_rows, space_rows

    prompt = "a red circle above a red square"
    space = SearchSpace(prompt, [Span(6, 12, ["circle", "ring", "disc"]), Span(21, 24, ["red", "crimson"])],
                        [Slot("red", ["", "blue", "green"]), Slot("nplib:quality", ["", "blurry", "low quality"])])
    rows = space_rows(space)
    assert rows[1] == ["positive", "red", "crimson"] and rows[2] == ["negative", "red", "blue, green"]
    again = space_from_rows(prompt, rows + [["", "", ""]])  # the editor's empty row is ignored
    assert again.to_dict()["positive"] == [{**s, "source": "ui"} for s in space.to_dict()["positive"]]
    assert [(s.name, s.choices) for s in again.negative] == [(s.name, s.choices) for s in space.negative]
    with pytest.raises(Exception, match="not a word of the prompt"):
        space_from_rows(prompt, [["positive", "triangle", "cone"]])
    with pytest.raises(Exception, match="must be 'positive'"):
        space_from_rows(prompt, [["both", "red", "blue"]])


def test_ui_without_gradio_says_how_to_install_it():
    code = "import sys; sys.modules['gradio'] = None; sys.argv = ['dpodiff', 'ui']; from dpodiff.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2, done.stderr
    assert "pip install 'dpodiff[ui]'" in done.stderr


def test_visitors_choose_only_the_servers_scorers_within_its_bounds(tiny_pipe, tiny_scorer, tiny_scorer_dir):
    from dpodiff.backends import as_backend
    from dpodiff.config import RunConfig
    from dpodiff.errors import UsageError
    from dpodiff.objectives.scorers import load_scorer
    from dpodiff.ui import Models

    other = load_scorer(f"clip:{tiny_scorer_dir}")
    models = Models(as_backend(tiny_pipe), tiny_scorer, "tiny", others=[other], max_budget=10, max_seeds=2)
    assert list(models.scorers) == [tiny_scorer.name, other.name]
    assert models.scorer_for("") is tiny_scorer and models.scorer_for(other.name) is other
    with pytest.raises(UsageError, match="not one of this server's scorers"):
        models.scorer_for("/etc")  # never loaded, whether or not the path exists
    models.check_bounds(RunConfig(budget=10, seeds=(0, 1)))
    with pytest.raises(UsageError, match="more than this server allows per run \\(10\\)"):
        models.check_bounds(RunConfig(budget=11))
    with pytest.raises(UsageError, match="3 seeds are more than this server allows"):
        models.check_bounds(RunConfig(budget=5, seeds=(0, 1, 2)))


def test_text_is_escaped_once():
    from dpodiff.results import Evaluation
    from dpodiff.ui import describe

    text = describe(Evaluation(0, [0], "a cat & a `dog`'s <b>hat</b>", "", 0.5, [0.5], 1.0))
    assert "`` a cat & a `dog`'s <b>hat</b> ``" in text and "&amp;" not in text and "&#x27;" not in text
