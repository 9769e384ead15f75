"""EvoLink's file service on the studio (SPEC §5): uploads by stream, base64 and URL become team
references in the `{success, code, msg, data}` envelope, with a file_url that image_urls takes."""

import base64
import io

import pytest
from django.test import Client
from PIL import Image

from gallery.models import ApiFile, GenerationTask
from tests.factories import png_bytes, run_until_final
from tests.fakes.server import FakeServer, send_bytes
from tests.gallery.api_kit import assert_error, assert_file_error, data_uri


def upload(api, data=None, name="fox.png"):
    data = png_bytes() if data is None else data
    return api.multipart("/api/v1/files/upload/stream", {"file": _named(data, name)})


def _named(data, name):
    handle = io.BytesIO(data)
    handle.name = name
    return handle


def test_a_stream_upload_answers_in_the_file_services_envelope(api, team):
    response = upload(api, png_bytes(80, 60))
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True and body["code"] == 200 and body["msg"]
    data = body["data"]
    stored = ApiFile.objects.get()
    assert data["file_id"] == stored.file_id and stored.team == team
    assert (data["mime_type"], data["original_name"], data["width"], data["height"]) == ("image/png", "fox.png", 80, 60)
    assert data["file_size"] == stored.bytes and data["file_url"].startswith("http://testserver/api/v1/files/content/")
    # The link works without a key or session, and gives the bytes back.
    content = Client().get(data["file_url"])
    assert content.status_code == 200 and content["Content-Type"] == "image/png"


def test_a_base64_upload_takes_a_data_uri_or_bare_base64(api):
    assert api.post("/api/v1/files/upload/base64", {"base64_data": data_uri()}).json()["success"] is True
    bare = base64.b64encode(png_bytes()).decode()
    answer = api.post("/api/v1/files/upload/base64", {"base64_data": bare, "file_name": "bare.png"}).json()
    assert answer["data"]["original_name"] == "bare.png"
    assert ApiFile.objects.count() == 2


def test_a_url_upload_is_fetched_through_the_guard(api, settings):
    with FakeServer() as server:
        server.routes["/cat.png"] = send_bytes(png_bytes(70, 50))
        answer = api.post("/api/v1/files/upload/url", {"file_url": f"{server.url}/cat.png"}).json()
    assert answer["success"] is True and (answer["data"]["width"], answer["data"]["height"]) == (70, 50)
    assert answer["data"]["original_name"] == "cat.png"


def test_a_url_upload_refuses_inside_addresses_and_bad_answers(api, settings):
    with FakeServer() as server:
        server.routes["/page"] = send_bytes(b"<html></html>", "text/html")
        server.routes["/moved"] = lambda h: (h.send_response(302), h.send_header("Location", "/page"),
                                             h.send_header("Content-Length", "0"), h.end_headers())
        assert_file_error(api.post("/api/v1/files/upload/url", {"file_url": f"{server.url}/page"}), 415, "not an image")
        assert_file_error(api.post("/api/v1/files/upload/url", {"file_url": f"{server.url}/missing"}), 400, "HTTP 404")
        assert_file_error(api.post("/api/v1/files/upload/url", {"file_url": f"{server.url}/moved"}), 400, "redirect")
        settings.ALLOW_LOOPBACK_URLS = False
        assert_file_error(api.post("/api/v1/files/upload/url", {"file_url": f"{server.url}/page"}), 400, "own machine")
    assert_file_error(api.post("/api/v1/files/upload/url", {"file_url": 5}), 400, "file_url")
    assert ApiFile.objects.count() == 0


@pytest.mark.parametrize(
    ("data", "name", "status", "words"),
    [
        (b"just text", "a.png", 415, "not an image"),
        (png_bytes(400, 40), "wide.png", 400, "too narrow"),
        (png_bytes(10, 10), "tiny.png", 400, "between 14"),
    ],
)
def test_uploads_follow_the_reference_rules(api, data, name, status, words):
    assert_file_error(upload(api, data, name), status, words)
    assert ApiFile.objects.count() == 0


def test_a_gif_and_an_oversized_file_are_refused(api):
    out = io.BytesIO()
    Image.new("RGB", (40, 40)).save(out, "GIF")
    assert_file_error(upload(api, out.getvalue(), "a.gif"), 415, "GIF")
    assert_file_error(upload(api, b"\0" * (10 * 2**20 + 1), "big.png"), 413, "10 MB")
    assert_file_error(api.post("/api/v1/files/upload/base64", {"base64_data": "not base64!"}), 400, "base64")
    assert_file_error(api.post("/api/v1/files/upload/base64", {}), 400, "base64_data")
    assert_file_error(api.multipart("/api/v1/files/upload/stream", {}), 400, "file")
    broken = api.client.post("/api/v1/files/upload/stream", data=b"--x\r\nnonsense", headers=api.headers(),
                             content_type="multipart/form-data; boundary=")
    assert_file_error(broken, 400, "the studio can read")
    assert ApiFile.objects.count() == 0


def test_quota_list_and_delete(api, rival_api, settings):
    settings.API_FILE_QUOTA = 2
    first = upload(api).json()["data"]
    upload(api)
    assert_file_error(upload(api), 403, "quota")
    quota = api.get("/api/v1/files/quota").json()["data"]
    assert (quota["used_files"], quota["max_files"], quota["remain_files"]) == (2, 2, 0)

    listed = api.get("/api/v1/files/list", page_size="1").json()["data"]
    assert listed["total"] == 2 and len(listed["files"]) == 1 and listed["page"] == 1
    assert rival_api.get("/api/v1/files/list").json()["data"]["total"] == 0
    assert_file_error(api.get("/api/v1/files/list", page="0"), 400, "page")
    assert_file_error(api.get("/api/v1/files/list", page_size="x"), 400, "page_size")

    assert_file_error(rival_api.delete(f"/api/v1/files/{first['file_id']}"), 404)
    assert api.delete(f"/api/v1/files/{first['file_id']}").json()["success"] is True
    assert_file_error(api.delete(f"/api/v1/files/{first['file_id']}"), 404)
    assert ApiFile.objects.count() == 1


def test_the_list_takes_evolinks_pagesize_as_well_as_page_size(api):
    """EvoLink's client sends pageSize (issue 21: asking for 1 returned 20)."""
    for _ in range(3):
        upload(api)
    listed = api.get("/api/v1/files/list", pageSize="1").json()["data"]
    assert (len(listed["files"]), listed["page_size"], listed["total"]) == (1, 1, 3)
    second = api.get("/api/v1/files/list", pageSize="2", page="2").json()["data"]
    assert (len(second["files"]), second["page_size"], second["page"]) == (1, 2, 2)
    assert api.get("/api/v1/files/list", pageSize="1", page_size="2").json()["data"]["page_size"] == 2
    assert_file_error(api.get("/api/v1/files/list", pageSize="0"), 400, "pageSize must be a whole number from 1 to 100")
    assert_file_error(api.get("/api/v1/files/list", pageSize="101", page_size="5"), 400, "pageSize")
    assert_file_error(api.get("/api/v1/files/list", page="1000001"), 400, "page must be a whole number from 1 to 1,000,000")
    assert_file_error(api.get("/api/v1/files/list", page=""), 400, "page")


def test_file_service_errors_use_its_envelope_for_keys_and_methods(api):
    from tests.gallery.api_kit import ApiClient

    assert_file_error(ApiClient("").get("/api/v1/files/quota"), 401, "Bearer")
    assert_file_error(ApiClient("sk-studio-wrongwrongwrongwrong").get("/api/v1/files/quota"), 401, "not valid")
    assert_file_error(api.post("/api/v1/files/quota", {}), 405)


def test_an_uploaded_file_url_works_in_image_urls_and_stays_a_team_reference(api, rival_api):
    url = upload(api, png_bytes(90, 60, "green")).json()["data"]["file_url"]
    task_id = api.post("/v1/images/generations", {"prompt": "Use it", "size": "1:1", "quality": "1K",
                                                  "image_urls": [url]}).json()["id"]
    task = GenerationTask.objects.get(pk=task_id)
    ref = task.references.get()
    assert (ref.width, ref.height, ref.position) == (90, 60, 0) and task.pending_image_urls == []
    assert run_until_final(task).status == "completed"
    # Another team's script cannot use it: it looks absent.
    assert_error(rival_api.post("/v1/images/generations", {"prompt": "Steal it", "image_urls": [url]}), 400,
                 "image_urls[0]", "does not exist")


def test_a_deleted_files_link_no_longer_works(api):
    data = upload(api).json()["data"]
    api.delete(f"/api/v1/files/{data['file_id']}")
    assert Client().get(data["file_url"]).status_code == 404
    assert_error(api.post("/v1/images/generations", {"prompt": "x", "image_urls": [data["file_url"]]}), 400,
                 "image_urls[0]", "does not exist")
