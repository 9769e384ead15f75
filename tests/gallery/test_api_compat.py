"""Compatibility (issue 14): clients written for EvoLink, pointed at the studio with a studio key,
work unchanged. First the studio's own EvoLink client (the one the provider tests run against the
fake EvoLink); then a client written only from EvoLink's published API reference, as a third party
would; then the whole path with a real worker process, the fake EvoLink as the upstream, and a
signed callback."""

import io
import json
import os
import signal

import httpx
import pytest
from django.test import override_settings
from PIL import Image
from standardwebhooks import Webhook

from gallery.models import GenerationTask, Status
from gallery.providers.base import GenerationRequest, ProviderError
from gallery.providers.evolink import EvoLinkProvider
from tests.factories import png_bytes, run_until_final
from tests.fakes.evolink import FakeEvoLink
from tests.gallery.api_kit import make_key
from tests.gallery.test_api_callbacks import Receiver
from tests.workers import start_worker, wait_until, worker_env

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def upstream(settings):
    """The studio's own upstream: the fake EvoLink."""
    with FakeEvoLink() as fake:
        fake.use_in(settings)
        yield fake


def client_for(live_server, raw_key):
    """The studio's EvoLink client, configured the way a script would be: base URL and key only."""
    with override_settings(EVOLINK_API_KEY=raw_key, EVOLINK_BASE_URL=live_server.url,
                           EVOLINK_FILES_URL=live_server.url):
        return EvoLinkProvider()


def request(prompt, urls=(), n=2, callback_url=""):
    return GenerationRequest(client_ref="script", prompt=prompt, model="doubao-seedream-4.0", size="1:1",
                             quality="1K", n=n, priority="standard", reference_urls=tuple(urls),
                             callback_url=callback_url)


def test_the_evolink_client_creates_polls_and_downloads_unchanged(live_server, upstream, team, alice):
    client = client_for(live_server, make_key(team, alice)[1])

    created = client.create(request("Two foxes"))
    assert created.status == "pending"
    task = GenerationTask.objects.get(pk=created.id)
    assert task.team == team and upstream.created == []  # nothing went upstream inside the request
    run_until_final(task)
    done = client.get(created.id)
    assert done.status == "completed" and done.progress == 100 and len(done.results) == 2
    for url in done.results:
        assert url.startswith(live_server.url + "/v1/results/")
        with client.open_result(url) as chunks:
            data = b"".join(chunks)
        with Image.open(io.BytesIO(data)) as image:
            assert image.size == (1024, 1024)


def test_the_evolink_client_uploads_a_reference_then_generates_with_it(live_server, upstream, team, alice):
    client = client_for(live_server, make_key(team, alice)[1])
    file_id, file_url = client.deliver_reference(png_bytes(96, 64, "green"), "PNG")
    assert file_id.startswith("file_") and file_url.startswith(live_server.url)

    created = client.create(request("Use the reference", [file_url], n=1))
    task = run_until_final(GenerationTask.objects.get(pk=created.id))
    assert task.status == Status.COMPLETED
    [sent] = upstream.uploads  # the studio sent the reference on to its own upstream
    with Image.open(io.BytesIO(sent["data"])) as image:
        assert image.size == (96, 64)
    client.delete_reference(file_id)
    with pytest.raises(ProviderError) as refused:
        client.create(request("Deleted reference", [file_url], n=1))
    assert refused.value.code == "invalid_request_error"


def test_the_evolink_client_reads_errors_the_way_it_reads_evolinks(live_server, upstream, team, alice):
    client = client_for(live_server, "sk-studio-notakeynotakeynotakey")
    with pytest.raises(ProviderError) as refused:
        client.create(request("Hi"))
    assert refused.value.code == "authentication_error"
    client = client_for(live_server, make_key(team, alice)[1])
    assert client.credits()["user"] > 0  # a team without a budget may spend


def test_a_third_party_client_written_from_evolinks_reference_works(live_server, upstream, team, alice, settings):
    """Only what EvoLink's public API reference says: Bearer auth; POST /v1/images/generations with
    model/prompt/size/quality/n → a task object with id and status; GET /v1/tasks/{id} until
    status is completed, then download `results`; the file service at /api/v1/files/upload/base64
    with base64_data → data.file_url, usable in image_urls; GET /v1/credits → data.user."""
    raw = make_key(team, alice)[1]
    headers = {"Authorization": f"Bearer {raw}", "Content-Type": "application/json"}
    base = live_server.url
    with httpx.Client(base_url=base, headers=headers, timeout=10) as http:
        credits = http.get("/v1/credits").json()
        assert credits["success"] is True and "remaining_credits" in credits["data"]["user"]

        import base64

        encoded = "data:image/png;base64," + base64.b64encode(png_bytes(80, 80, "purple")).decode()
        uploaded = http.post("/api/v1/files/upload/base64", json={"base64_data": encoded}).json()
        assert uploaded["success"] is True and uploaded["code"] == 200
        file_url = uploaded["data"]["file_url"]

        task = http.post("/v1/images/generations", json={
            "model": "doubao-seedream-4.0", "prompt": "A cat in a teacup", "size": "1:1", "quality": "1K", "n": 1,
            "image_urls": [file_url],
        }).json()
        assert task["object"] == "image.generation.task" and task["status"] == "pending"
        assert task["usage"]["billing_rule"] == "per_call" and task["task_info"]["can_cancel"] is True

        run_until_final(GenerationTask.objects.get(pk=task["id"]))  # the studio's worker, in-process here
        status = http.get(f"/v1/tasks/{task['id']}").json()
        assert status["status"] == "completed" and status["progress"] == 100
        image = httpx.get(status["results"][0], timeout=10)  # no key: results are plain links
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"

        error = http.post("/v1/images/generations", json={"model": "doubao-seedream-4.0", "prompt": ""}).json()
        assert set(error["error"]) >= {"code", "message", "type"} and error["error"]["code"] == 400


def test_end_to_end_with_a_real_worker_the_fake_upstream_and_a_signed_callback(live_server, team, alice, settings,
                                                                             tmp_path):
    key, raw, secret = make_key(team, alice)
    with FakeEvoLink() as upstream, Receiver(500, 200) as receiver:
        env = {
            **worker_env(settings.MEDIA_ROOT),
            "EVOLINK_API_KEY": upstream.api_key,
            "EVOLINK_BASE_URL": upstream.url,
            "EVOLINK_FILES_URL": upstream.url,
            "TASK_LEASE_SECONDS": "30",
        }
        settings.EVOLINK_API_KEY = "sk-evo-fake"  # the web side prices the task at EvoLink too
        client = client_for(live_server, raw)
        _, file_url = client.deliver_reference(png_bytes(64, 64, "orange"), "PNG")
        with open(tmp_path / "worker.log", "w") as log:
            worker = start_worker(env, log)
            try:
                created = client.create(request("A fox [evolink:polls=2]", [file_url], n=2,
                                                callback_url=f"{receiver.url}/hook"))
                assert wait_until(lambda: client.get(created.id).status == "completed", 60), (
                    (tmp_path / "worker.log").read_text()[-3000:])
                done = client.get(created.id)
                for url in done.results:
                    with client.open_result(url) as chunks:
                        assert b"".join(chunks).startswith(b"\x89PNG")
                # The first callback attempt gets a 500; the worker retries 5 s later.
                assert wait_until(lambda: len(receiver.hooks) >= 2, 30), (tmp_path / "worker.log").read_text()[-3000:]
            finally:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(10)
    task = GenerationTask.objects.get(pk=created.id)
    assert task.status == Status.COMPLETED and task.provider == "evolink" and task.api_key == key
    assert task.images.count() == 2 and upstream.created[0]["image_urls"]
    payload = Webhook(secret).verify(receiver.hooks[-1].body, receiver.hooks[-1].headers)
    assert payload["id"] == created.id and payload["status"] == "completed" and len(payload["results"]) == 2
    assert json.loads(receiver.hooks[0].body) == payload
