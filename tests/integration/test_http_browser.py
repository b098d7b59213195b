"""The page at ``/`` in a real headless browser (Debian's ``chromium`` and ``chromium-driver``, driven by
selenium) against a real ``esco-search serve`` process. Skipped, with the reason, where either is missing
(``apt-get install -y chromium chromium-driver``)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import httpx
import pytest

from ingest.build import run
from tests.conftest import make_settings
from tests.helpers import MINI_V11, fixtures
from tests.integration.http_server import Server, server_env, serving

KEY = "browser-test-key-1"
CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None)
DRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="headless browser test: needs Debian's chromium and chromium-driver "
    "(apt-get install -y chromium chromium-driver)",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, minilm_path: str, encoder):
    tmp = tmp_path_factory.mktemp("browser")
    settings = make_settings(tmp, "edge", model=minilm_path)
    run(settings, [MINI_V11], ["en", "de"], encoder=encoder, progress=False)
    with serving(server_env(settings, api_keys=KEY), tmp) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="esco-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(DRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait(driver, condition, timeout: float = 30.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def test_the_page_searches_with_filters_and_shows_the_hits(server: Server, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    d = browser
    d.get(server.url + "/")
    assert d.title == "ESCO skill search"
    # without the key the page says what is missing
    _wait(d, lambda d: "API key" in d.find_element(By.ID, "collection").text)
    key = d.find_element(By.ID, "api_key")
    key.send_keys(KEY)
    d.find_element(By.ID, "text").click()  # `change` fires when the field loses focus: the collection loads
    _wait(d, lambda d: "ESCO v1.1.9" in d.find_element(By.ID, "collection").text)
    languages = [o.get_attribute("value") for o in Select(d.find_element(By.ID, "language")).options]
    assert sorted(languages) == ["", "de", "en"]

    d.find_element(By.ID, "text").send_keys("Brot backen im Ofen")
    Select(d.find_element(By.ID, "skill_type")).select_by_value("skill/competence")
    Select(d.find_element(By.ID, "language")).select_by_value("de")
    d.find_element(By.ID, "threshold").send_keys("0.1")
    limit = d.find_element(By.ID, "limit")
    limit.clear()
    limit.send_keys("4")
    d.find_element(By.ID, "search-button").click()
    _wait(d, lambda d: "skills (" in d.find_element(By.ID, "status").text)

    want = httpx.post(server.url + "/v1/search", headers={"X-API-Key": KEY}, json={
        "text": "Brot backen im Ofen", "skill_type": "skill/competence", "language": "de", "threshold": 0.1,
        "limit": 4}).json()
    items = d.find_elements(By.CSS_SELECTOR, "#hits li.hit")
    assert len(items) == len(want) > 0
    for li, hit in zip(items, want):
        assert li.find_element(By.CLASS_NAME, "score").text == f"{hit['score']:.3f}"
        assert li.find_element(By.CLASS_NAME, "label").text == hit["preferred_label"]
        assert li.find_element(By.CLASS_NAME, "description").text == hit["description"].strip()
        assert li.find_element(By.CLASS_NAME, "uri").text == hit["concept_uri"]
        assert "skill/competence" in li.find_element(By.CLASS_NAME, "meta").text
    assert items[0].find_element(By.CLASS_NAME, "uri").text == fixtures().SKILL["bread"]

    # a threshold nothing reaches: the page says so
    thr = d.find_element(By.ID, "threshold")
    thr.clear()
    thr.send_keys("0.99")
    d.find_element(By.ID, "search-button").click()
    _wait(d, lambda d: "no skill matches" in d.find_element(By.ID, "status").text)
    assert d.find_elements(By.CSS_SELECTOR, "#hits li") == []

    # the service's own message for an error: a wrong key
    key.clear()
    key.send_keys("wrong-key-0000")
    d.find_element(By.ID, "search-button").click()
    _wait(d, lambda d: "an API key is needed" in d.find_element(By.ID, "status").text)
    assert "error" in d.find_element(By.ID, "status").get_attribute("class")
    logs = [e for e in d.get_log("browser") if e["level"] == "SEVERE" and "401" not in e["message"]]
    assert not logs, logs  # no script error, no CSP violation


def test_page_escapes_what_it_shows(server: Server, browser) -> None:
    """Hits are inserted as text, never as HTML: a query with markup is echoed nowhere as markup."""
    from selenium.webdriver.common.by import By

    d = browser
    d.get(server.url + "/")
    d.find_element(By.ID, "api_key").send_keys(KEY)
    d.find_element(By.ID, "text").send_keys('<img src=x onerror="window.__x=1"> bread')
    d.find_element(By.ID, "search-button").click()
    _wait(d, lambda d: "skills (" in d.find_element(By.ID, "status").text)
    assert d.execute_script("return window.__x === undefined")
    assert d.find_elements(By.CSS_SELECTOR, "#hits img") == []
    assert Path(server.log_path).exists()
