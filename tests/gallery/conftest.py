"""Fixtures shared by the studio form's tests."""

import pytest

DEFAULTS = {
    "prompt": "A red fox reading a newspaper",
    "size": "auto",
    "quality": "2K",
    "custom_size": "",
    "n": "1",
    "ask_for_n": "on",
    "priority": "standard",
}


@pytest.fixture
def submit(client_alice, django_capture_on_commit_callbacks):
    """POSTs the studio form as multipart; a field given as None is left out of the request."""

    def post(references=(), **fields):
        data = {key: value for key, value in {**DEFAULTS, **fields}.items() if value is not None}
        if references:
            data["references"] = list(references)
        with django_capture_on_commit_callbacks() as callbacks:
            response = client_alice.post("/", data)
        response.on_commit_callbacks = callbacks
        return response

    return post
