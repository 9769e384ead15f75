"""The seams between features that a new team meets in its first hour (issue 20), server side:
a refusal always reaches the page that asked, in its own words; the task page and the header
follow the work live; the studio knows the budget before Generate."""

import json
import re
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from gallery.models import GenerationTask, Status
from tests.factories import make_task, run_until_final
from tests.gallery.test_budgets import priced_sandbox, set_budget  # noqa: F401 (fixture)
from tests.gallery.test_studio import HX, form_data

BUDGET_SENTENCE = "This would cost $0.03, and the team has $0.01 left of its $0.01 budget"
RETRY_SENTENCE = "This would cost $0.03, and the team has $0 left of its $0.01 budget"


def rules_of(html):
    return json.loads(re.search(r'<script id="studio-rules" type="application/json">(.*?)</script>', html, re.S).group(1))


def failed_task(team, user, n=1):
    task = run_until_final(make_task(team, user, prompt="A paper boat", n=n))
    GenerationTask.objects.filter(pk=task.pk).update(status=Status.FAILED, error_code="service_error")
    return GenerationTask.objects.get(pk=task.pk)


# Budget refusals --------------------------------------------------------------------------------


def test_an_htmx_submit_over_budget_comes_back_as_the_form_with_the_sentence(priced_sandbox, team, client_alice):
    set_budget(team, "0.01")
    response = client_alice.post("/", form_data(prompt="A lighthouse at dusk"), **HX)
    html = response.content.decode()
    assert response.status_code == 402
    assert 'id="studio-form"' in html and BUDGET_SENTENCE in html
    assert "A lighthouse at dusk</textarea>" in html
    assert not GenerationTask.objects.exists()


def test_the_studio_knows_the_budget_and_the_members_cap_before_generate(priced_sandbox, team, alice, client_alice):
    set_budget(team, "0.10", member_cap="0.05")
    make_task(team, alice, n=1)  # $0.03
    budget = rules_of(client_alice.get("/").content.decode())["budget"]
    assert budget["team"] == {"left": 0.07, "leftText": "$0.07", "limitText": "$0.10"}
    assert budget["member"] == {"left": 0.02, "leftText": "$0.02", "limitText": "$0.05"}
    assert budget["month"] == timezone.now().strftime("%B %Y")


def test_without_limits_the_studio_has_no_budget_to_warn_about(team, client_alice):
    budget = rules_of(client_alice.get("/").content.decode())["budget"]
    assert budget["team"] is None and budget["member"] is None


def test_a_retry_over_budget_from_the_task_page_stays_on_the_task_page(priced_sandbox, team, alice, client_alice):
    task = failed_task(team, alice)
    set_budget(team, "0.01")
    response = client_alice.post(f"/tasks/{task.pk}/retry/", {"next": "task"})
    html = response.content.decode()
    assert response.status_code == 402
    assert "Not done" not in html and "A paper boat · Task" in html and RETRY_SENTENCE in html
    assert "message-error" in html
    assert GenerationTask.objects.count() == 1


def test_a_retry_over_budget_from_the_history_is_an_error_message(priced_sandbox, team, alice, client_alice):
    task = failed_task(team, alice)
    set_budget(team, "0.01")
    response = client_alice.post(f"/tasks/{task.pk}/retry/", **HX)
    assert response.status_code == 402
    event = json.loads(response["HX-Trigger"])["studioMessage"]
    assert event["error"] is True and RETRY_SENTENCE in event["text"]


def test_a_retry_that_works_from_the_task_page_goes_back_to_it(team, alice, client_alice):
    task = failed_task(team, alice)
    response = client_alice.post(f"/tasks/{task.pk}/retry/", {"next": "task"})
    assert response.status_code == 302 and response["Location"] == f"/tasks/{task.pk}/"
    assert GenerationTask.objects.count() == 2


# Live ------------------------------------------------------------------------------------------------


def test_the_task_page_polls_while_the_task_runs_and_answers_204_when_nothing_changed(team, alice, client_alice):
    task = make_task(team, alice)
    html = client_alice.get(f"/tasks/{task.pk}/").content.decode()
    poll = re.search(r'hx-get="([^"]+)" hx-trigger="every 2s"', html).group(1).replace("&amp;", "&")
    assert client_alice.get(poll, **HX).status_code == 204
    GenerationTask.objects.filter(pk=task.pk).update(status=Status.RUNNING, progress=40,
                                                     updated_at=timezone.now() + timedelta(seconds=1))
    response = client_alice.get(poll, **HX)
    fragment = response.content.decode()
    assert response.status_code == 200 and fragment.lstrip().startswith('<div id="task-live"')
    assert "40%" in fragment and "<html" not in fragment
    run_until_final(GenerationTask.objects.get(pk=task.pk))
    final = client_alice.get(poll, **HX).content.decode()
    assert "status-completed" in final or "status-failed" in final
    assert "hx-trigger" not in final  # the poll ends with the task


def test_a_teammates_new_task_reaches_an_idle_history_poll_with_the_spend(priced_sandbox, team, alice, bob, client_alice):
    run_until_final(make_task(team, alice))
    html = client_alice.get("/").content.decode()
    token = re.search(r'data-version="([^"]+)"', html).group(1)
    assert re.search(r'id="history-poll"[^>]*hx-trigger="every 5s"', html)
    make_task(team, bob, prompt="Bob's new idea", n=2)
    response = client_alice.get(f"/history/?v={token}", **HX)
    fragment = response.content.decode()
    assert "Bob&#x27;s new idea" in fragment
    chip = re.search(r'<a [^>]*id="header-spend"[^>]*>.*?</a>', fragment, re.S).group(0)
    assert 'hx-swap-oob="true"' in chip and "$0.09" in chip


def test_a_row_that_changed_brings_the_spend_chip_along(priced_sandbox, team, alice, client_alice):
    task = make_task(team, alice, n=1)
    token = re.search(r'data-version="([^"]+)"', client_alice.get("/").content.decode()).group(1)
    run_until_final(task)
    fragment = client_alice.get(f"/history/?v={token}", **HX).content.decode()
    assert f'id="task-{task.pk}"' in fragment
    assert re.search(r'id="header-spend" hx-swap-oob="true"', fragment)


def test_the_priority_chip_says_what_it_is(team, alice, client_alice):
    make_task(team, alice)
    assert "Standard priority" in client_alice.get("/").content.decode()
