"""Failover between the fake EvoLink and the fake BytePlus: cheapest healthy provider first, the
next one when it fails, and a circuit breaker that opens, skips and closes again."""

from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from django.db import connection
from django.db.models import F
from django.utils import timezone

from gallery import offers, pipeline, routing
from gallery.models import GenerationTask, ProviderCall, Status
from tests.factories import make_reference, make_task, run_until_final


def breaker(name):
    return routing.breaker(name)[0]


def let_cool_down_pass(settings):
    ProviderCall.objects.update(at=F("at") - timedelta(seconds=settings.BREAKER_COOLDOWN_SECONDS + 1))


def test_providers_are_the_configured_ones_cheapest_first(settings):
    settings.EVOLINK_API_KEY = settings.BYTEPLUS_API_KEY = ""
    assert offers.configured() == ["sandbox"]
    settings.BYTEPLUS_API_KEY = "bp"
    assert offers.configured() == ["byteplus"]  # the sandbox only runs without a real provider
    settings.EVOLINK_API_KEY = "sk-evo"
    assert offers.configured() == ["evolink", "byteplus"]
    settings.PRICE_OVERRIDES = {"evolink": Decimal("0.05")}
    assert offers.configured() == ["byteplus", "evolink"]


def test_a_new_task_is_priced_for_the_cheapest_provider(evolink, byteplus, team, alice):
    task = make_task(team, alice, n=2)
    assert (task.provider, task.price_per_image, task.reserved_cost) == ("evolink", Decimal("0.0222"), Decimal("0.0444"))


def test_evolink_answering_503_fails_over_to_byteplus(evolink, byteplus, team, alice, client_alice):
    evolink.fault("create", 503, times=None)
    task = run_until_final(make_task(team, alice, n=2, references=[make_reference()]))

    assert task.status == Status.COMPLETED and task.retries == 0
    assert task.provider == "byteplus"
    assert task.price_per_image == Decimal("0.03") and task.final_cost == Decimal("0.06")
    assert task.images.count() == 2
    assert len(evolink.created) == 1 and len(byteplus.created) == 1
    # The reference uploaded for EvoLink was removed there and sent to BytePlus instead.
    assert evolink.deleted == [evolink.uploads[0]["file_id"]]
    assert len(byteplus.references) == 1
    # The history says who ran it.
    assert "<dt>Provider</dt><dd>BytePlus ModelArk</dd>" in client_alice.get(f"/tasks/{task.pk}/").content.decode()


def test_the_breaker_opens_after_three_failures_skips_and_closes_again(evolink, byteplus, team, alice, settings):
    evolink.fault("create", 503, times=None)
    for _ in range(3):
        assert run_until_final(make_task(team, alice)).provider == "byteplus"
    assert len(evolink.created) == 3
    assert breaker("evolink") == routing.OPEN and breaker("byteplus") == routing.CLOSED

    # Open: EvoLink is skipped, new tasks are even priced for BytePlus.
    task = make_task(team, alice)
    assert task.provider == "byteplus"
    assert run_until_final(task).status == Status.COMPLETED
    assert len(evolink.created) == 3

    # After the cool-down one task tries EvoLink again; its success closes the breaker.
    let_cool_down_pass(settings)
    evolink.clear_faults()
    assert breaker("evolink") == routing.HALF_OPEN
    task = run_until_final(make_task(team, alice))
    assert (task.status, task.provider) == (Status.COMPLETED, "evolink")
    assert breaker("evolink") == routing.CLOSED and len(evolink.created) == 4


def test_a_failed_try_after_the_cool_down_opens_the_breaker_again(evolink, byteplus, team, alice, settings):
    evolink.fault("create", 503, times=None)
    for _ in range(3):
        run_until_final(make_task(team, alice))
    let_cool_down_pass(settings)

    task = run_until_final(make_task(team, alice))
    assert task.provider == "byteplus"
    assert len(evolink.created) == 4  # the one try
    assert breaker("evolink") == routing.OPEN


def test_a_refusal_of_the_task_itself_does_not_fail_over(evolink, byteplus, team, alice):
    task = run_until_final(make_task(team, alice, prompt="x [evolink:http=400]"))
    assert task.status == Status.FAILED and task.error_code == "invalid_request_error"
    assert task.provider == "evolink"
    assert byteplus.created == []
    assert breaker("evolink") == routing.CLOSED  # EvoLink answered: it is up


def test_an_account_out_of_credits_fails_over(evolink, byteplus, team, alice):
    evolink.credits = 0
    task = run_until_final(make_task(team, alice))
    assert (task.status, task.provider) == (Status.COMPLETED, "byteplus")
    assert ProviderCall.objects.get(provider="evolink").code == "insufficient_quota_error"


def test_when_every_provider_fails_the_passing_error_wins_and_the_task_waits(evolink, byteplus, team, alice):
    evolink.fault("create", 503)
    byteplus.fault("create", 403, code="AccountOverdueError")
    task = make_task(team, alice)
    pipeline.advance(task.pk)
    task.refresh_from_db()
    assert task.status == Status.QUEUED and task.retries == 1
    assert task.error_code == "service_unavailable_error"
    assert task.error_message == "EvoLink is temporarily unavailable. Trying again…"
    assert run_until_final(task).status == Status.COMPLETED


def test_when_every_breaker_is_open_the_task_waits_for_the_cool_down(evolink, byteplus, team, alice, settings):
    settings.BREAKER_COOLDOWN_SECONDS = 60
    for name in ("evolink", "byteplus"):
        for _ in range(3):
            routing.record(name, ok=False, code="service_unavailable_error")
    task = make_task(team, alice)
    before = timezone.now()
    pipeline.advance(task.pk)
    task.refresh_from_db()

    assert task.status == Status.QUEUED and task.error_code == "providers_resting"
    assert task.error_message.startswith("Every provider failed several times in a row just now")
    assert task.next_check_at >= before + timedelta(seconds=55)
    assert evolink.received == [] and byteplus.received == []


def test_with_only_one_provider_its_breaker_still_spares_it(evolink, team, alice, settings):
    settings.TASK_MAX_RETRIES = 5
    evolink.fault("create", 503, times=None)
    task = make_task(team, alice)
    for _ in range(4):
        pipeline.advance(task.pk)
    task.refresh_from_db()
    assert len(evolink.created) == 3 and task.error_code == "providers_resting"
    assert "Last problem: EvoLink is temporarily unavailable." in task.error_message


@pytest.mark.django_db(transaction=True)
def test_failing_over_makes_no_request_inside_a_database_transaction(evolink, byteplus, team, alice, monkeypatch):
    seen = []
    original = httpx.Client.send

    def spy(self, request, **kwargs):
        seen.append((request.url.port, connection.in_atomic_block))
        return original(self, request, **kwargs)

    monkeypatch.setattr(httpx.Client, "send", spy)
    evolink.fault("create", 503)
    task = run_until_final(make_task(team, alice, references=[make_reference()]))

    assert (task.status, task.provider) == (Status.COMPLETED, "byteplus")
    ports = {httpx.URL(fake.url).port for fake in (evolink, byteplus)}
    assert {port for port, _ in seen} == ports
    assert not [call for call in seen if call[1]]


# The breaker counts every kind of call, lets one probe through, and waiting costs no retry ----


def test_failing_status_checks_and_file_uploads_count_towards_the_breaker(evolink, team, alice):
    evolink.fault("upload", 503)
    evolink.fault("get", 503, times=2)
    task = run_until_final(make_task(team, alice, references=[make_reference()]))
    assert task.status == Status.COMPLETED
    failed = list(ProviderCall.objects.filter(provider="evolink", ok=False).values_list("code", flat=True))
    assert failed == ["service_unavailable_error"] * 3  # one upload and two status checks


def test_a_resting_provider_costs_a_waiting_task_no_retry(evolink, team, alice, settings):
    for _ in range(settings.BREAKER_FAILURES):
        routing.record("evolink", ok=False, code="service_unavailable_error", message="EvoLink is down.")
    task = make_task(team, alice)
    for _ in range(3):
        pipeline.advance(task.pk)
        task.refresh_from_db()
        task.next_check_at = timezone.now()
        task.save(update_fields=["next_check_at"])
    assert task.status == Status.QUEUED and task.retries == 0
    assert task.error_code == routing.RESTING and "giving them a short rest" in task.error_message
    assert evolink.created == []
    let_cool_down_pass(settings)
    assert run_until_final(task).status == Status.COMPLETED


@pytest.mark.django_db(transaction=True)
def test_a_half_open_provider_gets_one_probe_at_a_time_across_workers(evolink, team, alice, settings):
    from tests.gallery.test_races import race

    for _ in range(settings.BREAKER_FAILURES):
        routing.record("evolink", ok=False, code="service_unavailable_error")
    let_cool_down_pass(settings)
    assert breaker("evolink") == routing.HALF_OPEN
    evolink.slow_seconds = 0.5
    evolink.fault("create", "slow", times=None)  # the probe takes a while: the others arrive meanwhile
    tasks = [make_task(team, alice, prompt=f"Probe {i}") for i in range(3)]

    race(*[lambda t=t: pipeline.advance(t.pk) for t in tasks])

    assert len(evolink.created) == 1  # one probe; the other two waited without a try
    waiting = GenerationTask.objects.filter(status=Status.QUEUED)
    assert waiting.count() == 2 and all(t.retries == 0 and t.error_code == routing.RESTING for t in waiting)
    assert breaker("evolink") == routing.CLOSED  # the probe succeeded
