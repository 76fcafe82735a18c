"""The console under its Content-Security-Policy, in a real browser (Debian's chromium via
Playwright): the policy is enforced, and none of the console's own views break it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Error, expect, sync_playwright

from tests.integration.conftest import create_token
from tests.integration.learning_helpers import define_task, import_examples

pytestmark = [pytest.mark.integration, pytest.mark.browser]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def test_every_view_works_under_the_policy_and_inline_script_is_refused(model_plane, tmp_path):
    plane = model_plane
    define_task(plane, tmp_path, "money")
    import_examples(plane, tmp_path, "money", count=20)
    operator = create_token(plane, "operator", "olga")
    complaints: list[str] = []
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: run `make install`"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page()
        page.on("console", lambda message: complaints.append(message.text))
        page.on("pageerror", lambda error: complaints.append(str(error)))
        answer = page.goto(plane.url)
        assert (
            answer is not None and "script-src 'self'" in answer.headers["content-security-policy"]
        )
        page.fill("#token", operator)
        page.keyboard.press("Enter")
        expect(page.locator("#who")).not_to_be_empty()
        expect(page.locator(".card[data-task=money] svg")).to_be_visible()
        legend = page.locator(".card[data-task=money] .legend span").first
        # the chart colours its legend with a style attribute, which the policy allows
        assert legend.evaluate("e => getComputedStyle(e).color") == "rgb(36, 87, 197)"
        for key, view in (("3", "#cycles"), ("4", "#adapters"), ("5", "#audit"), ("6", "#live")):
            page.keyboard.press(key)
            expect(page.locator(view)).to_be_visible()
        expect(page.locator("#audit-table")).to_contain_text("task:replace")
        own_views = list(complaints)

        # An injected inline script (what an XSS would add) does not run.
        with pytest.raises(Error):
            page.add_script_tag(content="document.title = 'injected'")
        assert page.title() != "injected"
        browser.close()
    assert not [c for c in own_views if "Content Security Policy" in c], own_views
    assert any("Content Security Policy" in c for c in complaints), complaints
