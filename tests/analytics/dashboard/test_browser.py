"""The dashboard in a real browser: Debian's Chromium, headless, driven by selenium
(``/usr/bin/chromedriver``; nothing is downloaded), against real processes: the history
service, a broker feeding it, Mosquitto and the IoT agent, the rules service, and the
dashboard (``waziup dashboard``) calling them.

One scenario, in steps that share the page (sign-in: test_browser_signin.py): an
entity the test creates appears live; its plot opens from the keyboard after a few updates,
and its CSV downloads; a device that stops reporting turns red (``-expect Silent=2``) and is
listed as silent; the map shows the entity's location (offline: the vendored outline); a
device is provisioned through the form, edited and deleted; the subscriptions list the live
feed's; a rule is created and disabled; the page fits a phone's screen; no console errors.
A screenshot of each step goes to ``tmp/artifacts/dashboard/`` (not committed).
"""
from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.analytics.conftest import HistoryProcess
from tests.conftest import ROOT, BrokerProcess, Mosquitto, ServiceProcess, free_port
from tests.iot_agent.conftest import AgentStack

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "tmp" / "artifacts" / "dashboard"
LIVE_SECONDS = 3.0  # the issue asks for a second; the bound leaves room for a loaded test machine


class DashboardProcess(ServiceProcess):
    def __init__(self, broker: BrokerProcess, history: HistoryProcess, agent: AgentStack, rules: RulesProcess,
                 args: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = ["-brokerURL", broker.url, "-historyURL", history.url, "-agentURL", agent.north,
                     "-rulesURL", rules.url, *args]

    def start(self) -> Self:
        self.launch(["-m", "orchestrator.cli", "dashboard", "-host", "127.0.0.1", "-port", str(self.port),
                     *self.args], self.url + "/api/config", "the dashboard")
        return self


class RulesProcess(ServiceProcess):
    def __init__(self, broker: BrokerProcess, data: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = ["-brokerURL", broker.url, "-notifyURL", self.url + "/notices", "-data", str(data)]

    def start(self) -> Self:
        self.launch(["-m", "orchestrator.cli", "rules", "-host", "127.0.0.1", "-port", str(self.port), *self.args],
                    self.url + "/version", "the rules service")
        return self


class Stack:
    def __init__(self, broker: BrokerProcess, history: HistoryProcess, agent: AgentStack, rules: RulesProcess,
                 dashboard: DashboardProcess) -> None:
        self.broker, self.history, self.agent, self.rules, self.dashboard = broker, history, agent, rules, dashboard


@pytest.fixture(scope="module")
def stack(mosquitto: Mosquitto, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started: list[ServiceProcess] = []
    try:
        history = HistoryProcess(["-data", str(tmp_path_factory.mktemp("history"))]).start()
        started.append(history)
        broker = BrokerProcess(["-multiservice", "-dbURI", "memory://", "-feedURL", history.url + "/v2/notify"]).start()
        started.append(broker)
        agent = AgentStack(broker, mosquitto.host, mosquitto.port, []).start()
        started.append(agent)
        rules = RulesProcess(broker, tmp_path_factory.mktemp("rules")).start()
        started.append(rules)
        dashboard = DashboardProcess(broker, history, agent, rules, ["-expect", "Silent=2"]).start()
        started.append(dashboard)
        yield Stack(broker, history, agent, rules, dashboard)
    finally:
        for process in reversed(started):
            process.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Chromium is not installed: apt-get install chromium chromium-driver (make system-deps)",
                    pytrace=False)
    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,900",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # noqa: BLE001 - elements come and go while the page updates
            last = exc
        else:
            if last:
                return last
        time.sleep(0.05)
    raise AssertionError(f"{what} not within {timeout} s (last: {last!r})")


def shot(driver: Any, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def console_errors(driver: Any) -> list[str]:
    """The page's errors, without the network failures it expects and handles (the map
    tiles' probe offline, a 404 for an entity type with no history yet)."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]
            and "tile.openstreetmap.org" not in entry["message"]]


def test_dashboard_live_plot_silent_map_provision(stack: Stack, browser: Any, tmp_path: Path) -> None:
    tenant = "dash" + uuid.uuid4().hex[:8]
    headers = {"fiware-service": tenant, "fiware-servicepath": "/"}
    driver = browser
    driver.get(f"{stack.dashboard.url}/?service={tenant}&servicepath=/")
    wait_for(lambda: driver.find_element(By.ID, "live-status").text == "live", 15, "the live feed")
    shot(driver, "01-opened")

    # an entity created now appears live (no reload, no polling)
    started = time.monotonic()
    response = httpx.post(stack.broker.url + "/v2/entities", headers=headers, json={
        "id": "Room1", "type": "Room", "temperature": {"type": "Number", "value": 20.5},
        "location": {"type": "geo:point", "value": "14.69, -17.44"}})
    assert response.status_code == 201, response.text
    row = wait_for(lambda: driver.find_element(By.CSS_SELECTOR, '#entity-table tr[data-id="Room1"]'), LIVE_SECONDS,
                   "Room1 in the entity list")
    assert "20.5" in row.text
    assert time.monotonic() - started < LIVE_SECONDS
    shot(driver, "02-entity-live")

    # a few updates: live values, then the plot from the history
    for value in (21.0, 22.5, 24.0):
        time.sleep(0.3)
        response = httpx.patch(stack.broker.url + "/v2/entities/Room1/attrs", headers=headers,
                               json={"temperature": {"type": "Number", "value": value}})
        assert response.status_code == 204, response.text
    wait_for(lambda: "24" in driver.find_element(By.CSS_SELECTOR, '#entity-table tr[data-id="Room1"]').text,
             LIVE_SECONDS, "the last value live")
    wait_for(lambda: len(httpx.get(stack.history.url + "/v2/entities/Room1/attrs/temperature", headers=headers)
                         .json().get("values", [])) >= 4, 10, "the values in the history")
    driver.find_element(By.CSS_SELECTOR, '#entity-table tr[data-id="Room1"]').send_keys(Keys.ENTER)  # keyboard
    wait_for(lambda: int(driver.find_element(By.ID, "plot").get_attribute("data-points") or 0) >= 4, 10,
             "the plot's points")
    assert driver.find_elements(By.CSS_SELECTOR, "#plot canvas")
    shot(driver, "03-plot")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.find_element(By.ID, "plot-csv").click()
    csv = wait_for(lambda: (downloads / "Room1.csv").exists() and (downloads / "Room1.csv").read_text(), 10,
                   "the CSV download")
    lines = csv.splitlines()
    assert lines[0] == "time,temperature"
    assert [line.split(",")[1] for line in lines[1:5]] == ["20.5", "21", "22.5", "24"]

    # a device that stops reporting turns red (expected every 2 s: red after 6 s of silence)
    response = httpx.post(stack.broker.url + "/v2/entities", headers=headers, json={
        "id": "Quiet1", "type": "Silent", "level": {"type": "Number", "value": 1}})
    assert response.status_code == 201, response.text
    badge = '#entity-table tr[data-id="Quiet1"] .fresh'
    wait_for(lambda: driver.find_element(By.CSS_SELECTOR, badge).get_attribute("data-status") == "green",
             LIVE_SECONDS, "Quiet1 fresh")
    shot(driver, "04-device-fresh")
    wait_for(lambda: driver.find_element(By.CSS_SELECTOR, badge).get_attribute("data-status") == "red", 15,
             "Quiet1 red")
    shot(driver, "05-device-red")
    driver.find_element(By.CSS_SELECTOR, 'nav a[data-view="silent"]').click()
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, '#silent-list li[data-id="Quiet1"]'), 10,
             "Quiet1 in the silent list")
    shot(driver, "06-silent-list")

    # the map: the located entity on the offline outline
    driver.find_element(By.CSS_SELECTOR, 'nav a[data-view="map"]').click()
    wait_for(lambda: int(driver.find_element(By.ID, "map").get_attribute("data-markers") or 0) >= 1, 10,
             "a marker on the map")
    assert driver.find_elements(By.CSS_SELECTOR, "#map path.leaflet-interactive")  # the entity's marker
    # from the keyboard: the list under the map centres it on the entity and shows its label
    button = driver.find_element(By.CSS_SELECTOR, '#map-list button[data-id="Room1"]')
    button.send_keys(Keys.ENTER)
    wait_for(lambda: "Room1" in driver.find_element(By.CSS_SELECTOR, "#map .leaflet-tooltip").text, 5,
             "the marker's label, opened from the keyboard")
    shot(driver, "07-map")

    # provision a device through the agent
    driver.find_element(By.CSS_SELECTOR, 'nav a[data-view="devices"]').click()
    form = driver.find_element(By.ID, "device-form")
    form.find_element(By.NAME, "device_id").send_keys("sensor01")
    form.find_element(By.NAME, "attributes").send_keys("t:temperature:Number")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, '#device-table tr[data-id="sensor01"]'), 10,
             "sensor01 in the device list")
    shot(driver, "08-provisioned")
    device = httpx.get(f"{stack.agent.north}/iot/devices/sensor01", headers=headers)
    assert device.status_code == 200, device.text
    assert device.json()["entity_type"] == "Thing"

    # edit it (its attributes, as JSON), then delete it
    driver.find_element(By.CSS_SELECTOR, 'button[aria-label="Edit sensor01"]').click()
    edit = driver.find_element(By.ID, "device-edit")
    driver.execute_script("arguments[0].value = arguments[1]", edit.find_element(By.NAME, "body"),
                          '{"attributes": [{"object_id": "t", "name": "temperature", "type": "Number"}, '
                          '{"object_id": "h", "name": "humidity", "type": "Number"}]}')
    edit.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(lambda: len(httpx.get(f"{stack.agent.north}/iot/devices/sensor01", headers=headers)
                         .json().get("attributes", [])) == 2, 10, "the edited device")
    driver.find_element(By.CSS_SELECTOR, 'button[aria-label="Delete sensor01"]').click()
    driver.switch_to.alert.accept()
    wait_for(lambda: not driver.find_elements(By.CSS_SELECTOR, '#device-table tr[data-id="sensor01"]'), 10,
             "sensor01 gone")
    assert httpx.get(f"{stack.agent.north}/iot/devices/sensor01", headers=headers).status_code == 404

    # the subscriptions, the live feed's among them, with their counters
    driver.find_element(By.CSS_SELECTOR, 'nav a[data-view="subscriptions"]').click()
    feed = wait_for(lambda: [r for r in driver.find_elements(By.CSS_SELECTOR, "#sub-table tbody tr")
                             if "waziup dashboard live feed" in r.text], 10, "the live feed's subscription")
    assert "active" in feed[0].text
    shot(driver, "09-subscriptions")

    # a rule: created from the form (its example), disabled, enabled
    driver.find_element(By.CSS_SELECTOR, 'nav a[data-view="rules"]').click()
    wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "#rule-form textarea").get_attribute("value"), 10,
             "the rule example")
    driver.find_element(By.CSS_SELECTOR, "#rule-form button[type=submit]").click()
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, '#rule-table tr[data-name="too-hot"][data-enabled="true"]'),
             10, "the rule, enabled")
    driver.find_element(By.CSS_SELECTOR, 'button[aria-label="Disable too-hot"]').click()
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, '#rule-table tr[data-name="too-hot"][data-enabled="false"]'),
             10, "the rule, disabled")
    assert httpx.get(f"{stack.rules.url}/rules/too-hot", headers=headers).json()["data"]["enabled"] is False
    shot(driver, "10-rules")

    # a phone's screen: the same page, narrower
    driver.set_window_size(390, 844)
    driver.find_element(By.CSS_SELECTOR, 'nav a[data-view="entities"]').click()
    wait_for(lambda: driver.find_element(By.CSS_SELECTOR, '#entity-table tr[data-id="Room1"]'), 5, "the list")
    shot(driver, "11-phone")
    assert console_errors(driver) == []
