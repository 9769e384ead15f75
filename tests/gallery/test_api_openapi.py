"""The served OpenAPI document describes the API as it answers (issue 14): Schemathesis sends
generated requests (a bounded run) to every operation through the WSGI app, with a valid key, and
checks that none gets a server error and every answer fits the document (status, content type,
body). Plus: the document is served, names every API route, and a known answer fits it."""

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.urls import get_resolver
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.gallery.api_kit import make_key

schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", get_wsgi_application())
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


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
def raw_key(team, alice, settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 100_000  # generated calls are not what the limit is for
    return make_key(team, alice)[1]


@schema.parametrize()
@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_generated_requests_get_answers_that_fit_the_document(case, raw_key):
    case.call_and_validate(headers={"Authorization": f"Bearer {raw_key}"}, checks=CHECKS)


@schema.parametrize()
@hypothesis_settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_requests_without_a_key_get_answers_that_fit_the_document(case, db):
    case.call_and_validate(headers={"Authorization": "Bearer sk-studio-wrongwrongwrongwrong"}, checks=CHECKS)


def test_the_document_is_served_and_names_every_api_route(client):
    document = client.get("/v1/openapi.json").json()
    assert document["openapi"].startswith("3.1") and document["servers"] == [{"url": "http://testserver"}]
    routes = {str(p.pattern) for p in get_resolver().url_patterns[1].url_patterns}
    api_routes = {r for r in routes if r.startswith(("v1/", "api/v1/"))}
    private = {"v1/results/<str:token>", "api/v1/files/content/<str:token>", "v1/openapi.json"}  # signed links, itself
    documented = {path.lstrip("/").replace("{task_id}", "<str:task_id>").replace("{file_id}", "<str:file_id>")
                  for path in document["paths"]}
    assert documented == api_routes - private
