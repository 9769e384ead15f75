"""URLs the API is given (image_urls, /upload/url, callback_url) and SPEC §9: fetched only by the
worker (or the file service) through gallery/netguard.py, never reaching inside the network.

Nothing here may send a packet beyond loopback: name resolution is a dictionary and every
connect is checked (the fixtures of test_netguard.py), so a guard bug fails an assertion
instead of becoming traffic to 10.x or 169.254.x."""

import pytest

from gallery import webhooks
from gallery.models import CallbackDelivery, Delivery, GenerationTask, ReferenceImage, Status
from tests.factories import png_bytes, run_until_final
from tests.fakes.server import FakeServer, send_bytes
from tests.gallery import test_netguard
from tests.gallery.api_kit import assert_error, assert_file_error, data_uri
from tests.gallery.test_netguard import HOSTILE_NAMES

BODY = {"prompt": "A lighthouse at dusk", "size": "1:1", "quality": "1K"}
# The guard's fixtures, autouse here too: fake DNS and a check of every connect.
fake_dns, connect_guard = test_netguard.fake_dns, test_netguard.connect_guard

# Every spelling refused from the URL alone, before any lookup or connection (SPEC §9).
HOSTILE_SPELLINGS = [
    "http://example.com/a.png",  # plain http
    "file:///etc/passwd",
    "gopher://example.com:70/_GET",
    "https://user:secret@example.com/a.png",
    "https://example.com\\@10.0.0.1/",
    "https://127.0.0.1/a.png",
    "https://127.8.9.10/",
    "https://localhost/a.png",
    "https://foo.localhost/",
    "https://2130706433/",  # decimal
    "https://0x7f000001/",  # hex
    "https://0x7f.0.0.1/",
    "https://017700000001/",  # octal
    "https://0177.0.0.1/",  # dotted octal
    "https://127.1/",
    "https://0.0.0.0/",
    "https://10.0.0.1/",
    "https://172.16.0.1/",
    "https://192.168.1.1/",
    "https://100.64.0.1/",  # CGNAT
    "https://169.254.1.1/",  # link-local
    "https://169.254.169.254/latest/meta-data/",  # metadata
    "https://100.100.100.200/",
    "https://224.0.0.1/",  # multicast
    "https://[::1]/",
    "https://[::ffff:127.0.0.1]/",  # IPv4-mapped
    "https://[::ffff:a9fe:a9fe]/",
    "https://[64:ff9b::7f00:1]/",  # NAT64
    "https://[64:ff9b:1::a00:1]/",
    "https://[2002:7f00:1::]/",  # 6to4
    "https://[fe80::1]/",
    "https://[fc00::1]/",
    "https://[fd00:ec2::254]/",
    "https://[ff02::1]/",
]
# Names that resolve inside: refused when the worker (or the file service) connects.
HOSTILE_HOSTS = ["loopback.test", "intranet.test", "mixed.test", "metadata.test", "mapped.test"]


@pytest.fixture
def strict(settings, fake_dns):
    settings.ALLOW_HTTP_URLS = False
    settings.ALLOW_LOOPBACK_URLS = False
    fake_dns.names.update(HOSTILE_NAMES)


@pytest.mark.parametrize("url", HOSTILE_SPELLINGS)
def test_hostile_image_urls_are_refused_at_once_and_nothing_is_created(api, strict, connect_guard, url):
    assert_error(api.post("/v1/images/generations", {**BODY, "image_urls": [data_uri(), url]}), 400, "image_urls[1]")
    assert GenerationTask.objects.count() == ReferenceImage.objects.count() == 0
    assert connect_guard.attempts == []


@pytest.mark.parametrize("url", HOSTILE_SPELLINGS)
def test_hostile_callback_urls_are_refused_at_once(api, strict, connect_guard, url):
    assert_error(api.post("/v1/images/generations", {**BODY, "callback_url": url}), 400, "callback_url")
    assert GenerationTask.objects.count() == 0 and connect_guard.attempts == []


@pytest.mark.parametrize("url", HOSTILE_SPELLINGS[:12] + [f"https://{h}/a.png" for h in HOSTILE_HOSTS])
def test_hostile_upload_urls_are_refused_without_connecting(api, strict, connect_guard, url):
    assert_file_error(api.post("/api/v1/files/upload/url", {"file_url": url}), 400)
    assert connect_guard.attempts == []


# Names that cannot be public (issue 21: a DNS query left for https://vm.): each field refuses them at
# once, with the guard's sentence, before any lookup.
hosts_file = test_netguard.hosts_file
PRIVATE_NAMES = {
    "vm": "one-word host name", "vm.": "one-word host name", "localhost.": "own machine",
    "printer.local": "reserved for private networks", "db.internal.": "reserved for private networks",
    "router.home.arpa": "reserved for private networks", "nas.lan": "reserved for private networks",
    "buildbox.example.org.": "machine's own names",  # in the hosts file (the fixture's)
}
FIELDS = {
    "image_urls": lambda api, url: assert_error(
        api.post("/v1/images/generations", {**BODY, "image_urls": [url]}), 400, "image_urls[0]")["message"],
    "callback_url": lambda api, url: assert_error(
        api.post("/v1/images/generations", {**BODY, "callback_url": url}), 400, "callback_url")["message"],
    "file_url": lambda api, url: assert_file_error(
        api.post("/api/v1/files/upload/url", {"file_url": url}), 400)["msg"],
}


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("host", PRIVATE_NAMES)
def test_names_that_cannot_be_public_are_refused_with_a_sentence_and_no_lookup(
    api, strict, hosts_file, fake_dns, connect_guard, field, host
):
    message = FIELDS[field](api, f"https://{host}/a.png")
    assert message.startswith(field) and PRIVATE_NAMES[host] in message, message
    assert fake_dns.lookups == [] and connect_guard.attempts == [] and GenerationTask.objects.count() == 0


@pytest.mark.parametrize("host", HOSTILE_HOSTS)
def test_a_name_that_resolves_inside_fails_the_task_in_the_worker_without_connecting(
    api, strict, connect_guard, fake_dns, host
):
    response = api.post("/v1/images/generations", {**BODY, "image_urls": [f"https://{host}/a.png"]})
    assert response.status_code == 200  # a name is only resolved by the worker, at connect time
    task = run_until_final(GenerationTask.objects.get(pk=response.json()["id"]))
    assert task.status == Status.FAILED and "image_urls[0]" in task.error_message and "refused" in task.error_message
    assert host in fake_dns.lookups and connect_guard.attempts == []
    assert api.get(f"/v1/tasks/{task.pk}").json()["error"]["message"] == task.error_message


@pytest.mark.parametrize("host", HOSTILE_HOSTS)
def test_a_callback_to_a_name_that_resolves_inside_is_never_sent(api, strict, connect_guard, monkeypatch, host):
    monkeypatch.setattr(webhooks, "enqueue", lambda *a, **k: None)
    response = api.post("/v1/images/generations", {**BODY, "callback_url": f"https://{host}/hook"})
    run_until_final(GenerationTask.objects.get(pk=response.json()["id"]))
    attempt = webhooks.deliver(CallbackDelivery.objects.get().pk)
    assert "Refused" in attempt.error and CallbackDelivery.objects.get().state == Delivery.FAILED
    assert connect_guard.attempts == []


def test_a_redirect_to_an_inside_address_is_not_followed(api, settings, fake_dns, connect_guard):
    # A public-looking host (here: the local fake server) whose image redirects to the network inside.
    settings.ALLOW_HTTP_URLS = settings.ALLOW_LOOPBACK_URLS = True
    with FakeServer() as server:
        server.routes["/a.png"] = lambda h: (h.send_response(302), h.send_header("Location", "http://10.0.0.1/x.png"),
                                             h.send_header("Content-Length", "0"), h.end_headers())
        fake_dns.names["images.test"] = ["127.0.0.1"]
        url = f"http://images.test:{server.httpd.server_address[1]}/a.png"
        task_id = api.post("/v1/images/generations", {**BODY, "image_urls": [url]}).json()["id"]
        task = run_until_final(GenerationTask.objects.get(pk=task_id))
        answer = api.post("/api/v1/files/upload/url", {"file_url": url})
    assert task.status == Status.FAILED and "redirect" in task.error_message
    assert_file_error(answer, 400, "redirect")
    assert connect_guard.hosts == {"127.0.0.1"}


# Fetching https image_urls in the worker -------------------------------------------------------


@pytest.fixture
def images():
    with FakeServer() as server:
        server.routes["/wide.png"] = send_bytes(png_bytes(90, 60, "red"))
        server.routes["/tall.png"] = send_bytes(png_bytes(60, 90, "blue"))
        server.routes["/page.html"] = send_bytes(b"<html>hello</html>", "text/html")
        yield server


def test_image_urls_are_fetched_by_the_worker_and_keep_their_place(api, images):
    urls = [f"{images.url}/wide.png", data_uri(png_bytes(50, 50)), f"{images.url}/tall.png"]
    task_id = api.post("/v1/images/generations", {**BODY, "image_urls": urls}).json()["id"]
    task = GenerationTask.objects.get(pk=task_id)
    assert [r.position for r in task.references.all()] == [1]  # only the data: URI so far: no fetch in a request
    assert [r.path for r in images.received] == []

    task = run_until_final(task)
    assert task.status == Status.COMPLETED and task.pending_image_urls == []
    assert [(r.position, r.width, r.height) for r in task.references.all()] == [(0, 90, 60), (1, 50, 50), (2, 60, 90)]
    assert sorted(r.path for r in images.received) == ["/tall.png", "/wide.png"]


@pytest.mark.parametrize(
    ("path", "words"),
    [("/page.html", "not an image"), ("/missing.png", "HTTP 404")],
)
def test_a_bad_image_url_fails_the_task_with_a_sentence_naming_it(api, images, path, words):
    urls = [data_uri(), f"{images.url}{path}"]
    task_id = api.post("/v1/images/generations", {**BODY, "image_urls": urls}).json()["id"]
    task = run_until_final(GenerationTask.objects.get(pk=task_id))
    assert task.status == Status.FAILED and "image_urls[1]" in task.error_message and words in task.error_message
    assert task.upstream_id == ""  # never sent upstream


def test_a_passing_fetch_problem_is_retried(api, images):
    statuses = [503]

    def flaky(handler):
        if statuses:
            statuses.pop()
            send_bytes(b"busy", "text/plain", 503)(handler)
        else:
            send_bytes(png_bytes(64, 64))(handler)

    images.routes["/flaky.png"] = flaky
    task_id = api.post("/v1/images/generations", {**BODY, "image_urls": [f"{images.url}/flaky.png"]}).json()["id"]
    task = run_until_final(GenerationTask.objects.get(pk=task_id))
    assert task.status == Status.COMPLETED and task.retries == 1 and task.references.count() == 1
