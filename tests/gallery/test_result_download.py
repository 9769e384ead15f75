"""Storing results downloaded over HTTP from a real local server, faults included."""

import hashlib
import io
import time

import pytest
from PIL import Image

from gallery import pipeline
from gallery.models import GenerationTask, Status
from gallery.providers import http
from tests.factories import make_task
from tests.fakes.server import FakeServer, send_bytes


def png(width=200, height=150, colour="navy"):
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


class HttpResults:
    """A provider whose results are plain HTTP links, as the real upstreams' are."""

    def open_result(self, url):
        return http.open_url(url)

    def delete_reference(self, file_id):
        pass


@pytest.fixture
def server():
    with FakeServer() as fake:
        yield fake


@pytest.fixture
def storing_task(team, alice, monkeypatch):
    monkeypatch.setattr(pipeline, "get_provider", lambda name: HttpResults())

    def make(*paths, server):
        task = make_task(team, alice, n=len(paths))
        GenerationTask.objects.filter(pk=task.pk).update(
            status=Status.STORING, result_urls=[server.url + p for p in paths]
        )
        task.refresh_from_db()
        assert task.take_lease()  # store_results runs under a worker's lease
        return task

    return make


def test_it_stores_the_original_bytes_exactly_as_received(server, storing_task):
    data = png()
    server.routes["/a.png"] = send_bytes(data)
    task = storing_task("/a.png", server=server)
    pipeline.store_results(task)
    image = task.images.get()
    with image.file.open("rb") as f:
        assert f.read() == data
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert (image.width, image.height, image.bytes) == (200, 150, len(data))
    assert server.received[0].headers["user-agent"].startswith("SeedreamStudio/")
    task.refresh_from_db()
    assert task.status == Status.COMPLETED


def test_an_expired_link_skips_that_image_and_keeps_the_others(server, storing_task):
    server.routes["/ok.png"] = send_bytes(png())
    task = storing_task("/ok.png", "/gone.png", server=server)
    pipeline.store_results(task)
    task.refresh_from_db()
    assert task.status == Status.COMPLETED
    assert task.images.count() == 1
    assert task.error_message == "1 of 2 images could not be downloaded from the provider."


@pytest.mark.parametrize(
    "route",
    [
        send_bytes(b"<html>not an image</html>", content_type="text/html"),
        send_bytes(png()[:300]),  # truncated
    ],
    ids=["wrong-content", "truncated"],
)
def test_a_result_that_is_not_a_whole_image_is_not_stored(route, server, storing_task, settings):
    server.routes["/bad"] = route
    task = storing_task("/bad", server=server)
    pipeline.store_results(task)
    task.refresh_from_db()
    assert task.status == Status.FAILED
    assert task.error_code == "download_failed"
    assert not (settings.MEDIA_ROOT / "results").exists() or not any((settings.MEDIA_ROOT / "results").rglob("*.*"))


def test_a_decompression_bomb_is_refused(server, storing_task):
    out = io.BytesIO()
    Image.new("1", (12000, 12000)).save(out, "PNG")  # a few kB on the wire, 144 M pixels decoded
    server.routes["/bomb.png"] = send_bytes(out.getvalue())
    task = storing_task("/bomb.png", server=server)
    pipeline.store_results(task)
    task.refresh_from_db()
    assert task.status == Status.FAILED and not task.images.exists()


def test_an_oversized_result_is_cut_off_while_streaming(server, storing_task, settings):
    settings.MAX_RESULT_BYTES = 1024 * 1024
    sent = []

    def endless(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        handler.send_header("Content-Length", str(200 * 1024 * 1024))
        handler.end_headers()
        for _ in range(200):
            handler.wfile.write(b"\0" * 1024 * 1024)
            sent.append(1)

    server.routes["/huge.png"] = endless
    task = storing_task("/huge.png", server=server)
    pipeline.store_results(task)
    task.refresh_from_db()
    assert task.status == Status.FAILED
    assert len(sent) < 50  # the download stopped long before the 200 MB were sent


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_server_error_is_retried_later(status, server, storing_task):
    server.routes["/flaky.png"] = send_bytes(b"oops", content_type="text/plain", status=status)
    task = storing_task("/flaky.png", server=server)
    pipeline.store_results(task)
    task.refresh_from_db()
    assert task.status == Status.STORING
    assert f"HTTP {status}" in task.error_message
    server.routes["/flaky.png"] = send_bytes(png())
    pipeline.store_results(task)
    task.refresh_from_db()
    assert task.status == Status.COMPLETED and task.images.count() == 1


def test_a_dropped_connection_is_retried_later(server, storing_task):
    def drop(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        handler.wfile.write(b"\x89PNG partial")
        handler.connection.shutdown(2)

    server.routes["/drop.png"] = drop
    task = storing_task("/drop.png", server=server)
    pipeline.store_results(task)
    task.refresh_from_db()
    assert task.status == Status.STORING
    assert "download failed" in task.error_message


def test_a_slow_answer_times_out_and_is_retried_later(server, storing_task, monkeypatch):
    monkeypatch.setattr(http, "RESULT_DEADLINE_SECONDS", 0.3)

    def slow(handler):
        time.sleep(1.5)
        send_bytes(png())(handler)

    server.routes["/slow.png"] = slow
    task = storing_task("/slow.png", server=server)
    started = time.monotonic()
    pipeline.store_results(task)
    assert time.monotonic() - started < 1.4
    task.refresh_from_db()
    assert task.status == Status.STORING
    assert "took longer than the 0.3 seconds allowed" in task.error_message
