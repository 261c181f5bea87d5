"""Make docs/dashboard.png: the dashboard mid-run, in headless Chromium, against a real `python server.py`.

    python docs/screenshot.py            # about 40 s: traffic from a few users, then the picture

Needs Debian's chromium and chromium-driver (as the browser tests do); nothing is downloaded.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

from simulator.testing import ServerProcess  # noqa: E402

TOKEN = "screenshot-token"  # noqa: S105 - a throwaway server on 127.0.0.1
SETTINGS = {"ADMIN_TOKEN": TOKEN, "TRANSLATION_DELAY": 12, "PREMIUM_DELAY_FACTOR": 0.5, "ERROR_RATE": 0.3,
            "WORKERS": 3, "RATE_LIMIT": 1000, "RANDOM_SEED": 11}
USERS = ("alice", "bob", "carol", "dmitri", "emma")


def main() -> int:
    """Run traffic against a fresh server, open the dashboard, save the picture."""
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        print("needs chromium and chromedriver on PATH (Debian: apt-get install chromium chromium-driver)")
        return 2
    os.environ.setdefault("SE_OFFLINE", "true")
    rng = random.Random(3)  # noqa: S311 - traffic for a picture
    with ServerProcess(SETTINGS, cwd=tempfile.mkdtemp(prefix="dashboard-server-")) as server:
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
                     "--disable-background-networking", "--disable-component-update", "--hide-scrollbars",
                     "--window-size=1280,1160", "--force-device-scale-factor=1"):
            options.add_argument(flag)
        profile = tempfile.mkdtemp(prefix="dashboard-shot-")
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
        try:
            driver.get(f"{server.url}/dashboard")
            driver.find_element(By.ID, "token").send_keys(TOKEN)
            driver.find_element(By.ID, "token-save").click()
            started = time.monotonic()
            while time.monotonic() - started < 36:
                user = rng.choice(USERS)
                role = "premium" if rng.random() < 0.35 else "free"
                requests.post(f"{server.url}/translate", json={"role": role}, headers={"X-User-Id": user}, timeout=5)
                time.sleep(rng.uniform(0.5, 2.0))
            driver.find_element(By.CSS_SELECTOR, "#running .user").click()  # open one user's history
            time.sleep(1.5)
            driver.save_screenshot(str(ROOT / "docs" / "dashboard.png"))
        finally:
            driver.quit()
            shutil.rmtree(profile, ignore_errors=True)
    print(f"wrote {ROOT / 'docs' / 'dashboard.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
