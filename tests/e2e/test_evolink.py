"""With an EvoLink key set and the fake EvoLink running, a browser submission goes through the
real client end to end: the reference is uploaded to the file service, the task is created and
followed by a real worker, the images are stored, and the uploaded reference is deleted."""

import io

import pytest
from PIL import Image
from playwright.sync_api import expect

from gallery.models import GenerationTask, Status
from tests.factories import PASSWORD
from tests.e2e.conftest import worker_process
from tests.fakes.evolink import FakeEvoLink

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def evolink(settings):
    with FakeEvoLink() as fake:
        fake.use_in(settings)  # the web side (live server) sees the key and picks EvoLink
        yield fake


@pytest.fixture
def worker(evolink, live_server, tmp_path):
    with worker_process(tmp_path / "worker.log", EVOLINK_API_KEY=evolink.api_key,
                        EVOLINK_BASE_URL=evolink.url, EVOLINK_FILES_URL=evolink.url) as process:
        yield process


def test_a_browser_submission_completes_through_the_evolink_client(live_server, page, alice, team, evolink, worker, tmp_path):
    reference = tmp_path / "mood.webp"
    Image.new("RGB", (120, 90), "olive").save(reference, "WEBP", lossless=True)

    page.goto(f"{live_server.url}/login/")
    page.get_by_label("E-mail or username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.locator("[data-file-input]").set_input_files(str(reference))
    expect(page.locator(".ref-tile")).to_have_count(1)
    page.locator("textarea[name=prompt]").fill("An olive grove at noon")
    page.locator("input[name=n]").fill("2")
    page.locator("button.generate").click()

    row = page.locator("#history .task-row").first
    expect(row).to_have_attribute("data-status", "completed", timeout=30_000)
    expect(row.locator(".thumbs img")).to_have_count(2)

    task = GenerationTask.objects.get()
    assert (task.status, task.provider, task.images.count()) == (Status.COMPLETED, "evolink", 2)
    created = evolink.created[0]
    assert created["model"] == "doubao-seedream-4.0" and created["n"] == 2
    assert created["prompt"] == "An olive grove at noon\n\nGenerate 2 different images."
    upload = evolink.uploads[0]
    assert upload["content_type"] == "image/png"  # WEBP went upstream as PNG
    assert Image.open(io.BytesIO(upload["data"])).format == "PNG"
    assert evolink.deleted == [upload["file_id"]]  # the file slot is freed once the task is final
