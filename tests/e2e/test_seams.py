"""The seams between features, walked in a real browser (issue 20): every refusal a person can
meet shows the server's own sentence and keeps what they typed; the studio warns before Generate
when the budget will not cover the estimate; an idle tab, the task page and the header's spend
follow work started elsewhere."""

import re
from decimal import Decimal

import pytest
from django.core.files.storage import default_storage
from playwright.sync_api import expect

from gallery.models import GenerationTask, Status
from tests.factories import PASSWORD
from tests.e2e.test_studio import drop, image_file, tiles
from tests.factories import make_task, run_until_final
from tests.e2e.test_studio_reach import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PROMPT = "A lighthouse at dusk, long exposure"
POLL = 8_000  # ms: the idle history polls every 5 s


@pytest.fixture
def priced(settings):
    settings.PRICE_OVERRIDES = {"sandbox": Decimal("0.03")}


def set_limits(team, budget=None, member_cap=None):
    team.monthly_budget = None if budget is None else Decimal(budget)
    team.member_monthly_cap = None if member_cap is None else Decimal(member_cap)
    team.save()


def generate(page):
    page.locator("button.generate").click()


def send_status(page):
    return page.locator("#studio-form [data-send-status]")


# Refusals -----------------------------------------------------------------------------------------


def test_over_budget_the_studio_warns_before_generate_and_generate_shows_the_budget_sentence(
    live_server, page, team, priced
):
    set_limits(team, budget="0.01")
    sign_in(page, live_server)
    page.locator("textarea[name=prompt]").fill(PROMPT)
    sentence = re.compile(r"This would cost \$0\.03, and the team has \$0\.01 left of its \$0\.01 budget for \w+ \d{4}\.")
    note = page.locator("[data-budget-note]")
    expect(note).to_be_visible()
    expect(note).to_have_text(sentence)
    page.locator("input[name=n]").fill("2")
    expect(note).to_contain_text("This would cost $0.06")
    page.locator("input[name=n]").fill("1")

    generate(page)
    expect(page.locator("#studio-form .message-error")).to_contain_text(sentence)
    expect(page.locator("textarea[name=prompt]")).to_have_value(PROMPT)
    expect(send_status(page)).not_to_contain_text("error 402")
    assert not GenerationTask.objects.exists()


def test_a_member_over_their_cap_reads_the_caps_sentence(live_server, page, team, bob, priced):
    set_limits(team, member_cap="0.02")
    sign_in(page, live_server, "bob")
    page.locator("textarea[name=prompt]").fill(PROMPT)
    expect(page.locator("[data-budget-note]")).to_contain_text("you have $0.02 left of the $0.02 each member may spend")
    generate(page)
    expect(page.locator("#studio-form .message-error")).to_contain_text(
        "This would cost $0.03, and you have $0.02 left of the $0.02 each member may spend"
    )
    expect(page.locator("textarea[name=prompt]")).to_have_value(PROMPT)
    assert not GenerationTask.objects.exists()


def test_a_rejected_form_shows_each_problem_and_keeps_the_input(live_server, page, team):
    sign_in(page, live_server)
    page.locator("textarea[name=prompt]").fill("   ")
    page.locator("textarea[name=prompt]").evaluate("t => t.removeAttribute('required')")
    generate(page)
    expect(page.locator("#studio-form [data-errors-for=prompt]")).to_have_text("Write a prompt: describe the image you want.")
    assert not GenerationTask.objects.exists()


def test_an_expired_form_says_so_in_the_servers_words_and_keeps_the_prompt(live_server, page, context, team):
    sign_in(page, live_server)
    page.locator("textarea[name=prompt]").fill(PROMPT)
    context.clear_cookies(name="csrftoken")
    generate(page)
    expect(send_status(page)).to_have_text(re.compile(r"^This form could not be accepted: it was open too long"))
    expect(page.locator("textarea[name=prompt]")).to_have_value(PROMPT)
    assert not GenerationTask.objects.exists()


def test_storage_refusing_the_references_says_so_and_keeps_them(live_server, page, team, monkeypatch):
    sign_in(page, live_server)
    page.locator("textarea[name=prompt]").fill(PROMPT)
    drop(page, [image_file("fox.png")])
    expect(tiles(page)).to_have_count(1)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(default_storage, "save", full_disk)
    generate(page)
    expect(page.locator("#studio-form .message-error")).to_contain_text(
        "The studio could not save your reference images just now"
    )
    expect(page.locator("textarea[name=prompt]")).to_have_value(PROMPT)
    expect(tiles(page)).to_have_count(1)
    assert not GenerationTask.objects.exists()


def test_a_row_action_on_a_task_deleted_meanwhile_shows_the_404_sentence(live_server, page, team, alice):
    task = run_until_final(make_task(team, alice, prompt="x [sandbox:fail=service_error]"))
    assert task.status == Status.FAILED
    sign_in(page, live_server)
    GenerationTask.objects.filter(pk=task.pk).delete()  # a teammate, in another tab
    page.locator(f"#task-{task.pk}").get_by_role("button", name="Retry").click()
    expect(page.locator("#history .message-error")).to_have_text(
        "There is nothing here, or it belongs to another team."
    )


def test_deleting_a_task_still_being_wrapped_up_says_to_try_again(live_server, page, team, alice):
    task = run_until_final(make_task(team, alice, prompt="A paper boat"))
    GenerationTask.objects.filter(pk=task.pk).update(tidy_pending=True)
    sign_in(page, live_server)
    page.on("dialog", lambda dialog: dialog.accept())  # until every confirmation is the styled one
    page.locator(f"#task-{task.pk}").get_by_role("button", name="Delete").click()
    confirm = page.locator("dialog[open]").get_by_role("button", name="Delete")
    if confirm.count():
        confirm.click()
    expect(page.locator("#history .message-error")).to_have_text(
        "This task is still being wrapped up by a worker: try deleting it again in a moment."
    )
    assert GenerationTask.objects.filter(pk=task.pk).exists()


def test_a_retry_over_budget_on_the_task_page_stays_there_with_the_sentence(live_server, page, team, alice, priced):
    task = run_until_final(make_task(team, alice, prompt="A paper boat"))
    GenerationTask.objects.filter(pk=task.pk).update(status=Status.FAILED, error_code="service_error")
    set_limits(team, budget="0.01")
    sign_in(page, live_server)
    page.locator(f"#task-{task.pk}").get_by_role("link", name="Open").click()
    expect(page).to_have_title(re.compile(r"^A paper boat · Task"))
    page.get_by_role("button", name="Retry").click()
    expect(page).to_have_title(re.compile(r"^A paper boat · Task"))
    expect(page.locator(".message-error")).to_contain_text("This would cost $0.03, and the team has $0 left")
    assert GenerationTask.objects.count() == 1


def test_too_many_failed_sign_ins_say_how_long_to_wait(live_server, page, team, settings):
    page.goto(f"{live_server.url}/login/")
    for attempt in range(1, settings.AXES_FAILURE_LIMIT + 1):
        page.get_by_label("E-mail or username").fill("alice")
        page.get_by_label("Password").fill("not the password")
        with page.expect_response(lambda r: r.url.endswith("/login/") and r.request.method == "POST") as answer:
            page.get_by_role("button", name="Sign in").click()
        if attempt < settings.AXES_FAILURE_LIMIT:
            expect(page.get_by_label("E-mail or username")).to_have_value("alice")  # kept to try again
    assert answer.value.status == 429
    expect(page.get_by_role("heading", name="Too many failed sign-ins")).to_be_visible()
    expect(page.locator("main")).to_contain_text("paused for 15 minutes after 5 wrong passwords in a row")


# Live -----------------------------------------------------------------------------------------------


def test_a_teammates_task_shows_up_in_an_idle_tab_with_the_new_spend(live_server, new_context, team, priced):
    alice_page = new_context().new_page()
    sign_in(alice_page, live_server)
    expect(alice_page.locator("#history .task-row")).to_have_count(0)
    expect(alice_page.locator("#header-spend")).to_contain_text("$0")

    bob_page = new_context().new_page()
    sign_in(bob_page, live_server, "bob")
    bob_page.locator("textarea[name=prompt]").fill("Bob's lighthouse")
    bob_page.locator("button.generate").click()
    expect(bob_page.locator("#history .task-row")).to_have_count(1)

    row = alice_page.locator("#history .task-row")
    expect(row).to_have_count(1, timeout=POLL)
    expect(row.locator(".task-prompt")).to_have_text("Bob's lighthouse")
    expect(alice_page.locator("#header-spend")).to_contain_text("$0.03")


def test_the_task_page_and_the_queued_note_follow_the_task_to_its_end(live_server, page, team, alice):
    sign_in(page, live_server)
    page.locator("textarea[name=prompt]").fill(PROMPT)
    page.locator("button.generate").click()
    expect(send_status(page)).to_have_text("Queued: your task is at the top of the history.")
    task = GenerationTask.objects.get()
    run_until_final(task)
    expect(page.locator(f"#task-{task.pk}")).to_have_attribute("data-status", "completed", timeout=POLL)
    expect(send_status(page)).to_have_text("")

    other = make_task(team, alice, prompt="A second lighthouse")
    page.goto(f"{live_server.url}/tasks/{other.pk}/")
    expect(page.locator(".task-state .status")).not_to_have_text(re.compile("Completed"))
    run_until_final(other)
    expect(page.locator(".task-state .status")).to_have_text(re.compile("Completed"), timeout=POLL)
    expect(page.locator(".task-images img")).to_have_count(1)


def test_the_full_screen_viewer_opens_from_a_history_row_and_the_task_page(live_server, page, team, alice):
    task = run_until_final(make_task(team, alice, prompt="Three foxes", n=3))
    assert task.images.count() == 3
    sign_in(page, live_server)
    for where in ("history", "task page"):
        if where == "task page":
            page.goto(f"{live_server.url}/tasks/{task.pk}/")
            thumbs = page.locator(".task-images a[data-viewer]")
        else:
            thumbs = page.locator(f"#task-{task.pk} .thumbs a[data-viewer]")
        thumbs.first.click()
        viewer = page.locator("dialog[open]")
        expect(viewer).to_contain_text("1 of 3")
        page.keyboard.press("ArrowRight")
        expect(viewer).to_contain_text("2 of 3")
        page.keyboard.press("Escape")
        expect(page.locator("dialog[open]")).to_have_count(0)
        expect(thumbs.nth(1)).to_be_focused()  # back on the image last shown
