"""The console's live view in a real browser (Debian's chromium via Playwright) against a real
control plane, faust monitor and bundled broker: the canary's chart, decision boundary and
state; an operator promotes it by hand, a reviewer cannot; a drift alert on the overview."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from services.broker import EmbeddedBroker
from tests.integration.learning_helpers import define_task, import_examples
from tests.integration.live_helpers import live_plane, traffic
from tests.processes import ControlPlaneProcess, create_token

pytestmark = [pytest.mark.integration, pytest.mark.browser]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WINDOW_S = 5


@pytest.fixture
def plane(
    home: Path, broker: EmbeddedBroker, tiny_model_dir: Path
) -> Iterator[ControlPlaneProcess]:
    with live_plane(home, broker.bootstrap, tiny_model_dir, WINDOW_S) as plane:
        yield plane


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: run `make install`"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 1800})
        page.on("dialog", lambda dialog: dialog.accept())  # the "are you sure?" confirm
        yield page
        page.screenshot(path=str(tmp_path / "last-page.png"), full_page=True)
        browser.close()


def log_in(page: Page, plane: ControlPlaneProcess, token: str) -> None:
    page.goto(plane.url)
    page.fill("#token", token)
    page.keyboard.press("Enter")
    expect(page.locator("#who")).not_to_be_empty()


def test_an_operator_watches_and_promotes_a_canary_a_reviewer_cannot(
    plane: ControlPlaneProcess, page: Page, tmp_path: Path
) -> None:
    policy = {"fraction": 0.5, "min_events": 1000, "max_duration_s": 3600}
    define_task(plane, tmp_path, "money", gate={"canary": policy})
    import_examples(plane, tmp_path, "money")
    assert plane.cli("cycle", "run", "money", "--wait").returncode == 0
    canary = plane.get("/v1/tasks/money/canary")["canary"]["adapter_id"]
    traffic(plane.bootstrap, "money", canary, answers=40, thumbs_down=12)  # 30%
    traffic(plane.bootstrap, "money", None, answers=40, thumbs_down=4)  # 10%
    traffic_window = time.time() // WINDOW_S
    plane.wait_until(
        lambda: plane.get("/v1/tasks/money/canary")["decision"],
        lambda d: d is not None and (d["candidate"]["n"], d["reference"]["n"]) == (40, 40),
        60,
    )

    reviewer = create_token(plane, "reviewer", "rita")
    log_in(page, plane, reviewer)
    expect(page.locator("#review")).to_be_visible()
    expect(page.locator("#tabs button[data-view=live]")).to_be_hidden()
    page.evaluate("document.activeElement.blur()")  # keys are shortcuts again, not typing
    page.keyboard.press("6")
    expect(page.locator("#live")).to_be_hidden()
    refused = page.evaluate(
        """async (token) => {
          const r = await fetch("/v1/tasks/money/canary/end", {method: "POST",
            headers: {"Authorization": `Bearer ${token}`, "Content-Type": "application/json"},
            body: JSON.stringify({outcome: "promote"})});
          return [r.status, (await r.json()).detail];
        }""",
        reviewer,
    )
    assert refused == [403, "a reviewer token cannot do this; it needs role admin or operator"]
    page.click("#logout")

    log_in(page, plane, create_token(plane, "operator", "olga"))
    expect(page.locator(".card[data-task=money]")).to_be_visible()
    page.keyboard.press("6")
    expect(page.locator("#live")).to_be_visible()
    expect(page.locator("#canary-adapter")).to_have_text(canary[:12])
    expect(page.locator("#canary-fraction")).to_have_text("50%")
    expect(page.locator("#canary-events")).to_have_text("40")
    expect(page.locator("#champion-events")).to_have_text("40")
    expect(page.locator("#canary-min-events")).to_have_text("1000")
    expect(page.locator("#canary-deadline")).not_to_be_empty()
    expect(page.locator("#canary-decision")).to_have_text("watch")
    legend = page.locator("#live-chart .legend")
    expect(legend).to_contain_text(f"{canary[:12]} (canary)")
    expect(legend).to_contain_text("base model (champion)")
    expect(page.locator("#live-chart svg circle")).not_to_have_count(0)
    expect(page.locator("#boundary-chart svg")).to_be_visible()
    expect(page.locator("#boundary-chart svg")).to_contain_text("interval above, roll back")
    trail = plane.get("/v1/tasks/money/canary")["trail"]
    assert trail[-1]["canary_judged"] == 40 and trail[-1]["low"] < 0 < trail[-1]["high"]
    page.screenshot(path=str(tmp_path / "live-canary.png"), full_page=True)

    while time.time() // WINDOW_S == traffic_window:  # the canary's traffic: before promotion
        time.sleep(0.1)
    page.click("#canary-promote")
    expect(page.locator("#canary-status")).to_have_text("Promoted: the canary is the champion now.")
    expect(page.locator("#canary-outcome")).to_have_text("promote")
    expect(page.locator("#canary-actions")).to_be_hidden()
    expect(page.locator("#canary-history tbody tr").first).to_contain_text("olga")
    assert plane.get("/v1/tasks/money")["champion"] == canary
    assert "canary:promote" in plane.cli("audit", "--task", "money").stdout

    # The new champion's negative rate jumps: the overview shows the drift alert.
    time.sleep(WINDOW_S - time.time() % WINDOW_S + 0.3)  # a window wholly after the promotion
    traffic(plane.bootstrap, "money", canary, answers=60, thumbs_down=6)
    time.sleep(WINDOW_S - time.time() % WINDOW_S + 0.3)
    traffic(plane.bootstrap, "money", canary, answers=60, thumbs_down=36)
    page.keyboard.press("1")
    alert = page.locator("#drift-alerts li[data-task=money]").first
    expect(alert).to_contain_text("worse than its own first window", timeout=60_000)
    expect(alert).to_contain_text(canary[:12])
    page.screenshot(path=str(tmp_path / "overview-alert.png"), full_page=True)
