"""Storing results downloaded over HTTP from a real local server, faults included."""

import hashlib
import io
import threading
import time

import pytest
from django.db import connection
from PIL import Image

from gallery import catalog, pipeline
from gallery.images.decode import decoded_bytes
from gallery.models import GenerationTask, LeaseLost, Status
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


# Several at once ------------------------------------------------------------------------------


class Gate:
    """A route for every result that counts the downloads under way, and holds each one until
    `width` are under way (or every download has started), so the most seen at once is exactly
    how many the store runs together, whatever the timing."""

    def __init__(self, data, width, total):
        self.data, self.width, self.total = data, width, total
        self.changed = threading.Condition()
        self.under_way = self.started = self.most = 0
        self.waited_in_vain = False

    def __call__(self, handler):
        with self.changed:
            self.under_way += 1
            self.started += 1
            self.most = max(self.most, self.under_way)
            self.changed.notify_all()
            if not self.changed.wait_for(lambda: self.under_way >= self.width or self.started == self.total, 5):
                self.waited_in_vain = True
        try:
            send_bytes(self.data)(handler)
        finally:
            with self.changed:
                self.under_way -= 1


def test_fifteen_results_download_store_parallel_at_a_time(server, storing_task, settings, monkeypatch):
    settings.STORE_PARALLEL = 3
    gate = Gate(png(), width=3, total=15)
    paths = [f"/{i}.png" for i in range(15)]
    for path in paths:
        server.routes[path] = gate
    task = storing_task(*paths, server=server)
    threads_with_a_connection = []

    def noting_connections(stage):
        def run(*args):
            try:
                return stage(*args)
            finally:
                if connection.connection is not None:  # this thread's own connection, if it opened one
                    threads_with_a_connection.append(threading.current_thread().name)
        return run

    monkeypatch.setattr(pipeline, "download_result", noting_connections(pipeline.download_result))
    monkeypatch.setattr(pipeline, "check_result", noting_connections(pipeline.check_result))

    pipeline.store_results(task)

    assert gate.most == 3 and not gate.waited_in_vain
    assert threads_with_a_connection == []
    task.refresh_from_db()
    assert task.status == Status.COMPLETED and task.error_message == ""
    assert sorted(task.images.values_list("index", flat=True)) == list(range(15))


def test_downloads_go_on_while_earlier_results_are_checked(server, storing_task, settings, monkeypatch):
    settings.STORE_PARALLEL = 1  # one download at a time, yet the link never waits for a decode
    for i in range(3):
        server.routes[f"/{i}.png"] = send_bytes(png())
    task = storing_task(*[f"/{i}.png" for i in range(3)], server=server)
    check, checks, downloads_seen_by_the_first_check = pipeline.check_with_thumbnail, [], []

    def slow_first_check(*args, **kwargs):
        checks.append(args)
        if len(checks) == 1:
            deadline = time.monotonic() + 5
            while len(server.received) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            downloads_seen_by_the_first_check.append(len(server.received))
        return check(*args, **kwargs)

    monkeypatch.setattr(pipeline, "check_with_thumbnail", slow_first_check)

    pipeline.store_results(task)

    assert downloads_seen_by_the_first_check == [3]
    task.refresh_from_db()
    assert task.status == Status.COMPLETED and task.images.count() == 3


def test_the_check_threads_are_kept_from_task_to_task(server, storing_task, monkeypatch):
    """Storage clients are made per thread (S3: 0.1–0.2 s each): new threads for every task
    would make them again for every task."""
    check, threads = pipeline.check_result, set()

    def noting_the_thread(*args):
        threads.add(threading.get_ident())
        return check(*args)

    monkeypatch.setattr(pipeline, "check_result", noting_the_thread)
    for task_number in range(3):
        paths = [f"/{task_number}-{i}.png" for i in range(4)]
        for path in paths:
            server.routes[path] = send_bytes(png())
        pipeline.store_results(storing_task(*paths, server=server))

    assert len(threads) <= pipeline.CHECK_THREADS


def test_rows_are_written_and_links_opened_only_on_the_thread_holding_the_lease(server, storing_task, monkeypatch):
    seen = []
    record, provider = pipeline.record_result, HttpResults()

    def opened(url):
        seen.append(("open", threading.current_thread()))
        return http.open_url(url)

    def recorded(task, fetched):
        seen.append(("record", threading.current_thread()))
        return record(task, fetched)

    provider.open_result = opened
    monkeypatch.setattr(pipeline, "get_provider", lambda name: provider)
    monkeypatch.setattr(pipeline, "record_result", recorded)
    for i in range(4):
        server.routes[f"/{i}.png"] = send_bytes(png())
    task = storing_task(*[f"/{i}.png" for i in range(4)], server=server)

    pipeline.store_results(task)

    assert len(seen) == 8
    assert {thread for _, thread in seen} == {threading.main_thread()}


def test_one_failing_link_among_fifteen_leaves_fourteen_images(server, storing_task):
    paths = [f"/{i}.png" for i in range(15)]
    for path in paths:
        if path != "/7.png":  # expired: 404
            server.routes[path] = send_bytes(png())
    task = storing_task(*paths, server=server)

    pipeline.store_results(task)

    task.refresh_from_db()
    assert task.status == Status.COMPLETED
    assert sorted(task.images.values_list("index", flat=True)) == [i for i in range(15) if i != 7]
    assert task.error_message == "1 of 15 images could not be downloaded from the provider."


def test_a_passing_failure_starts_no_further_download_and_keeps_what_arrived(server, storing_task, settings):
    settings.STORE_PARALLEL = 1
    server.routes["/0.png"] = send_bytes(png())
    server.routes["/1.png"] = send_bytes(b"busy", content_type="text/plain", status=503)
    server.routes["/2.png"] = send_bytes(png())
    task = storing_task("/0.png", "/1.png", "/2.png", server=server)

    pipeline.store_results(task)

    task.refresh_from_db()
    assert task.status == Status.STORING and "HTTP 503" in task.error_message
    assert list(task.images.values_list("index", flat=True)) == [0]
    assert [r.path for r in server.received] == ["/0.png", "/1.png"]


def test_a_lease_lost_mid_store_stops_the_downloads_and_writes_no_more_rows(server, storing_task, settings, monkeypatch):
    settings.STORE_PARALLEL = 2
    chunks_sent = []

    def endless(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        handler.send_header("Connection", "close")  # no length: the body runs until the server stops
        handler.end_headers()
        for _ in range(16 * 1024):  # 1 GB in 64 KB chunks, far past MAX_RESULT_BYTES, at most 64 MB/s
            handler.wfile.write(b"\0" * 64 * 1024)
            chunks_sent.append(1)
            time.sleep(0.001)

    server.routes["/0.png"] = send_bytes(png())
    server.routes["/1.png"] = endless
    for i in range(2, 6):
        server.routes[f"/{i}.png"] = send_bytes(png())
    task = storing_task(*[f"/{i}.png" for i in range(6)], server=server)
    record, start_download = pipeline.record_result, pipeline._start_download
    recorded, started_after_the_loss = [], []

    def record_then_lose_the_lease(task, fetched):
        record(task, fetched)
        recorded.append(fetched.index)
        GenerationTask.objects.filter(pk=task.pk).update(lease_token="another-worker")

    def start_noting_the_lease(*args):
        started_after_the_loss.append(bool(recorded))
        return start_download(*args)

    monkeypatch.setattr(pipeline, "record_result", record_then_lose_the_lease)
    monkeypatch.setattr(pipeline, "_start_download", start_noting_the_lease)

    with pytest.raises(LeaseLost):
        pipeline.store_results(task)

    assert len(recorded) == 1 and list(task.images.values_list("index", flat=True)) == recorded
    assert not any(started_after_the_loss)  # no download started once the lease was gone
    assert len(chunks_sent) < 1024  # the endless download stopped long before 64 MB


def test_a_decode_waits_until_its_memory_fits_and_a_huge_one_runs_alone():
    budget = pipeline.MemoryBudget(100)
    order = []

    def decode(name, n):
        with budget.reserve(n):
            order.append(name)

    with budget.reserve(60):
        small = threading.Thread(target=decode, args=("small", 40))
        small.start()
        small.join(5)
        assert order == ["small"]  # 60 + 40 fit
        waiting = threading.Thread(target=decode, args=("big", 60))
        waiting.start()
        waiting.join(0.2)
        assert waiting.is_alive()  # 60 + 60 do not: it waits
    waiting.join(5)
    huge = threading.Thread(target=decode, args=("huge", 500))  # more than the whole budget: alone
    huge.start()
    huge.join(5)
    assert order == ["small", "big", "huge"] and budget.used == 0


@pytest.mark.parametrize(
    "width, height, image_format, expected",
    [
        (4096, 4096, "PNG", 4096 * 4096 * 4),  # 64 MB
        (6240, 2656, "PNG", 6240 * 2656 * 4),  # 21:9 4K: a few pixels fewer
        (4096, 4096, "JPEG", 1024 * 1024 * 4),  # decoded at 1/4 scale for its thumbnail
        (6240, 2656, "JPEG", 3120 * 1328 * 4),
        (300, 200, "JPEG", 300 * 200 * 4),
    ],
)
def test_decoded_bytes_are_what_the_thumbnail_decode_holds(width, height, image_format, expected):
    out = io.BytesIO()
    Image.new("RGB", (width, height), "teal").save(out, image_format)
    with Image.open(io.BytesIO(out.getvalue())) as im:
        assert decoded_bytes(im) == expected


def test_the_largest_results_decode_one_at_a_time_beside_a_few_jpegs():
    largest = max(model.max_pixels for model in catalog.MODELS.values()) * 4  # 4096 × 4096, any ratio
    assert largest <= pipeline.DECODE_MEMORY_BYTES < 2 * largest
    assert pipeline.DECODE_MEMORY_BYTES - largest >= 4 * 1024 * 1024 * 4  # and four 4K JPEGs
