"""The console in a real browser (Debian's chromium driven by Playwright) against a real
control plane: log in with a token, work the review queue with the keyboard, approve a
candidate, see the champion change."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.integration.conftest import ControlPlaneProcess, create_token
from tests.integration.learning_helpers import define_task, import_examples

pytestmark = [pytest.mark.integration, pytest.mark.browser]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def plane(model_plane):
    return model_plane


@pytest.fixture
def page(tmp_path: Path):
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: run `make install`"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        yield page
        page.screenshot(path=str(tmp_path / "last-page.png"), full_page=True)
        browser.close()


def send_answers(plane: ControlPlaneProcess) -> None:
    now = datetime.now(UTC).isoformat()
    answers = [
        {
            "event_id": f"answer-{i}",
            "occurred_at": now,
            "type": "inference",
            "task": "money",
            "input": text,
            "output": "no",
            "base_model": "tiny",
            "mean_logprob": logprob,
        }
        for i, (text, logprob) in enumerate(
            [("please wire 900 dollars", -0.2), ("lunch on friday?", -2.0)]
        )
    ]
    complaint = {
        "event_id": "complaint",
        "occurred_at": now,
        "type": "feedback",
        "task": "money",
        "inference_id": "answer-0",
        "signal": "thumbs_down",
    }
    token = create_token(plane, "app")
    response = plane.post("/v1/events", {"events": [*answers, complaint]}, token=token)
    assert response.json()["accepted"] == 3
    plane.wait_for(
        lambda s: s["events"]["feedback"]["stored"] == 1 and s["events"]["inference"]["stored"] >= 2
    )


def log_in(page: Page, url: str, token: str) -> None:
    page.goto(url)
    page.fill("#token", token)
    page.keyboard.press("Enter")
    expect(page.locator("#who")).not_to_be_empty()


def test_review_queue_with_the_keyboard_then_approve_a_candidate(plane, page, tmp_path):
    define_task(plane, tmp_path, "money", gate={"mode": "manual"})
    send_answers(plane)

    page.goto(plane.url)
    page.fill("#token", "fw_not-a-token")
    page.keyboard.press("Enter")
    expect(page.locator("#login-error")).to_contain_text("log in again")

    log_in(page, plane.url, create_token(plane, "reviewer", "rita"))
    expect(page.locator("#review")).to_be_visible()
    expect(page.locator("#tabs button[data-view=cycles]")).to_be_hidden()  # not a reviewer's
    expect(page.locator("#item-input")).to_have_text("please wire 900 dollars")  # complained
    expect(page.locator("#item-reason")).to_have_text("negative feedback")
    page.keyboard.press("c")
    page.keyboard.type("yes")
    expect(page.locator("#correction")).to_have_value("yes")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#review-status")).to_have_text("Correction sent.")
    expect(page.locator("#item-input")).to_have_text("lunch on friday?")  # least confident
    page.keyboard.press("a")
    expect(page.locator("#review-status")).to_have_text("Approved.")
    expect(page.locator("#queue-empty")).to_be_visible()
    plane.wait_for(lambda s: s["events"]["correction"]["stored"] == 2)
    page.click("#logout")

    import_examples(plane, tmp_path, "money", already=2)
    cycle_id = plane.post("/v1/tasks/money/cycles", {}).json()["cycle_id"]
    plane.wait_until(
        lambda: plane.get(f"/v1/cycles/{cycle_id}"),
        lambda c: c["verdict"] == "await_approval",
        timeout_s=180,
    )
    log_in(page, plane.url, create_token(plane, "operator", "olga"))
    expect(page.locator(".card[data-task=money] .champion")).to_have_text("base model")
    expect(page.locator(".card[data-task=money] svg")).to_be_visible()  # ground-truth growth
    page.keyboard.press("3")
    page.click(f"tr[data-cycle='{cycle_id}']")
    expect(page.locator("#cycle-verdict")).to_have_text("await_approval")
    expect(page.locator("#cycle-detail")).to_contain_text("awaiting an operator")
    page.screenshot(path=str(tmp_path / "cycle.png"), full_page=True)
    page.click("#approve-cycle")
    expect(page.locator("#cycle-verdict")).to_have_text("approved")
    champion = plane.get("/v1/tasks/money")["champion"]
    assert champion is not None
    page.keyboard.press("4")
    expect(page.locator("#current-champion")).to_have_text(champion[:12])
    expect(page.locator("#quality-chart svg")).to_be_visible()
    expect(page.locator("#history-table tbody tr").first).to_contain_text("approve")
    page.screenshot(path=str(tmp_path / "adapters.png"), full_page=True)
    page.keyboard.press("5")
    expect(page.locator("#audit-table")).to_contain_text("olga")
    expect(page.locator("#audit-table")).to_contain_text("rita")
    assert httpx.get(f"{plane.url}/ui/../flywheel.duckdb").status_code == 404


def test_a_rejected_cycle_says_why_and_shows_its_learning_curve(plane, page, tmp_path):
    define_task(plane, tmp_path, "money", gate={"min_delta": 1.0})  # no candidate can pass
    import_examples(plane, tmp_path, "money", count=100)  # enough for the search's dev split
    cycle_id = plane.post("/v1/tasks/money/cycles", {}).json()["cycle_id"]
    cycle = plane.wait_until(
        lambda: plane.get(f"/v1/cycles/{cycle_id}"),
        lambda c: c["state"] in ("decided", "failed"),
        timeout_s=180,
    )
    assert cycle["verdict"] == "reject", cycle.get("error")
    log_in(page, plane.url, create_token(plane, "operator", "olga"))
    # The overview has rendered (and the login field let go of the keyboard) before "3".
    expect(page.locator(".card[data-task=money]")).to_be_visible()
    page.keyboard.press("3")
    page.click(f"tr[data-cycle='{cycle_id}']")
    expect(page.locator("#cycle-detail")).to_contain_text("Why it failed")
    first_reason = cycle["decision"]["evidence"]["diagnosis"][0]
    expect(page.locator("#cycle-why li").first).to_have_text(first_reason)
    expect(page.locator("#cycle-search")).to_contain_text("first cycle of the task")
    expect(page.locator("#learning-curve svg")).to_have_count(2)  # loss per step, dev per trial
    expect(page.locator("#learning-curve")).to_contain_text("training loss (candidate)")
    expect(page.locator("#learning-curve")).to_contain_text("development metric per trial")
    page.screenshot(path=str(tmp_path / "rejected-cycle.png"), full_page=True)
