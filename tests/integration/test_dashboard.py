"""The dashboard, in a real browser: headless Chromium (Debian's chromium and
chromium-driver, driven by python3-selenium) signs in with a token, sees an
account, approves a held job and watches it publish on the fake without a
reload (the event stream), and sees a failed reload's error with its file and
line. A screenshot of each page goes to build/screenshots/ for a person to
look at."""
import os
import re
import shutil
import signal
import time

import pytest

from conftest import REPO
from test_admin_api import held_job, token
from test_publish import connect, video

webdriver = pytest.importorskip("selenium.webdriver", reason="python3-selenium is not installed "
                                "(tools/deps.sh test installs it)")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SHOTS = os.path.join(REPO, "build", "screenshots")


@pytest.fixture
def browser():
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        pytest.skip("chromium and chromium-driver are not installed (tools/deps.sh test installs "
                    "them)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
              "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    drv.set_page_load_timeout(30)
    yield drv
    drv.quit()


def until(drv, cond, timeout=20):
    """Wait for cond; on a timeout, say what the page showed and what the
    browser's console said."""
    try:
        return WebDriverWait(drv, timeout).until(cond)
    except Exception:
        page = drv.find_element(By.ID, "page").get_attribute("outerHTML")
        raise AssertionError("page: %s\nconsole: %s" % (page[:3000], drv.get_log("browser")))


def shot(drv, name):
    os.makedirs(SHOTS, exist_ok=True)
    drv.save_screenshot(os.path.join(SHOTS, name + ".png"))


def test_an_operator_works_from_the_browser(s, browser, tmp_path):
    drv = browser
    s.cfg.write_text(s.cfg.read_text() + 'admin = { listen = { "127.0.0.1:0" } }\n')
    connect(s)
    tok = token(s, "browser", "operator")
    d = s.start()
    port = int(re.search(r"port=(\d+)", d.wait_for(r"event=admin\.listening addr=127")).group(1))
    base = "http://127.0.0.1:%d/" % port
    wait = WebDriverWait(drv, 20)

    drv.get(base)
    wait.until(EC.visibility_of_element_located((By.ID, "token")))
    shot(drv, "01-sign-in")
    # a wrong token is refused, and says so
    drv.find_element(By.ID, "token").send_keys("tikd_" + "x" * 43)
    drv.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "login-error"), "not known"))
    drv.find_element(By.ID, "token").clear()
    drv.find_element(By.ID, "token").send_keys(tok)
    drv.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait.until(EC.visibility_of_element_located((By.ID, "nav")))
    assert drv.execute_script("return document.cookie") == ""  # the token is no cookie
    assert drv.execute_script("return localStorage.length") == 0

    drv.get(base + "#/accounts")
    row = wait.until(EC.presence_of_element_located(
        (By.XPATH, "//td[text()='alice']/following-sibling::td/span[@data-state='active']")))
    assert row.text == "active"
    shot(drv, "02-accounts")
    # reconnecting starts TikTok's authorize page for this account
    drv.find_element(By.CSS_SELECTOR, "button[data-connect='alice']").click()
    link = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "a.authorize")))
    assert "/v2/auth/authorize/" in link.get_attribute("href") and "state=" in link.get_attribute(
        "href")

    jid = held_job(s, tmp_path)
    drv.get(base + "#/approvals")
    card = wait.until(EC.presence_of_element_located(
        (By.CSS_SELECTOR, "div.card[data-job='%d']" % jid)))
    assert "SELF_ONLY" in card.text and "operator" in card.text
    meta = card.find_element(By.CSS_SELECTOR, "dd[data-field='video']").text  # the probe's reading
    assert re.search(r"\w+ in mp4, \d+x\d+, \d+ fps, \d+\.\d s", meta), meta
    wait.until(EC.text_to_be_present_in_element((By.ID, "approval-count"), "1"))
    shot(drv, "03-approvals")
    card.find_element(By.TAG_NAME, "textarea").send_keys("checked in the browser")
    s.fake.ctl.set_config(time_scale=0.01)
    card.find_element(By.CSS_SELECTOR, "button[data-approve]").click()
    wait.until(EC.presence_of_element_located((By.ID, "no-approvals")))
    audit = s.tikd("audit", "list").stdout
    assert re.search(r'token:browser\s+job\.note\s+job=%d note="checked in the browser"' % jid,
                     audit), audit

    # the job page follows the job to TikTok's answer by itself
    drv.get(base + "#/jobs/%d" % jid)
    until(drv, EC.presence_of_element_located((By.CSS_SELECTOR, "dd[data-field='state']")))
    WebDriverWait(drv, 40).until(EC.presence_of_element_located(
        (By.CSS_SELECTOR, "dd[data-field='state'] span[data-state='published']")))
    assert drv.find_element(By.ID, "live").is_displayed()
    pub = drv.find_element(By.CSS_SELECTOR, "dd[data-field='publish_id']").text
    assert pub.startswith("v_pub_file~"), pub
    shot(drv, "04-job-published")

    # the calendar shows each account's days in the zone its rules declare
    (s.root / "rules" / "zone.lua").write_text('tikd.account("alice", { tz = "Asia/Tokyo" })\n')
    d.signal(signal.SIGHUP)
    d.wait_for(r"event=rules\.loaded gen=2")
    r = s.tikd("post", str(video(tmp_path / "later.mp4", mdat=90_000)), "--account", "alice",
               "--privacy", "SELF_ONLY", "--at", "+1d")
    assert r.returncode == 0, r.stderr
    drv.get(base + "#/calendar")
    until(drv, EC.presence_of_element_located((By.CSS_SELECTOR, "span[data-tz='Asia/Tokyo']")))
    until(drv, EC.presence_of_element_located((By.CSS_SELECTOR, "div.slot[data-job]")))
    shot(drv, "05-calendar-tokyo")

    for page in ("queue", "calendar", "limits", "audit"):
        drv.get(base + "#/" + page)
        until(drv, lambda b: b.find_element(By.ID, "page").get_attribute("data-page") == page)
        assert "error" not in drv.find_element(By.ID, "page").get_attribute("innerHTML")
        shot(drv, "05-" + page)

    # a reload that fails: the rules page shows it, with the file and line, live
    drv.get(base + "#/rules")
    wait.until(EC.presence_of_element_located((By.ID, "live-gen")))
    # a dry run of the live rules, from the page
    drv.find_element(By.ID, "plan-run").click()
    until(drv, lambda b: "dry run" not in b.find_element(By.ID, "plan").text
          and b.find_element(By.ID, "plan").text.strip() != "", timeout=60)
    assert "error" not in drv.find_element(By.ID, "plan").get_attribute("innerHTML")
    shot(drv, "06-rules-plan")
    (s.root / "rules" / "broken.lua").write_text("local x = \nfunction(\n")
    d.signal(signal.SIGHUP)
    d.wait_for(r"event=rules\.reload_failed")
    err = WebDriverWait(drv, 20).until(EC.presence_of_element_located(
        (By.CSS_SELECTOR, "#reload-errors li")))
    assert "broken.lua:" in err.text, err.text
    assert "FAILED" in drv.find_element(By.ID, "last-reload").text
    assert drv.find_element(By.ID, "live-gen").text == "2"
    shot(drv, "07-rules-reload-failed")

    # signing out forgets the token; the page cannot act any more
    drv.find_element(By.ID, "logout").click()
    wait.until(EC.visibility_of_element_located((By.ID, "token")))
    assert drv.execute_script("return sessionStorage.length") == 0
    d.stop()
