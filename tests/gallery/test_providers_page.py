"""The providers page: owners and admins see the configured providers, their price, breaker
state, recent error rate and EvoLink's credit balance; a failing balance never breaks it."""

import time

import pytest

from gallery import routing
from gallery.models import GenerationTask, Membership, ProviderCall, Role, Status
from tests.factories import make_user
from tests.factories import make_task, run_until_final
from tests.fakes.evolink import FakeEvoLink


@pytest.fixture
def evolink(settings):
    with FakeEvoLink() as fake:
        fake.use_in(settings)
        yield fake


def row(html, name):
    start = html.index(f'data-provider="{name}"')
    return html[start : html.index("</tr>", start)]


def test_an_owner_sees_providers_price_state_error_rate_and_credits(evolink, client_alice, settings):
    settings.BYTEPLUS_API_KEY = "bp-key"
    evolink.credits = 1000.0
    routing.record("evolink", ok=True)
    for _ in range(3):
        routing.record("evolink", ok=False, code="service_unavailable_error")

    assert routing.read_balances() == 1  # the worker's chore; the page never calls EvoLink
    response = client_alice.get("/providers/")

    assert response.status_code == 200
    html = response.content.decode()
    evolink_row, byteplus_row = row(html, "evolink"), row(html, "byteplus")
    assert html.index('data-provider="evolink"') < html.index('data-provider="byteplus"')  # cheapest first
    assert "EvoLink" in evolink_row and "$0.0222" in evolink_row
    assert 'data-state="open"' in evolink_row and "Resting after repeated failures" in evolink_row
    assert "(75%)" in evolink_row and "3 of 4 requests failed" in evolink_row and "service_unavailable_error" in evolink_row
    assert "No tasks" in evolink_row  # requests are counted apart from the team's tasks
    assert "BytePlus ModelArk" in byteplus_row and "$0.03" in byteplus_row and "Working" in byteplus_row
    assert "Nothing sent yet" in byteplus_row
    assert "1,000.00 credits" in html and "about 625 images" in html
    assert evolink.calls("/v1/credits")[0].headers["authorization"] == "Bearer sk-evo-fake"


def test_an_admin_sees_it_too(evolink, client, team):
    admin = make_user("dana")
    Membership.objects.create(team=team, user=admin, role=Role.ADMIN)
    client.force_login(admin, backend="gallery.auth.EmailOrUsernameBackend")
    assert client.get("/providers/").status_code == 200


def test_a_member_is_refused_and_a_stranger_must_sign_in(evolink, client_bob, client):
    assert client_bob.get("/providers/").status_code == 403
    client_bob.logout()
    response = client.get("/providers/")
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert evolink.calls("/v1/credits") == []


def test_the_page_never_calls_evolink_and_says_when_the_balance_is_not_read_yet(evolink, client_alice):
    response = client_alice.get("/providers/")
    assert response.status_code == 200
    assert "Not read yet: the worker asks EvoLink for the balance every few minutes." in response.content.decode()
    assert evolink.calls("/v1/credits") == []


@pytest.mark.parametrize("fault", [500, "garbage", "drop", 401])
def test_a_balance_evolink_cannot_give_is_explained_and_the_last_good_one_kept(fault, evolink, client_alice):
    evolink.fault("credits", fault)
    assert routing.read_balances() == 0
    assert "EvoLink did not answer the worker" in client_alice.get("/providers/").content.decode()
    routing.read_balances()  # read fine this time
    evolink.fault("credits", fault)
    routing.read_balances()  # and failing again: the last good balance stays, with the problem
    html = client_alice.get("/providers/").content.decode()
    assert "1,000.00 credits" in html and "the latest read failed" in html


def test_a_slow_balance_never_slows_the_page(evolink, client_alice, monkeypatch):
    evolink.slow_seconds = 3
    evolink.fault("credits", "slow", times=None)
    started = time.monotonic()
    response = client_alice.get("/providers/")
    assert response.status_code == 200 and time.monotonic() - started < 1
    assert evolink.calls("/v1/credits") == []


def test_without_a_key_only_the_sandbox_is_listed_with_how_to_add_one(client_alice, settings):
    settings.EVOLINK_API_KEY = settings.BYTEPLUS_API_KEY = ""
    html = client_alice.get("/providers/").content.decode()
    assert 'data-provider="sandbox"' in html and 'data-provider="evolink"' not in html
    assert "EVOLINK_API_KEY" in html and "BYTEPLUS_API_KEY" in html
    assert "EvoLink credit balance" not in html


def test_tasks_the_provider_failed_are_counted_as_the_history_shows_them(client_alice, team, alice, bob, other_team, charlie, settings):
    """Issue 20: the page said "0 of 49 tries failed" while the history showed three tasks failed
    at the provider. A task the provider takes and then fails (its safety filter, no image made)
    answers its status checks fine, and a refused prompt is no failed request: the page counts
    the team's tasks apart from the requests, and says when each failed."""
    settings.TASK_MAX_RETRIES = 0
    for user, prompt in [
        (alice, "A lighthouse at dusk"),
        (bob, "[sandbox:fail=content_policy_violation] A fox"),
        (alice, "[sandbox:fail=generation_failed_no_content] A heron"),
        (bob, "[sandbox:http=400] A crane"),
        (charlie, "[sandbox:fail=content_policy_violation] Another team's fox"),
    ]:
        run_until_final(make_task(other_team if user == charlie else team, user, prompt=prompt))
    failed = GenerationTask.objects.filter(team=team, status=Status.FAILED)
    assert failed.count() == 3 and failed.exclude(upstream_id="").count() == 2

    html = client_alice.get("/providers/").content.decode()
    sandbox = row(html, "sandbox")
    assert "3 of 4 finished tasks failed" in sandbox
    assert "1 when sent, 2 after the provider took them" in sandbox
    assert "1 × The provider&#x27;s safety filter blocked this prompt or its reference images." in sandbox
    assert "1 × The provider finished without producing an image." in sandbox
    assert "1 × The provider refused this request." in sandbox
    # Every request went fine (the refusal was the prompt's, not the provider's trouble), and the
    # page says so in its own column rather than passing it off as the tasks' count.
    requests = ProviderCall.objects.filter(provider="sandbox").count()  # every team's
    assert requests >= 9 and f"0 of {requests} requests failed" in sandbox
    assert "last 24 hours" in html and "Your team's tasks" in html


def test_a_provider_without_tasks_in_the_window_says_so(client_alice, team, alice):
    task = run_until_final(make_task(team, alice, prompt="[sandbox:fail=content_policy_violation] Old"))
    GenerationTask.objects.filter(pk=task.pk).update(created_at=task.created_at - routing.RECENT)
    sandbox = row(client_alice.get("/providers/").content.decode(), "sandbox")
    assert "No tasks" in sandbox and "failed" not in sandbox.split('data-label="Requests"')[0]
