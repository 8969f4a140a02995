"""The verification page (issue 14, item 5), in a real headless Chromium.

The mailed link opens a small HTML page without script; a real mouse click
on its button POSTs the verification; a second visit and click says, in
words, that the account is already verified. A JSON client still gets JSON.
The screenshots are kept in the test's temporary directory.
"""
import re
import shutil
import time

import pytest

from cdp import Browser, CHROMIUM
from test_http import group, login, open_account, fresh_email, verify_link, curl  # noqa: F401

pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM), reason="chromium not installed")


def wait_text(browser, words, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = browser.text()
        if words in text:
            return text
        time.sleep(0.1)
    raise AssertionError(f"{words!r} not on the page: {browser.text()!r}")


def test_the_mailed_link_in_a_browser(group, tmp_path):
    g = group
    acct = open_account(g, fresh_email("browser"))
    link = verify_link(g, acct)
    with Browser(tmp_path) as b:
        b.navigate(link)
        text = wait_text(b, "Verify your esbank account")
        assert acct in text
        assert b.eval("document.scripts.length") == 0
        b.screenshot(tmp_path / "1-form.png")
        # Opening the page verified nothing (a mail scanner may open it).
        tok = login(g, acct)
        assert g.get("/api/account", token=tok).json()["verified"] is False

        b.click("#verify")
        wait_text(b, "Your account is verified")
        b.screenshot(tmp_path / "2-verified.png")
        assert g.get("/api/account", token=tok).json()["verified"] is True

        b.navigate(link)  # a second visit
        wait_text(b, "Verify your esbank account")
        b.click("#verify")
        text = wait_text(b, "already verified")
        assert "you can log in" in text and "already_verified" not in text
        b.screenshot(tmp_path / "3-again.png")
    for name in ("1-form.png", "2-verified.png", "3-again.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A JSON client gets JSON.
    r = curl("", "GET", link, headers=["Accept: application/json"])
    assert (r.status, r.json()["error"]) == (409, "already_verified")


def test_a_json_client_verifies_by_post(group):
    g = group
    acct = open_account(g, fresh_email("jsonpost"))
    code = re.search(r"code=([^&\s]+)", verify_link(g, acct)).group(1)
    r = g.post("/api/verify", {"account": acct, "code": "wrong"})
    assert (r.status, r.json()["error"]) == (422, "wrong_code")
    r = g.post("/api/verify", {"account": acct, "code": code})
    assert r.status == 200 and isinstance(r.json()["seq"], int), r
    r = g.post("/api/verify", {"account": acct, "code": code})
    assert (r.status, r.json()["error"]) == (409, "already_verified")
