"""The studio end to end in headless Chromium (Debian's chromium and chromium-driver; CI installs them).

Open the page, edit the timeline, plan, generate on toyworld, wait for the video, check its
frame count. ``SYNCOS_UI_SCREENSHOT=docs/ui.png`` also keeps the screenshot there.
"""

from __future__ import annotations

import os
import shutil
import socket
import urllib.request
from pathlib import Path

import pytest

from syncos.io import read_video

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver") or "/usr/bin/chromedriver"
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or not Path(DRIVER).exists(), reason="Chromium and its driver are not installed"
)
FLAGS = (
    "--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking "
    "--disable-component-update --disable-sync --disable-dev-shm-usage --window-size=1400,1500"
).split()
SCENARIO = {
    "model": "toyworld",
    "model_options": {"chunk_length": 6},
    "global_prompt": "a red ball on green grass",
    "events": [{"prompt": "the ball jumps", "frames": 6}, {"prompt": "night falls", "seconds": 0.75}],
    "sampler": {"method": "codenoise", "steps": 50, "stride": 3},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """``syncos ui``'s own entry point, not blocking; on 127.0.0.1, the default."""
    import yaml

    from syncos.ui.app import launch

    port = _free_port()
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(SCENARIO))
    demo = launch(port=port, scenario=str(path), block=False)  # outputs in a temporary folder
    assert demo.server_name == "127.0.0.1"
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def test_edit_plan_generate_and_play(server, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    d = browser
    wait = WebDriverWait(d, 60, poll_frequency=0.2)
    d.get(server)
    css = lambda sel: d.find_element(By.CSS_SELECTOR, sel)  # noqa: E731
    rows = lambda: [  # noqa: E731
        r.text
        for r in d.find_elements(By.CSS_SELECTOR, "#events [role=row]")
        if r.get_attribute("aria-rowindex") != "1"
    ]  # the header is row 1
    wait.until(lambda _: len(rows()) == 2)
    buttons = [css(f"#{b}") for b in ("add-event", "remove-event", "move-up", "move-down")]
    tops = {b.location["y"] for b in buttons} | {css("#row").location["y"]}
    assert len({round(t / 20) for t in tops}) == 1, tops  # one row: no lone "move down" below it
    assert "removed when the studio stops" in css("#outputs").text

    def type_into(sel: str, text: str) -> None:
        def typed(_) -> bool:  # retyped if the page was still settling and dropped the keys
            box = css(sel)
            if box.get_attribute("value") != text:
                box.send_keys(Keys.CONTROL, "a")
                box.send_keys(text, Keys.TAB)
            return box.get_attribute("value") == text

        wait.until(typed)

    type_into("#global-prompt textarea", "a blue ball on green grass")
    type_into("#steps input", "3")
    css("#add-event").click()  # a third event: a copy of the last one
    wait.until(lambda _: len(rows()) == 3)
    prompt_of = lambda i: rows()[i].split("\n")[0]  # noqa: E731

    def edit_cell(_) -> bool:  # the third row's prompt; again if the editor was not ready
        cell = d.find_elements(By.CSS_SELECTOR, "#events [role=gridcell]")[6]
        ActionChains(d).double_click(cell).perform()
        box = d.switch_to.active_element
        if box.tag_name not in ("input", "textarea"):
            return False
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(Keys.DELETE)
        if box.get_attribute("value"):
            box.send_keys(Keys.ESCAPE)
            return False
        box.send_keys("the ball bounces", Keys.ENTER)
        return True

    wait.until(edit_cell)
    wait.until(lambda _: prompt_of(2) == "the ball bounces")
    type_into("#row input", "3")
    css("#move-up").click()  # reorder: the new event goes second
    wait.until(lambda _: prompt_of(1) == "the ball bounces")
    assert prompt_of(2) == "night falls"

    css("#plan").click()
    plan_text = lambda: css("#plan-text textarea").get_attribute("value")  # noqa: E731
    wait.until(lambda _: "network evaluations" in plan_text())
    plan = plan_text()
    assert "codenoise, 3 steps: 18 video frames" in plan, plan
    assert "a blue ball on green grass. the ball bounces" in plan, plan
    bars = d.find_elements(By.CSS_SELECTOR, "#plan-figure svg g.chunk")
    assert len(bars) == 5 and "2: the ball bounces" in bars[2].text  # the picture of the same plan
    assert "codenoise: no sync window" in css("#plan-figure svg").text

    css("#generate").click()
    WebDriverWait(d, 300, poll_frequency=0.5).until(
        lambda _: any(w in css("#status").text for w in ("done in", "failed", "error", "cancelled"))
    )
    assert "done in" in css("#status").text, css("#status").text
    WebDriverWait(d, 60, poll_frequency=0.5).until(
        lambda _: d.execute_script("const v = document.querySelector('#video video'); return v && v.src")
    )
    duration = WebDriverWait(d, 60).until(
        lambda _: d.execute_script(
            "const v = document.querySelector('#video video'); return v.readyState >= 1 && v.duration"
        )
    )
    assert abs(duration * 8 - 18) < 1, duration  # 18 frames at 8 fps
    src = d.execute_script("return document.querySelector('#video video').src")
    (tmp_path / "served.mp4").write_bytes(urllib.request.urlopen(src, timeout=30).read())
    frames, fps = read_video(tmp_path / "served.mp4")
    assert len(frames) == 18 and fps == 8
    assert "done in" in css("#status").text and css("#preview img").get_attribute("src")
    assert "run.json" in css("#run-json").text
    summary = css("#summary").text
    assert "subject_consistency" in summary and "the subject keeps its shape" in summary  # metrics shown

    d.save_screenshot(str(tmp_path / "ui.png"))
    if os.environ.get("SYNCOS_UI_SCREENSHOT"):
        shutil.copy(tmp_path / "ui.png", os.environ["SYNCOS_UI_SCREENSHOT"])
