"""The studio in a real browser, used the way a new person uses it: drop and paste references,
generate, watch the history update by itself, remix, and meet every limit before submitting.

A real worker process (`manage.py worker`) runs the tasks against the live test database, with
the sandbox taking about a second, so "running → completed without a reload" really happens.
"""

import base64
import io
import re

import pytest
from django.core.exceptions import ValidationError
from PIL import Image, ImageDraw
from playwright.sync_api import expect

from gallery import options
from gallery.forms import studio as forms
from gallery.models import GenerationTask
from tests.factories import PASSWORD
from tests.e2e.conftest import worker_process
from tests.factories import make_task, run_until_final

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LIVE = 15_000  # ms: a task goes queued → running → completed through the real worker and poll
PENDING = re.compile(r"^(queued|submitted|running|storing)$")


# --- Real image files, made with Pillow, handed to the page as File objects ---------------------

def image_file(name, colour="orange", size=(96, 64), kind="PNG"):
    picture = Image.new("RGB", size, colour)
    ImageDraw.Draw(picture).ellipse((8, 8, size[0] - 8, size[1] - 8), fill="white")
    out = io.BytesIO()
    picture.save(out, kind)
    return {
        "name": name,
        "type": f"image/{kind.lower()}",
        "data": base64.b64encode(out.getvalue()).decode(),
        "bytes": out.getvalue(),
    }


def in_page(files, pad_to=0):
    return [{"name": f["name"], "type": f["type"], "data": f["data"], "padTo": pad_to} for f in files]


MAKE_TRANSFER = """(files) => {
  const transfer = new DataTransfer();
  for (const f of files) {
    const raw = atob(f.data);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    const parts = [bytes];
    if (f.padTo > raw.length) parts.push(new Uint8Array(f.padTo - raw.length));  // trailing bytes
    transfer.items.add(new File(parts, f.name, {type: f.type}));
  }
  return transfer;
}"""


def drop(page, files, pad_to=0):
    """Drags files onto the drop zone: a real DragEvent carrying a DataTransfer of Files."""
    transfer = page.evaluate_handle(MAKE_TRANSFER, in_page(files, pad_to))
    page.dispatch_event("[data-dropzone]", "dragover", {"dataTransfer": transfer})
    page.dispatch_event("[data-dropzone]", "drop", {"dataTransfer": transfer})


def paste(page, files):
    """Pastes files from the clipboard anywhere on the page (a ClipboardEvent on the document)."""
    transfer = page.evaluate_handle(MAKE_TRANSFER, in_page(files))
    page.evaluate(
        "(t) => document.dispatchEvent("
        "new ClipboardEvent('paste', {clipboardData: t, bubbles: true, cancelable: true}))",
        transfer,
    )


def server_says(check, *args):
    """The server's own wording for a rule (gallery/forms/studio.py), to compare with the browser's."""
    try:
        error = check(*args)
    except ValidationError as e:
        error = e
    return error.messages[0]


# --- People and processes ------------------------------------------------------------------------

def sign_in(page, live_server):
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("E-mail or username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", name="Generate")).to_be_visible()


@pytest.fixture
def worker(live_server, team, tmp_path):
    with worker_process(tmp_path / "worker.log", SANDBOX_RUN_SECONDS="1", SANDBOX_QUEUE_SECONDS="0",
                        TASK_FIRST_CHECK_SECONDS="0", TASK_CHECK_SECONDS="0.2") as process:
        yield process


def form(page):
    return page.locator("#studio-form")


def tiles(page):
    return page.locator("#studio-form [data-ref-tiles] .ref-tile")


def errors_for(page, field):
    return page.locator(f"#studio-form ul[data-errors-for={field}]")


def first_row(page):
    return page.locator("#history .task-row").first


# --- The whole story -----------------------------------------------------------------------------

def test_drop_paste_generate_watch_it_finish_and_remix(live_server, page, team, alice, worker):
    older = run_until_final(make_task(team, alice, prompt="An older lighthouse at dusk"))
    assert older.status == "completed"
    sign_in(page, live_server)
    studio_url = page.url
    expect(page.locator("#history .task-row")).to_have_count(1)

    # Drag two images onto the drop zone: both show a preview with their name.
    drop(page, [image_file("fox.png", "orange"), image_file("cafe.webp", "teal", kind="WEBP")])
    expect(tiles(page)).to_have_count(2)
    expect(tiles(page).locator(".ref-name")).to_have_text(["fox.png", "cafe.webp"])
    expect(tiles(page).locator("img")).to_have_count(2)
    expect(page.locator("[data-ref-count]")).to_have_text("2 of 10")

    # Remove one.
    page.get_by_role("button", name="Remove cafe.webp").click()
    expect(tiles(page).locator(".ref-name")).to_have_text(["fox.png"])

    # Paste one from the clipboard (browsers call a pasted screenshot "image.png").
    paste(page, [image_file("image.png", "purple")])
    expect(tiles(page)).to_have_count(2)
    expect(tiles(page).nth(1).locator(".ref-name")).to_have_text(re.compile(r"^pasted-\d+-0\.png$"))
    pasted_name = tiles(page).nth(1).locator(".ref-name").inner_text()

    # Ask for two images and press Generate.
    page.locator("textarea[name=prompt]").fill("A red fox reading a newspaper in a sunlit café")
    page.locator("input[name=n]").fill("2")
    expect(errors_for(page, "n")).to_have_text("")
    page.evaluate("window.__studioMarker = 'still the same page'")
    page.locator("button.generate").click()

    # The row is at the top of the history at once, nothing reloaded; the form keeps what was sent
    # (people iterate), the references now as the task's stored copies.
    row = first_row(page)
    expect(row.locator(".task-prompt")).to_have_text("A red fox reading a newspaper in a sunlit café")
    expect(row).to_have_attribute("data-status", PENDING)
    expect(page.locator("#history .task-row")).to_have_count(2)
    older_row = page.locator("#history .task-row").nth(1)
    expect(older_row.locator(".task-prompt")).to_have_text("An older lighthouse at dusk")
    expect(tiles(page).locator(".ref-name")).to_have_text(["fox.png", pasted_name])
    expect(page.locator("textarea[name=prompt]")).to_have_value("A red fox reading a newspaper in a sunlit café")
    expect(page.locator("input[name=n]")).to_have_value("2")  # the settings stay for the next prompt
    assert page.url == studio_url
    assert page.evaluate("window.__studioMarker") == "still the same page"

    task = GenerationTask.objects.get(prompt__startswith="A red fox")
    assert task.n == 2
    assert list(task.references.order_by("position").values_list("original_name", flat=True)) == [
        "fox.png", pasted_name,
    ]

    # The worker runs it; the poll brings it to completed with two thumbnails, no reload.
    expect(row).to_have_attribute("data-status", "completed", timeout=LIVE)
    expect(row.locator(".thumbs img")).to_have_count(2)
    expect(page.locator("#history-counts")).to_contain_text("0 running · 2 completed")
    expect(page.locator("[data-announcer]")).to_have_text(
        "Finished: “A red fox reading a newspaper in a sunlit café”, 2 images."
    )
    assert page.url == studio_url
    assert page.evaluate("window.__studioMarker") == "still the same page"
    for thumb in row.locator(".thumbs img").all():
        expect(thumb).to_have_js_property("complete", True)
        assert thumb.evaluate("img => img.naturalWidth") > 0

    # Clear starts over: prompt and references go, the settings stay.
    page.get_by_role("button", name="Clear").click()
    expect(tiles(page)).to_have_count(0)
    expect(page.locator("textarea[name=prompt]")).to_have_value("")
    expect(page.locator("input[name=n]")).to_have_value("2")
    expect(page.locator("[data-ref-count]")).to_have_text("0 of 10")

    # Remix: the form is filled with the prompt, n and the same references as tiles.
    row.locator("[data-remix]").click()
    expect(page.locator("textarea[name=prompt]")).to_have_value(task.prompt)
    expect(page.locator("input[name=n]")).to_have_value("2")
    expect(tiles(page).locator(".ref-name")).to_have_text(["fox.png", pasted_name])
    expect(page.locator("[data-ref-count]")).to_have_text("2 of 10")
    assert page.evaluate("window.__studioMarker") == "still the same page"

    # Generating the remix reuses the stored references without uploading them again.
    page.locator("button.generate").click()
    expect(page.locator("#history .task-row")).to_have_count(3)
    expect(tiles(page)).to_have_count(2)
    remix = GenerationTask.objects.order_by("-created_at").first()
    assert remix.pk != task.pk and remix.prompt == task.prompt and remix.n == 2
    assert list(remix.references.order_by("position").values_list("original_name", flat=True)) == [
        "fox.png", pasted_name,
    ]


def test_every_limit_is_explained_in_the_browser_with_the_servers_words(live_server, page, team):
    sign_in(page, live_server)

    # Eleven files: one too many.
    too_many = server_says(forms.check_reference_count, 11)
    assert too_many == "You added 11 reference images; the limit is 10. Remove 1."
    drop(page, [image_file(f"ref-{i:02}.png", (20 * i, 90, 160)) for i in range(11)])
    expect(tiles(page)).to_have_count(11)
    expect(errors_for(page, "references")).to_have_text(too_many)
    expect(page.locator("[data-ref-count]")).to_have_text("11 of 10")

    # Removing one clears it; ten references with six images breaks the combined limit, next to n.
    page.get_by_role("button", name="Remove ref-10.png").click()
    expect(errors_for(page, "references")).to_have_text("")
    page.locator("input[name=n]").fill("6")
    combined = server_says(forms.check_counts, 10, 6)
    expect(errors_for(page, "n")).to_have_text(combined)
    n_errors_id = errors_for(page, "n").get_attribute("id")
    expect(page.locator("input[name=n]")).to_have_attribute("aria-describedby", n_errors_id)
    page.locator("input[name=n]").fill("5")
    expect(errors_for(page, "n")).to_have_text("")

    # A file of 10 MB + 1 byte (a real PNG with trailing bytes).
    page.reload()
    expect(tiles(page)).to_have_count(0)
    size = options.MAX_REFERENCE_BYTES + 1
    too_big = server_says(forms.too_big, "huge.png", size)
    assert "10,485,761 bytes" in too_big
    drop(page, [image_file("huge.png")], pad_to=size)
    expect(tiles(page)).to_have_count(1)
    expect(errors_for(page, "references")).to_have_text(too_big)
    expect(tiles(page).locator(".tile-error")).to_have_text(too_big)

    # The server still decides, and says the same thing.
    page.locator("textarea[name=prompt]").fill("A lighthouse")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.locator("button.generate").click()
    assert answer.value.status == 400
    expect(tiles(page).locator(".ref-name")).to_have_text(["huge.png"])
    expect(errors_for(page, "references")).to_have_text(too_big)
    assert not GenerationTask.objects.exists()


def as_upload(f):
    return {"name": f["name"], "mimeType": f["type"], "buffer": f["bytes"]}


def test_a_rejected_submission_shows_the_servers_error_and_keeps_the_references(live_server, page, team):
    # Playwright switches file-chooser interception on without waiting for it; switched on only
    # inside expect_file_chooser, a quick key press can beat it and the chooser is never seen.
    page.on("filechooser", lambda chooser: None)
    sign_in(page, live_server)
    # One file dropped, one chosen by clicking the drop zone, one chosen from the keyboard.
    drop(page, [image_file("left.png", "red")])
    with page.expect_file_chooser() as chooser:
        page.locator("[data-dropzone]").click()
    chooser.value.set_files(as_upload(image_file("right.webp", "blue", kind="WEBP")))
    expect(tiles(page).locator(".ref-name")).to_have_text(["left.png", "right.webp"])
    page.locator("[data-dropzone]").focus()
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files(as_upload(image_file("keys.png", "yellow")))
    expect(tiles(page).locator(".ref-name")).to_have_text(["left.png", "right.webp", "keys.png"])
    # Reorder from the keyboard: the last tile moves to the front.
    tiles(page).nth(2).focus()
    page.keyboard.press("Alt+ArrowLeft")
    page.keyboard.press("Alt+ArrowLeft")
    expect(tiles(page).locator(".ref-name")).to_have_text(["keys.png", "left.png", "right.webp"])

    page.locator("input[name=n]").fill("3")
    page.get_by_text("16:9").click()
    page.get_by_text("4K").click()
    page.locator("button.generate").click()  # no prompt

    expect(page.locator("textarea[name=prompt]")).to_have_attribute("aria-invalid", "true")
    # The chosen files are back in the re-rendered form (the server cannot render them: the
    # page's script does, once the new form has settled) and the server's error is still shown.
    expect(tiles(page).locator(".ref-name")).to_have_text(["keys.png", "left.png", "right.webp"])
    expect(errors_for(page, "prompt")).to_have_text("Write a prompt: describe the image you want.")
    expect(page.locator("[data-ref-count]")).to_have_text("3 of 10")
    expect(page.locator("input[name=n]")).to_have_value("3")
    expect(page.locator("input[name=size][value='16:9']")).to_be_checked()
    expect(page.locator("input[name=quality][value='4K']")).to_be_checked()
    assert not GenerationTask.objects.exists()

    # Fixing the prompt is enough: the kept files go with the next submission.
    page.locator("textarea[name=prompt]").fill("Two birds on a wire")
    page.locator("button.generate").click()
    expect(first_row(page).locator(".task-prompt")).to_have_text("Two birds on a wire")
    expect(tiles(page).locator(".ref-name")).to_have_text(["keys.png", "left.png", "right.webp"])  # kept, stored
    task = GenerationTask.objects.get()
    assert (task.n, task.size, task.quality) == (3, "16:9", "4K")
    assert list(task.references.order_by("position").values_list("original_name", flat=True)) == [
        "keys.png", "left.png", "right.webp",
    ]


def test_ctrl_enter_submits(live_server, page, team):
    sign_in(page, live_server)
    page.locator("textarea[name=prompt]").fill("A kettle on a camp stove")
    page.locator("textarea[name=prompt]").press("Control+Enter")
    expect(first_row(page).locator(".task-prompt")).to_have_text("A kettle on a camp stove")
    expect(page.locator("textarea[name=prompt]")).to_have_value("A kettle on a camp stove")  # kept to iterate on
    assert GenerationTask.objects.count() == 1


def test_a_double_click_on_generate_creates_one_task(live_server, page, team):
    sign_in(page, live_server)
    page.locator("textarea[name=prompt]").fill("A snowy owl")
    page.locator("button.generate").dblclick()
    expect(first_row(page).locator(".task-prompt")).to_have_text("A snowy owl")
    expect(page.locator("#studio-form [data-send-status]")).to_have_text("Queued: your task is at the top of the history.")
    expect(page.locator("#studio-form.htmx-request")).to_have_count(0)
    expect(page.locator("button.generate")).to_be_enabled()
    expect(page.locator("#history .task-row")).to_have_count(1)
    assert GenerationTask.objects.count() == 1


def test_without_javascript_the_form_submits_as_plain_multipart(live_server, new_context, team):
    context = new_context(java_script_enabled=False)
    page = context.new_page()
    sign_in(page, live_server)
    files = [image_file("plain.png", "green"), image_file("plain.webp", "navy", kind="WEBP")]
    payload = [as_upload(f) for f in files]

    # Errors come back in the page, next to their field.
    page.locator("[data-file-input]").set_input_files(payload)
    page.locator("button.generate").click()
    expect(errors_for(page, "prompt")).to_have_text("Write a prompt: describe the image you want.")
    assert not GenerationTask.objects.exists()

    page.locator("textarea[name=prompt]").fill("A paper boat on a puddle")
    page.locator("input[name=n]").fill("2")
    page.locator("[data-file-input]").set_input_files(payload)
    page.locator("button.generate").click()

    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_text("Generating 2 images…")).to_be_visible()
    expect(first_row(page).locator(".task-prompt")).to_have_text("A paper boat on a puddle")
    task = GenerationTask.objects.get()
    assert task.n == 2
    assert list(task.references.order_by("position").values_list("original_name", flat=True)) == [
        "plain.png", "plain.webp",
    ]


def test_on_a_phone_the_form_comes_first_and_generate_works(live_server, new_context, team):
    context = new_context(viewport={"width": 390, "height": 844}, has_touch=True)
    page = context.new_page()
    sign_in(page, live_server)

    form_box = form(page).bounding_box()
    history_box = page.locator("#history").bounding_box()
    assert form_box["y"] + form_box["height"] <= history_box["y"]  # stacked: form, then history
    assert form_box["width"] <= 390 and history_box["width"] <= 390  # nothing wider than the phone
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    drop(page, [image_file("phone.png", "pink")])
    expect(tiles(page)).to_have_count(1)
    page.locator("textarea[name=prompt]").fill("A tram in the rain")
    page.locator("button.generate").tap()
    expect(first_row(page).locator(".task-prompt")).to_have_text("A tram in the rain")
    expect(tiles(page)).to_have_count(1)
    bar = page.locator(".generate-bar").bounding_box()
    assert bar["height"] <= 0.15 * 844, bar  # the sticky Generate bar leaves the phone's screen to the work
    assert GenerationTask.objects.get().references.count() == 1
