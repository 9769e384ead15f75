"""The studio's second pass in a real browser, at a laptop's 1440×900 and a phone's 390×844:
Generate is always in reach, sending shows and every click is answered, rows are honest, the
keyboard is enough, and axe-core finds nothing serious on any page, light or dark."""

import contextlib
import re

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from gallery.failures import FAILURES
from gallery.models import GenerationTask, Status
from tests.factories import PASSWORD, make_user
from tests.e2e.axe import violations
from tests.e2e.conftest import worker_process
from tests.e2e.test_studio import drop, first_row, image_file, tiles
from tests.factories import make_finished_task, make_image, make_task, run_until_final

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LAPTOP = {"viewport": {"width": 1440, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True}
SIZES = {"laptop": LAPTOP, "phone": PHONE}


@pytest.fixture(params=["laptop", "phone"])
def screen(request, new_context, live_server, team):
    """A signed-in page of the studio at each size."""
    context = new_context(**SIZES[request.param])
    page = context.new_page()
    sign_in(page, live_server)
    page.size_name = request.param
    return page


def sign_in(page, live_server, username="alice"):
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("E-mail or username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{live_server.url}/")


def in_viewport(page, locator):
    box = locator.bounding_box()
    size = page.viewport_size
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= size["height"] and box["x"] >= 0 \
        and box["x"] + box["width"] <= size["width"]


def expect_in_view(page, locator, timeout=3000):
    """Waits (scrolling may be smooth) until the element is wholly inside the viewport."""
    handle = locator.element_handle()
    page.wait_for_function(
        """(el) => { const r = el.getBoundingClientRect();
            return r.top >= 0 && r.bottom <= innerHeight && r.left >= 0 && r.right <= innerWidth; }""",
        arg=handle, timeout=timeout,
    )


def open_file_chooser_with(page, key, attempts=3):
    for attempt in range(attempts):
        try:
            with page.expect_file_chooser(timeout=5000) as chooser:
                page.keyboard.press(key)
            return chooser.value
        except PlaywrightTimeoutError:
            if attempt == attempts - 1:
                raise
    return None


def generate(page):
    return page.locator("button.generate")


def full_history(team, alice, count=20):
    for i in range(count):
        task = make_finished_task(team, alice, prompt=f"An older task number {i}", n=2)
        make_image(task, 0, width=160, height=90)


# Generate is always in reach ------------------------------------------------------------------


def test_generate_is_in_view_on_load_after_scrolling_a_full_history_and_after_a_submit(screen, team, alice, live_server):
    page = screen
    full_history(team, alice)
    page.reload()
    expect(page.locator("#history .task-row")).to_have_count(20)
    assert in_viewport(page, generate(page))
    assert in_viewport(page, page.locator("#studio-form textarea[name=prompt]")) or page.size_name == "phone"

    # Scroll to the oldest row: on a laptop the history scrolls in its own column, on a phone the page.
    page.locator("#history .task-row").last.scroll_into_view_if_needed()
    assert in_viewport(page, page.locator("#history .task-row").last)
    assert in_viewport(page, generate(page))

    page.locator("textarea[name=prompt]").fill("A kite over the dunes")
    generate(page).click()
    expect(first_row(page).locator(".task-prompt")).to_have_text("A kite over the dunes")
    expect(page.locator("[data-send-status]")).to_contain_text("Queued")
    assert in_viewport(page, generate(page))
    expect_in_view(page, first_row(page))  # the new row was brought into view
    if page.size_name == "laptop":
        expect(page.locator("textarea[name=prompt]")).to_be_focused()


def test_nothing_is_wider_than_a_phone_and_the_header_does_not_wrap(new_context, live_server, team):
    page = new_context(**PHONE).new_page()
    sign_in(page, live_server)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    header = page.locator(".site-header").bounding_box()
    assert header["height"] < 90  # one line: the section links are behind the Menu button
    page.locator(".nav-menu summary").click()
    expect(page.locator(".nav-menu details").get_by_role("link", name="Gallery")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator(".nav-menu details")).not_to_have_attribute("open", "")


# Sending shows, and every click is answered --------------------------------------------------


def test_the_upload_progress_bar_moves_for_a_large_reference(new_context, live_server, team):
    page = new_context(**LAPTOP).new_page()
    sign_in(page, live_server)
    drop(page, [image_file("big.png", size=(1200, 800))], pad_to=6 * 1024 * 1024)
    expect(tiles(page)).to_have_count(1)
    page.locator("textarea[name=prompt]").fill("A big reference")
    slow_network(page, latency_ms=20, upload_bytes_per_second=2 * 1024 * 1024)  # a café's uplink: seconds
    page.evaluate("""() => { window.progressSeen = [];
        document.addEventListener('htmx:xhr:progress', () => {
          const bar = document.querySelector('[data-upload-progress]');
          if (!bar.hidden) window.progressSeen.push(bar.value);
        }); }""")
    generate(page).click()
    expect(page.locator("[data-send-status]")).to_contain_text("Sending")
    expect(generate(page)).to_be_disabled()
    expect(page.locator("[data-send-status]")).to_contain_text("Queued", timeout=30_000)
    seen = page.evaluate("window.progressSeen")
    assert any(0 < value < 100 for value in seen), seen  # it moved, visibly, between the ends
    assert GenerationTask.objects.get().references.count() == 1


def slow_network(page, latency_ms, upload_bytes_per_second=-1):
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": latency_ms, "downloadThroughput": -1, "uploadThroughput": upload_bytes_per_second,
    })


def test_a_second_generate_while_the_first_is_sent_is_refused_out_loud(new_context, live_server, team):
    page = new_context(**LAPTOP).new_page()
    sign_in(page, live_server)
    slow_network(page, latency_ms=700)
    prompt = page.locator("textarea[name=prompt]")
    prompt.fill("First of two")
    prompt.press("Control+Enter")
    prompt.press("Control+Enter")  # at once, while the first is on its way
    expect(page.locator("[data-send-status]")).to_contain_text("Still sending your previous task")
    expect(first_row(page).locator(".task-prompt")).to_have_text("First of two", timeout=15_000)
    assert GenerationTask.objects.count() == 1  # one task, and the second press was answered in words


def test_typing_while_a_task_is_sent_is_kept_for_the_next_one(new_context, live_server, team):
    page = new_context(**LAPTOP).new_page()
    sign_in(page, live_server)
    slow_network(page, latency_ms=800)
    prompt = page.locator("textarea[name=prompt]")
    prompt.fill("Sent first")
    generate(page).click()
    prompt.fill("Typed while the first was on its way")
    expect(first_row(page).locator(".task-prompt")).to_have_text("Sent first", timeout=15_000)
    expect(prompt).to_have_value("Typed while the first was on its way")


def test_twenty_five_submissions_in_a_row_each_create_a_task(new_context, live_server, team):
    """Once, about two clicks in 25 sent nothing and said nothing: now every one is a task."""
    page = new_context(**LAPTOP).new_page()
    sign_in(page, live_server)
    for i in range(25):
        page.locator("textarea[name=prompt]").fill(f"Submission {i}")
        with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/")) as answer:
            generate(page).click()
        assert answer.value.status == 200
        expect(first_row(page).locator(".task-prompt")).to_have_text(f"Submission {i}")
    assert GenerationTask.objects.count() == 25


def test_a_poll_answered_after_a_submit_replaced_the_history_is_dropped(new_context, live_server, team, alice,
                                                                        script_errors):
    """Once, a poll sent just before a submit came back after the submit had replaced the history,
    and htmx could not find where to put it ("Invalid re-target #history")."""
    make_task(team, alice, prompt="Still running")  # the history polls while a task runs
    page = new_context(**LAPTOP).new_page()
    held = []
    page.route(re.compile(r".*/history/\?v=.*"), lambda route: held.append(route))
    sign_in(page, live_server)
    for _ in range(50):
        if held:
            break
        page.wait_for_timeout(100)
    assert held, "the history did not poll"
    page.locator("textarea[name=prompt]").fill("Sent while a poll travels")
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/")) as answer:
        generate(page).click()
    assert answer.value.status == 200
    expect(first_row(page).locator(".task-prompt")).to_have_text("Sent while a poll travels")
    page.unroute(re.compile(r".*/history/\?v=.*"))
    for route in held:  # the poll's answer arrives now (if the page still wants it)
        with contextlib.suppress(PlaywrightError):
            route.continue_()
    page.wait_for_timeout(500)
    expect(first_row(page).locator(".task-prompt")).to_have_text("Sent while a poll travels")
    assert script_errors == []


def test_an_upload_the_server_refuses_says_so_next_to_generate(new_context, live_server, team, settings):
    page = new_context(**LAPTOP).new_page()
    sign_in(page, live_server)
    page.route("**/", lambda route: route.fulfill(status=413, body="too large")
               if route.request.method == "POST" else route.continue_())
    page.locator("textarea[name=prompt]").fill("Refused")
    generate(page).click()
    expect(page.locator("[data-send-status]")).to_contain_text("too large to send together")
    expect(generate(page)).to_be_enabled()
    assert not GenerationTask.objects.exists()


# Honest rows ------------------------------------------------------------------------------------


def test_rows_show_real_shapes_partial_results_and_sentences_for_failures(new_context, live_server, team, alice):
    wide = make_finished_task(team, alice, prompt="A wide panorama", size="21:9", n=4)
    make_image(wide, 0, width=210, height=90)
    make_image(wide, 1, width=210, height=90)
    run_until_final(make_task(team, alice, prompt="Out of credit [sandbox:http=402]"))
    page = new_context(**LAPTOP).new_page()
    sign_in(page, live_server)

    row = page.locator(f"#task-{wide.pk}")
    expect(row.locator("[data-image-count]")).to_have_text("2 of 4 images")
    box = row.locator(".thumbs img").first.bounding_box()
    assert box["width"] / box["height"] == pytest.approx(210 / 90, rel=0.05)  # not cropped to a square
    failed = page.locator(".task-row[data-status=failed]")
    expect(failed.locator(".task-error")).to_have_text(
        "The provider account is out of credit. An owner can top it up, then retry this task."
    )
    expect(failed.get_by_role("link", name="Top up the provider")).to_be_visible()
    assert "HTTP" not in failed.inner_text() and "insufficient_quota" not in failed.inner_text()


@pytest.mark.parametrize("code", sorted(FAILURES))
def test_every_failure_code_reads_as_a_sentence_with_a_next_step(code, client_alice, team, alice):
    """Server side, for every code of gallery/failures.py (the browser shows what this renders)."""
    task = make_finished_task(team, alice, prompt="x", status=Status.FAILED, error_code=code, error_message="raw")
    html = client_alice.get("/").content.decode()
    row = html[html.index(f'id="task-{task.pk}"'):]
    row = row[: row.index("</article>")]
    failure = FAILURES[code]
    assert failure.sentence.replace("'", "&#x27;") in row and failure.next_step.replace("'", "&#x27;") in row
    assert code not in re.sub(r'(id|href|hx-\w+|action|class|data-\w+)="[^"]*"', "", row)
    assert ("/retry/" in row) == (failure.action != "edit")


# The keyboard is enough ----------------------------------------------------------------------------


def test_a_keyboard_only_flow_from_the_prompt_to_a_finished_task(new_context, live_server, team, tmp_path):
    page = new_context(**LAPTOP).new_page()
    sign_in(page, live_server)
    # The skip link comes first, then the header; Tab reaches the prompt without the mouse.
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    page.locator("textarea[name=prompt]").focus()
    page.keyboard.type("A lighthouse typed on a keyboard")
    # The drop zone opens the file picker with Enter; the file input itself is out of the tab order.
    assert page.locator("[data-file-input]").get_attribute("tabindex") == "-1"
    page.locator("details[data-references] summary").focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.locator("[data-dropzone]")).to_be_focused()
    # Chromium ignores a file-picker request from an element shown a moment ago (an input
    # protection against tricked clicks), and on a loaded machine "a moment" grows; a person
    # takes longer than that between two keys, and presses again if nothing opened.
    page.wait_for_timeout(1000)
    chooser = open_file_chooser_with(page, "Enter")
    chooser.set_files(files=[{"name": "key.png", "mimeType": "image/png", "buffer": image_file("key.png")["bytes"]}])
    expect(tiles(page)).to_have_count(1)
    with worker_process(tmp_path / "worker.log", SANDBOX_RUN_SECONDS="0.5", SANDBOX_QUEUE_SECONDS="0",
                        TASK_FIRST_CHECK_SECONDS="0", TASK_CHECK_SECONDS="0.2"):
        page.locator("textarea[name=prompt]").focus()
        page.keyboard.press("Control+Enter")
        expect(first_row(page)).to_have_attribute("data-status", "completed", timeout=20_000)
    expect(first_row(page).locator(".thumbs img")).to_have_count(1)


def test_the_gallerys_skip_link_reaches_the_images(new_context, live_server, team, alice):
    make_image(make_finished_task(team, alice))
    page = new_context(**LAPTOP).new_page()
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/gallery/")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to the images")).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.locator("#grid a.tile-open").first).to_be_focused()


def test_the_example_prompt_fills_the_form(new_context, live_server, team):
    page = new_context(**LAPTOP).new_page()
    sign_in(page, live_server)
    page.locator("[data-example-prompt]").click()
    expect(page.locator("textarea[name=prompt]")).to_have_value(re.compile("red fox reading a newspaper"))
    expect(page.locator("[data-char-count]")).not_to_have_text(re.compile("^0 /"))


def test_the_ctrl_enter_hint_is_not_shown_on_a_touch_phone(new_context, live_server, team):
    page = new_context(**PHONE).new_page()
    sign_in(page, live_server)
    expect(page.locator("button.generate kbd")).to_be_hidden()


def test_an_invite_link_has_a_copy_button(new_context, live_server, team):
    context = new_context(**LAPTOP, permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/team/")
    page.get_by_role("button", name="Create invite link").click()
    page.get_by_role("button", name="Copy link").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == page.locator("#invite-link").inner_text()


# axe-core finds nothing serious ----------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_or_critical_violations(scheme, browser, live_server, team, alice, bob):
    done = run_until_final(make_task(team, alice, prompt="An accessible lighthouse", n=2))
    run_until_final(make_task(team, alice, prompt="A blocked one [sandbox:fail=content_policy_violation]"))
    make_task(team, bob, prompt="Still running [sandbox:slow=60]")
    make_user("eve")
    context = browser.new_context(**LAPTOP, color_scheme=scheme, bypass_csp=True)  # axe is injected
    page = context.new_page()
    sign_in(page, live_server)
    found = {}
    for path in ["/", "/gallery/", f"/gallery/{done.images.first().pk}/", f"/tasks/{done.pk}/", "/team/",
                 "/providers/", "/usage/", "/password/change/"]:
        page.goto(f"{live_server.url}{path}")
        found[path] = violations(page)
    page.goto(f"{live_server.url}/")
    page.locator("details.user-menu summary").click()
    found["account menu open"] = violations(page)
    context.close()
    assert not any(found.values()), found
