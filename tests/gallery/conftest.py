"""Fixtures shared by the studio form's and the Team API's tests, and the fake upstreams."""

import pytest

from tests.fakes.byteplus import FakeBytePlus
from tests.fakes.evolink import FakeEvoLink
from tests.gallery import api_kit

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


# The Team API: a key of Studio (alice's), a client calling with it, and one of Rivals.


@pytest.fixture
def key(team, alice):
    return api_kit.make_key(team, alice)


@pytest.fixture
def api(key):
    return api_kit.ApiClient(key[1])


@pytest.fixture
def rival_api(other_team, charlie):
    return api_kit.ApiClient(api_kit.make_key(other_team, charlie, "Rival script")[1])


@pytest.fixture
def evolink(settings):
    with FakeEvoLink() as fake:
        fake.use_in(settings)
        yield fake


@pytest.fixture
def byteplus(settings):
    with FakeBytePlus() as fake:
        fake.use_in(settings)
        yield fake
