"""The served OpenAPI document says what the API does (issues 14 and 21).

Schemathesis sends generated requests (a bounded run: examples, coverage and fuzzing phases, valid
and invalid data) to every operation through the WSGI app, with a real key, and runs every check it
has (`--checks all`): no server error; status, content type, headers and body as documented; data
the document calls invalid is refused, and data it calls valid is accepted. What JSON Schema cannot
check is a named `format` of the document (gallery/api/openapi.py FORMATS); the strategies below
teach Schemathesis to make valid values of each (images it can decode, public URLs, custom sizes
within a model's pixels), as the API's own rules read them. No worker is needed: tasks stay queued.

Plus: the document is served and names every API route, and a table of requests on which the
document and the API once disagreed (issue 21) now agree."""

import base64
import io
import json
import math

import jsonschema_rs
import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import override_settings
from django.urls import get_resolver
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis.checks import CHECKS, load_all_checks

from gallery import catalog, options
from gallery.api.openapi import LIST_PAGE_LAST, PHOTO_URL
from gallery.models import ApiKey
from gallery.models.api import KEY_PREFIX, LOOKUP_CHARS, hash_key
from tests.factories import png_bytes
from tests.fakes.server import FakeServer, send_bytes
from tests.gallery import test_netguard
from tests.gallery.api_kit import ApiClient, make_key

# Loaded as the tests run (tests/conftest.py): the document says http:// is allowed where the instance
# allows it, and the images an image-url names are served over http from loopback.
with override_settings(ALLOW_HTTP_URLS=True, ALLOW_LOOPBACK_URLS=True):
    schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", get_wsgi_application())
    stateful_schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", get_wsgi_application())
for _schema in (schema, stateful_schema):
    # Not the literals of the studio's own code as values: they would stand in for formats the validator
    # cannot check (a URL from the settings as a file_url, fetched at once).
    _schema.config.analysis.constants.enabled = False
    # 422 answers one thing only: an Idempotency-Key sent before with another body (a state, not the
    # data). The coverage phase sends its few spellings of the header with many bodies.
    acceptance = _schema.config.checks.positive_data_acceptance
    acceptance.expected_statuses = [*acceptance.expected_statuses, "422"]
load_all_checks()
ALL_CHECKS = CHECKS.get_all()  # as `--checks all`
STATEFUL_CHECKS = [check for check in ALL_CHECKS if check.__name__ != "negative_data_rejection"]
SETTINGS = {"deadline": None, "suppress_health_check": list(HealthCheck), "derandomize": True}


# What the formats of the document mean, as strategies ------------------------------------------


@st.composite
def image_bytes(draw, formats=("PNG", "JPEG", "WEBP")):
    """A small image the upload rules take: sides 14 px and up, aspect within 1:3."""
    low = options.MIN_REFERENCE_SIDE
    width = draw(st.integers(low, 3 * low))
    height = draw(st.integers(max(low, math.ceil(width / 3)), min(3 * low, 3 * width)))
    kind = draw(st.sampled_from(formats))
    image = Image.new("RGBA" if kind == "PNG" else "RGB", (width, height), (200, 90, 20, 255))
    if kind == "PNG":
        image.putpixel((0, 0), (0, 0, 0, 0))  # transparent: a transparent background takes it
    out = io.BytesIO()
    image.save(out, kind)
    return kind, out.getvalue()


def data_uri(image):
    kind, data = image
    return f"data:image/{kind.lower()};base64,{base64.b64encode(data).decode()}"


PATHS = st.from_regex(r"[a-z0-9_-]{1,16}", fullmatch=True)
PUBLIC_HOSTS = st.sampled_from(["example.com", "hooks.example.org", "cdn.example.net", "images.example.com"])
SERVED = {f"/image-{i}.{kind.lower()}": (kind, data) for i, (kind, data) in enumerate(
    [("PNG", png_bytes(64, 48)), ("PNG", png_bytes(14, 42)), ("JPEG", None), ("WEBP", None)])}
# The images an image-url names: Schemathesis draws examples while it collects, so the server runs from
# import to the end of the process (a daemon thread; with xdist a worker may come back to this module).
IMAGE_SERVER = FakeServer()
IMAGE_SERVER.record = False


def _served(kind, data):
    if data is None:
        out = io.BytesIO()
        Image.new("RGB", (40, 30), "teal").save(out, kind)
        data = out.getvalue()
    return data, f"image/{kind.lower()}"


for _path, (_kind, _data) in SERVED.items():
    IMAGE_SERVER.routes[_path] = send_bytes(*_served(_kind, _data))
IMAGE_SERVER.routes["/photo.png"] = send_bytes(png_bytes(40, 30))
IMAGE_SERVER.thread.start()


def fetched_locally(case):
    """The document's example image URL (which the coverage phase sends as a valid file_url) stands for an
    image on the web: the local server serves it here."""
    if isinstance(case.body, dict) and case.body.get("file_url") == PHOTO_URL:
        case.body = {**case.body, "file_url": f"{IMAGE_SERVER.url}/photo.png"}
    return case


@st.composite
def custom_size(draw, model):
    """WIDTHxHEIGHT within the model's pixels, its aspect within 1:16, spelled the ways the API reads."""
    width = draw(st.integers(240, 16_000))
    low = max(math.ceil(model.min_pixels / width), math.ceil(width * options.MIN_CUSTOM_ASPECT), 1)
    high = min(model.max_pixels // width, math.floor(width * options.MAX_CUSTOM_ASPECT), 99_999)
    if low > high:
        width, low, high = 1024, model.min_pixels // 1024 + 1, model.max_pixels // 1024
    height = draw(st.integers(low, high))
    sep = draw(st.sampled_from(["x", "X", "×", "*", " x "]))
    return f"{width}{sep}{height}"


schemathesis.openapi.format("image-base64", st.one_of(
    image_bytes().map(data_uri), image_bytes().map(lambda image: base64.b64encode(image[1]).decode())))
schemathesis.openapi.format("image-reference", st.one_of(
    st.builds("https://{}/{}.png".format, PUBLIC_HOSTS, PATHS), image_bytes(("PNG",)).map(data_uri)))
schemathesis.openapi.format("image-url", st.sampled_from(sorted(SERVED)).map(lambda path: IMAGE_SERVER.url + path))
schemathesis.openapi.format("public-https-url", st.builds("https://{}/{}".format, PUBLIC_HOSTS, PATHS))
for _model in catalog.MODELS.values():
    schemathesis.openapi.format(f"size-{_model.id}", custom_size(_model))
for _kind in ("PNG", "JPEG", "WEBP"):
    schemathesis.openapi.media_type(f"image/{_kind.lower()}", image_bytes((_kind,)).map(lambda image: image[1]))


# The key Schemathesis sends (the bearerAuth scheme), left out when a case tests a missing key. Fixed
# from import on: the coverage phase's cases are made, headers included, while pytest collects.
RAW_KEY = f"{KEY_PREFIX}Schemathesis{'k' * 48}"


class TeamKey:
    def get(self, case, context):
        return RAW_KEY

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


schema.auth(refresh_interval=None)(TeamKey)
stateful_schema.auth(refresh_interval=None)(TeamKey)


# Nothing here may send a packet beyond loopback: name resolution is a dictionary and every connect is
# checked (the fixtures of test_netguard.py, autouse here too).
fake_dns, connect_guard = test_netguard.fake_dns, test_netguard.connect_guard


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """As Django's test client does: the WSGI handler would otherwise close the test's database
    connection (and its transaction) at the end of each request."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def team_key(team, alice, settings):
    # Generated calls are not what the limits are for (ignored_auth probes with wrong keys, too).
    settings.API_RATE_LIMIT_PER_MINUTE = settings.API_FILE_QUOTA = 100_000
    settings.API_AUTH_FAILURE_LIMIT = (100_000, 300)
    key = make_key(team, alice)[0]
    lookup = RAW_KEY[: len(KEY_PREFIX) + LOOKUP_CHARS]
    ApiKey.objects.filter(pk=key.pk).update(prefix=lookup, key_hash=hash_key(RAW_KEY))
    return RAW_KEY


@schema.parametrize()
@hypothesis_settings(max_examples=25, **SETTINGS)
def test_generated_requests_pass_every_check(case, team_key):
    fetched_locally(case).call_and_validate(checks=ALL_CHECKS)


@schema.parametrize()
@hypothesis_settings(max_examples=5, **SETTINGS)
def test_requests_with_a_key_no_team_has_pass_every_check(case, db):
    fetched_locally(case).call_and_validate(checks=ALL_CHECKS)


def test_the_document_is_served_and_names_every_api_route(client):
    document = client.get("/v1/openapi.json").json()
    assert document["openapi"].startswith("3.1") and document["servers"] == [{"url": "http://testserver"}]
    routes = {str(p.pattern) for p in get_resolver().url_patterns[1].url_patterns}
    api_routes = {r for r in routes if r.startswith(("v1/", "api/v1/"))}
    private = {"v1/results/<str:token>", "api/v1/files/content/<str:token>", "v1/openapi.json"}  # signed links, itself
    documented = {path.lstrip("/").replace("{task_id}", "<str:task_id>").replace("{file_id}", "<str:file_id>")
                  for path in document["paths"]}
    assert documented == api_routes - private


# Where the document and the API disagreed (issue 21): now the document's verdict is the API's. -----


def _validator(document, body_schema):
    return jsonschema_rs.Draft202012Validator({**body_schema, "components": document["components"]})


def _operation(document, path, method="post"):
    return document["paths"][path][method]


SD40, LITE = catalog.SD40, catalog.SD50_LITE
GENERATIONS = [  # body, accepted (by the document and by the API)
    ({"model": "", "prompt": "A fox"}, False),
    ({"model": None, "prompt": "A fox"}, True),
    ({"prompt": "A fox", "quality": ""}, False),
    ({"prompt": "A fox", "size": ""}, False),
    ({"prompt": "A fox", "prompt_priority": ""}, False),
    ({"prompt": "A fox", "image_urls": ""}, False),
    ({"prompt": "A fox", "image_urls": None, "size": None, "quality": None}, True),
    ({"prompt": "A fox", "n": 2.0}, True),
    ({"prompt": "   "}, False),
    ({"prompt": "A fox\u0007"}, False),
    ({"prompt": "a" + " " * 2000}, False),  # 2,001 characters as sent
    ({"model": SD40, "prompt": "A fox", "model_params": {"output_format": "png"}}, False),
    ({"model": LITE, "prompt": "A fox", "model_params": {"output_format": "png"}}, True),
    ({"model": SD40, "prompt": "A fox", "model_params": {"background": "opaque"}}, False),
    ({"model": SD40, "prompt": "A fox", "model_params": {"watermark": False, "tools": []}}, True),
    ({"model": SD40, "prompt": "A fox", "model_params": {"tools": [{"type": "web_search"}]}}, False),
    ({"model": catalog.SD45, "prompt": "A fox", "quality": "1K"}, False),
    ({"model": catalog.SD45, "prompt": "A fox", "quality": "1K", "size": "2048x2048"}, True),
    ({"model": SD40, "prompt": "A fox", "size": "10x10"}, True),  # the pattern passes; format: 400
    ({"model": catalog.SD50_PRO, "prompt": "A fox", "n": 2}, False),
    ({"model": catalog.SD50_PRO, "prompt": "A fox", "model_params": {"background": "transparent"}}, False),
    ({"prompt": "A fox", "n": 10, "image_urls": ["https://images.example.com/a.png"] * 6}, False),
]


@pytest.mark.parametrize(("body", "accepted"), GENERATIONS, ids=[json.dumps(b)[:60] for b, _ in GENERATIONS])
def test_the_document_and_the_api_agree_on_generation_bodies(api, client, body, accepted):
    document = client.get("/v1/openapi.json").json()
    valid = _validator(document, {"$ref": "#/components/schemas/GenerationRequest"}).is_valid(body)
    status = api.post("/v1/images/generations", body).status_code
    if body.get("size") == "10x10":  # a format the schema cannot check: the pattern passes, the pixels do not
        assert valid and status == 400
    else:
        assert (valid, status == 200) == (accepted, accepted), (valid, status)


def test_the_file_service_schema_says_what_it_refuses(api, client):
    document = client.get("/v1/openapi.json").json()
    for path, field in (("/api/v1/files/upload/base64", "base64_data"), ("/api/v1/files/upload/url", "file_url")):
        body_schema = _operation(document, path)["requestBody"]["content"]["application/json"]["schema"]
        assert not _validator(document, body_schema).is_valid({field: ""})
        assert api.post(path, {field: ""}).status_code == 400
    stream = _operation(document, "/api/v1/files/upload/stream")["requestBody"]["content"]["multipart/form-data"]
    assert "A 1×1 image is refused" in stream["schema"]["properties"]["file"]["description"]
    assert stream["encoding"]["file"]["contentType"] == "image/png, image/jpeg, image/webp"
    tiny = api.multipart("/api/v1/files/upload/stream", {"file": io.BytesIO(png_bytes(1, 1))})
    assert tiny.status_code == 400 and "14" in tiny.json()["msg"]

    listing = {p["name"]: p["schema"] for p in _operation(document, "/api/v1/files/list", "get")["parameters"]}
    assert listing["page"]["maximum"] == LIST_PAGE_LAST and listing["pageSize"] == listing["page_size"]
    assert api.get("/api/v1/files/list", page=str(LIST_PAGE_LAST + 1)).status_code == 400
    assert api.get("/api/v1/files/list", page=str(LIST_PAGE_LAST)).status_code == 200


def test_every_status_the_api_answers_with_is_documented(api, client):
    """415 and 413 included: a body that is not JSON, or an image of another type."""
    document = client.get("/v1/openapi.json").json()
    gif = io.BytesIO()
    Image.new("RGB", (20, 20)).save(gif, "GIF")
    answers = {
        ("/v1/images/generations", "post"): api.post("/v1/images/generations", raw_body="x", content_type="text/plain"),
        ("/api/v1/files/upload/base64", "post"): api.post(
            "/api/v1/files/upload/base64", {"base64_data": base64.b64encode(gif.getvalue()).decode()}),
        ("/api/v1/files/upload/stream", "post"): api.multipart(
            "/api/v1/files/upload/stream", {"file": io.BytesIO(gif.getvalue())}),
        ("/api/v1/files/list", "get"): ApiClient("").get("/api/v1/files/list"),
    }
    for (path, method), response in answers.items():
        assert str(response.status_code) in _operation(document, path, method)["responses"], (path, response.status_code)
    assert {response.status_code for response in answers.values()} == {415, 401}


def test_stateful_workflows_pass_every_check(team_key):
    """Sequences of calls, linked by what the answers hold (a file uploaded, then deleted, then asked for
    again: use_after_free; a task created, then read: ensure_resource_availability). Every check but
    negative_data_rejection, which the parametrized test runs: here a link may put a value from an
    earlier answer (a file_name) over the very part Schemathesis 4.32 made invalid, and then counts the
    valid request it sent as invalid data accepted."""

    class Workflow(stateful_schema.as_state_machine()):
        def call(self, case, **kwargs):
            return super().call(fetched_locally(case), **kwargs)

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=STATEFUL_CHECKS, additional_checks=additional_checks,
                                   transport_kwargs=kwargs or None, recorder=self.recorder)

    Workflow.run(settings=hypothesis_settings(max_examples=10, stateful_step_count=6, **SETTINGS))
