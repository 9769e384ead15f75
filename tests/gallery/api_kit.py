"""Shared helpers of the Team API's tests: keys, calls with a bearer key, images as data: URIs."""

import base64
import json

from django.test import Client

from gallery.models import ApiKey
from tests.factories import png_bytes


def make_key(team, user, name="Script"):
    key, raw, secret = ApiKey.create(team, name, user)
    return key, raw, secret


class ApiClient:
    """The Django test client with a bearer key and JSON bodies; no session, no CSRF token."""

    def __init__(self, raw):
        self.client = Client(enforce_csrf_checks=True)
        self.raw = raw

    def headers(self, extra=None):
        found = {"Authorization": f"Bearer {self.raw}"} if self.raw else {}
        return {**found, **(extra or {})}

    def post(self, path, body=None, headers=None, content_type="application/json", raw_body=None):
        data = raw_body if raw_body is not None else json.dumps(body if body is not None else {})
        return self.client.post(path, data=data, content_type=content_type, headers=self.headers(headers))

    def multipart(self, path, data, headers=None):
        return self.client.post(path, data=data, headers=self.headers(headers))

    def get(self, path, headers=None, **params):
        return self.client.get(path, params, headers=self.headers(headers))

    def delete(self, path, headers=None):
        return self.client.delete(path, headers=self.headers(headers))


def data_uri(data=None, kind="image/png"):
    data = png_bytes() if data is None else data
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


def assert_error(response, status, param=None, contains=""):
    """The upstream's error shape, with its status, type, param and a readable message."""
    assert response.status_code == status, response.content[:500]
    error = response.json()["error"]
    assert error["code"] == status and isinstance(error["message"], str) and len(error["message"]) > 10
    assert error["type"]
    if param is not None:
        assert error["param"] == param, error
    assert contains.lower() in error["message"].lower(), error["message"]
    return error


def assert_file_error(response, status, contains=""):
    assert response.status_code == status, response.content[:500]
    body = response.json()
    assert body["success"] is False and body["code"] == status and contains.lower() in body["msg"].lower(), body
    return body
