# Copyright (c) txmsg contributors. See LICENSE for details.
"""
End-to-end test of the dashboard in a real browser (Debian's chromium,
driven by selenium through chromedriver; C{scripts/ensure-browser.sh}
installs both): a C{twistd txmsg-worker} and a C{twistd txmsg-dashboard}
on the real RabbitMQ and Redis.

The overview lists the worker and its queue; a poison task shows up in the
dead letters without a reload; clicking Requeue (and confirming) sends it
back, and the queue's figures on the page change without a reload; the task
page (through the search box) and the schedule page render.  A
screenshot of each page is saved under the test's temporary directory (and
copied to C{$TXMSG_SCREENSHOTS} when set, which is how C{docs/img/} is
refreshed: C{make screenshots}).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import Any

from twisted.trial.unittest import TestCase

from tests._amqp_support import SHARED_URL
from tests._process import TwistdProcess, free_port, script
from tests._worker_support import (
    REDIS_URL,
    Client,
    WorkerProcess,
    delete_worker_queues,
    require_broker,
    unique,
    worker_env,
)

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,860",
)


def browser(profile: str) -> Any:
    """
    A headless chromium under selenium with a fresh profile.
    """
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            raise AssertionError(
                "{} is missing: run scripts/ensure-browser.sh (apt-get install chromium "
                "chromium-driver)".format(path)
            )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument("--user-data-dir=" + profile)
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


class DashboardBrowserTests(TestCase):
    """
    The dashboard in chromium.
    """

    timeout = 120

    def setUp(self) -> None:
        require_broker()
        self.queue = unique("dash")
        self.name = unique("dash-worker")
        self.addCleanup(delete_worker_queues, [self.queue])
        self.worker = WorkerProcess(
            [self.queue],
            "--redis",
            REDIS_URL,
            "--name",
            self.name,
            "--max-retries",
            "0",
        )
        self.worker.env = worker_env()
        self.addCleanup(self.worker.cleanup)
        self.addCleanup(self.worker.terminate)  # first: leaves the roster cleanly
        self.worker.start()
        self.port = free_port()
        self.dashboard = TwistdProcess(
            "txmsg-dashboard",
            [
                "--listen",
                "tcp:{}".format(self.port),
                "--amqp",
                SHARED_URL,
                "--redis",
                REDIS_URL,
                "--queue",
                self.queue,
                "--interval",
                "0.5",
                "--schedule",
                "txmsg.test._schedule_sample",
            ],
            ready="txmsg dashboard on",
            env=worker_env(),
        )
        self.addCleanup(self.dashboard.cleanup)
        self.dashboard.start()
        self.shots = os.path.abspath(self.mktemp())
        os.makedirs(self.shots)
        profile = tempfile.mkdtemp(prefix="txmsg-chromium-")
        self.addCleanup(shutil.rmtree, profile, True)
        self.driver = browser(profile)
        self.addCleanup(self.driver.quit)

    def screenshot(self, name: str) -> None:
        path = os.path.join(self.shots, name + ".png")
        self.driver.save_screenshot(path)
        target = os.environ.get("TXMSG_SCREENSHOTS")
        if target:
            os.makedirs(target, exist_ok=True)
            shutil.copy(path, os.path.join(target, "dashboard-" + name + ".png"))

    def wait_text(self, css: str, text: str, timeout: float = 20) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        # Read it in the page: the live parts are replaced as they refresh,
        # so an element found a moment ago may be gone.
        def shows(driver: Any) -> bool:
            return bool(
                driver.execute_script(
                    "var e = document.querySelector(arguments[0]);"
                    "return e !== null && e.textContent.trim() === arguments[1];",
                    css,
                    text,
                )
            )

        WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(
            shows, "{!r} never showed {!r}".format(css, text)
        )

    def control(self, command: str) -> None:
        subprocess.run(
            [script("txmsg"), "control", "--redis", REDIS_URL, self.name, command],
            check=True,
            capture_output=True,
            env=worker_env(),
            timeout=30,
        )

    def test_requeue_a_poison_task(self) -> None:
        """
        The whole walk through the dashboard, with screenshots.
        """
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as EC
        from selenium.webdriver.support.ui import WebDriverWait

        driver, queue = self.driver, self.queue
        row = 'tr[data-queue="{}"]'.format(queue)
        driver.get("http://127.0.0.1:{}/".format(self.port))
        self.wait_text('tr[data-worker="{}"] .state'.format(self.name), "running")
        self.wait_text(row + " td.num:nth-of-type(4)", "1")  # one consumer: the worker
        driver.execute_script("window.txmsgNotReloaded = true;")

        client = Client()
        self.addCleanup(client.connection.close)
        for n in range(5):
            client.submit(queue, "square", n, reply=False)
        task_id = client.submit(queue, "fail", "poison", reply=False)
        self.wait_text(row + " td.dead", "1")  # live, no reload
        self.assertTrue(driver.execute_script("return window.txmsgNotReloaded === true;"))
        self.screenshot("overview")

        # Paused, the worker leaves the requeued task in the queue to be seen.
        self.control("pause")
        self.wait_text('tr[data-worker="{}"] .state'.format(self.name), "paused")
        driver.find_element(By.LINK_TEXT, queue).click()
        dead_row = 'tr[data-key="{}"]'.format(task_id)
        WebDriverWait(driver, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, dead_row)))
        self.wait_text(dead_row + " td:nth-of-type(4)", "ValueError: poison")
        WebDriverWait(driver, 20).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "svg.chart polyline")
        )
        self.screenshot("queue")

        driver.find_element(By.CSS_SELECTOR, dead_row + " a").click()
        WebDriverWait(driver, 20).until(EC.title_contains("Dead letter"))
        self.assertIn("ValueError", driver.find_element(By.TAG_NAME, "main").text)
        self.screenshot("dead-letter")
        driver.back()

        WebDriverWait(driver, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, dead_row)))
        self.wait_text(row + " td.ready", "0")
        driver.execute_script("window.txmsgNotReloaded = true;")
        driver.find_element(By.CSS_SELECTOR, dead_row + " button").click()
        WebDriverWait(driver, 10).until(EC.alert_is_present())
        alert = driver.switch_to.alert
        self.assertIn("Requeue this dead letter to " + queue, alert.text)
        alert.accept()
        self.wait_text("#flash", "requeued 1 dead letter(s) of " + queue)
        self.wait_text(row + " td.ready", "1")
        self.wait_text(row + " td.dead", "0")
        self.assertEqual(driver.find_elements(By.CSS_SELECTOR, dead_row), [])
        self.assertTrue(driver.execute_script("return window.txmsgNotReloaded === true;"))
        self.screenshot("requeued")

        # The task page, through the header's search box, and the schedule.
        box = driver.find_element(By.NAME, "id")
        box.send_keys(task_id + "\n")
        WebDriverWait(driver, 20).until(EC.title_contains("Task " + task_id))
        self.assertIn(task_id, driver.find_element(By.TAG_NAME, "main").text)
        self.screenshot("task")
        driver.find_element(By.LINK_TEXT, "Schedule").click()
        WebDriverWait(driver, 20).until(EC.title_contains("Schedule"))
        self.assertIn("every 1s catch-up", driver.find_element(By.TAG_NAME, "main").text)
        self.screenshot("schedule")
        self.control("resume")
