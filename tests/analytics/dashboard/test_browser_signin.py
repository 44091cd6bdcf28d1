"""Signing in to the dashboard in a real browser (Debian's Chromium, headless, as in
test_browser.py), on the whole platform run as users run it: ``waziup run -auth``.

A user whose organization holds a role in the platform's application opens the dashboard,
is sent to the identity manager's sign-in page, signs in and allows, and comes back to the
dashboard: the page names them, offers their organization's tenant (not the default one,
which they may not read), and an entity the test creates in that tenant appears live. They
sign out and are sent to sign in again. Screenshots go to ``tmp/artifacts/dashboard/``.
"""

from __future__ import annotations

from typing import Any

import httpx
from selenium.webdriver.common.by import By

from tests.analytics.dashboard.test_browser import LIVE_SECONDS, browser, console_errors, shot, wait_for
from tests.test_auth_platform import Platform, admin_token, organization_viewer, platform

__all__ = ["browser", "platform"]  # the fixtures: the browser of test_browser.py, `waziup run -auth` of test_auth_platform.py


def test_sign_in_see_live_sign_out(platform: Platform, browser: Any) -> None:
    organization_viewer(platform, "erin", "farm7")
    driver = browser
    driver.get(platform.dashboard + "/")
    wait_for(lambda: driver.find_element(By.NAME, "password"), 15, "the identity manager's sign-in page")
    assert driver.current_url.startswith(platform.idm.replace("127.0.0.1", "localhost") + "/oauth2/authorize?")
    shot(driver, "signin-1-identity-manager")
    driver.find_element(By.NAME, "username").send_keys("erin@test.com")
    driver.find_element(By.NAME, "password").send_keys("erin-pass-1234")
    driver.find_element(By.CSS_SELECTOR, 'button[value="allow"]').click()
    wait_for(lambda: driver.find_element(By.ID, "account-name").text == "erin", 15, "the signed-in user's name")
    assert driver.current_url.startswith(platform.dashboard + "/")
    assert driver.find_element(By.ID, "tenant").get_attribute("value") == "farm7"  # not the default tenant
    options = [o.get_attribute("value") for o in driver.find_elements(By.CSS_SELECTOR, "#tenants option")]
    assert options == ["farm7"]
    wait_for(lambda: driver.find_element(By.ID, "live-status").text == "live", 15, "the live feed")
    shot(driver, "signin-2-signed-in")

    made = httpx.post(platform.broker + "/v2/entities", json={
        "id": "Barn1", "type": "Barn", "temperature": {"value": 30, "type": "Number"}},
        headers={"Fiware-Service": "farm7", "Fiware-ServicePath": "/", "Authorization": f"Bearer {admin_token(platform)}"})
    assert made.status_code == 201, made.text
    wait_for(lambda: driver.find_element(By.CSS_SELECTOR, '#entity-table tr[data-id="Barn1"]'), LIVE_SECONDS,
             "the entity created in farm7, live")
    shot(driver, "signin-3-entity-live")
    assert console_errors(driver) == []

    driver.find_element(By.ID, "sign-out").click()
    wait_for(lambda: driver.find_element(By.NAME, "password"), 15, "the sign-in page again, after signing out")
    shot(driver, "signin-4-signed-out")
    assert httpx.get(platform.dashboard + "/api/broker/v2/entities", headers={"Fiware-Service": "farm7"}).status_code == 401
