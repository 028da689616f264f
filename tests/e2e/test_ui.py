"""The Airflow UI in headless Chromium: log in, find the generated DAGs, open the Lytics connection form.

Uses the session's LocalExecutor stack (see ``airflow_stack.shared_stack``). Screenshots go to a temp
folder; with ``LYTICS_UPDATE_SCREENSHOTS=1`` they replace the README's images in ``docs/``.
Skips with the reason when Chromium or Playwright is missing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.airflow_stack import (
    ADMIN,
    MAPP_DAG,
    REPO,
    AirflowStack,
    LyticsServices,
    rest_client,
    shared_stack,
    state_of,
    trigger_and_wait,
)

pytestmark = pytest.mark.e2e
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, airflow_home: dict[str, str], tmp_path_factory) -> Any:
    return shared_stack(request.config, airflow_home, tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots are saved: ``docs/`` when asked to update them, else a temp folder."""
    if os.environ.get("LYTICS_UPDATE_SCREENSHOTS") == "1":
        return REPO / "docs"
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, stack: tuple[AirflowStack, LyticsServices]) -> Iterator[Any]:
    """A browser page logged in as admin through the simple auth manager's form."""
    airflow, _ = stack
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{airflow.url}/dags")
    page.wait_for_url(re.compile(r".*/auth/login.*"))
    page.fill("input[name=username]", ADMIN)
    page.fill("input[name=password]", airflow.password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/dags$"))
    try:
        yield page
    finally:
        context.close()


def generated_dag_ids() -> list[str]:
    """DAG ids the generator makes from the example configs (default ``lytics_<file stem>``)."""
    import yaml

    ids = []
    for path in sorted((REPO / "include" / "jobs").glob("*.yaml")):
        config = yaml.safe_load(path.read_text()) or {}
        ids.append(config.get("dag_id") or f"lytics_{path.stem}")
    return ids


def test_generated_dags_are_listed(page: Any, shots: Path) -> None:
    expected = len(generated_dag_ids())
    assert expected > 0
    # The heading reads "0 Dags" until the list query answers; wait for the count, then check it.
    heading = page.get_by_text(re.compile(r"^[1-9]\d* Dags$"))
    heading.wait_for()
    listed = int(heading.inner_text().split()[0])
    assert listed >= expected
    page.get_by_role("button", name="Show table view").click()
    page.get_by_role("link", name=generated_dag_ids()[0], exact=True).wait_for()
    page.screenshot(path=str(shots / "airflow-dags.png"))

    page.get_by_placeholder(re.compile("Search Dags")).fill("mapp_high_value")
    page.get_by_role("link", name=MAPP_DAG, exact=True).click()
    page.wait_for_url(re.compile(rf".*/dags/{MAPP_DAG}.*"))
    for task in ("scan", "deliver", "report"):
        page.get_by_text(task, exact=True).first.wait_for()
    page.screenshot(path=str(shots / "mapp-dag.png"))
    assert (shots / "airflow-dags.png").stat().st_size > 10_000


def test_lytics_connection_form(page: Any, stack: tuple[AirflowStack, LyticsServices], shots: Path) -> None:
    airflow, _ = stack
    page.goto(f"{airflow.url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.locator("input[name=connection_id]").fill("lytics_default")
    kind = dialog.get_by_role("combobox")
    kind.click()
    kind.fill("Lytics")
    page.get_by_role("option", name="Lytics", exact=True).click()
    for label in ("API URL", "API Token"):
        dialog.get_by_text(label, exact=True).wait_for()
    assert dialog.get_by_placeholder("https://api.lytics.io").count() == 1
    assert dialog.get_by_placeholder("Lytics API token").get_attribute("type") == "password"
    page.screenshot(path=str(shots / "lytics-connection-form.png"))
    dialog.get_by_text("Extra Fields", exact=True).click()
    for label in ("Account ID", "Bulk upload URL"):
        dialog.get_by_text(label, exact=True).wait_for()
    page.screenshot(path=str(shots / "lytics-connection-extras.png"))
    assert (shots / "lytics-connection-form.png").stat().st_size > 10_000


def test_a_finished_run_shows_its_report_note_and_the_schedule_in_words(
    page: Any, stack: tuple[AirflowStack, LyticsServices], shots: Path
) -> None:
    airflow, _ = stack
    with rest_client(airflow) as api:
        run: Any = trigger_and_wait(api, {"audience": "vip", "full_refresh": True})
    assert state_of(run) == "success", airflow.log_tail("scheduler")

    page.goto(f"{airflow.url}/dags/{MAPP_DAG}/runs/{run.dag_run_id}")
    note = re.compile(r"300 members: 300 enters, 0 exits, 0 changes; delivered 300")
    page.get_by_text(note).first.wait_for()
    page.screenshot(path=str(shots / "run-report-note.png"))

    page.goto(f"{airflow.url}/dags/{MAPP_DAG}")
    page.get_by_text("daily at 06:00 Europe/Berlin").first.wait_for()
    page.screenshot(path=str(shots / "schedule-in-words.png"))
    assert (shots / "run-report-note.png").stat().st_size > 10_000
