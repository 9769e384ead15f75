"""The studio page's server side: history rules, the poll, htmx submit, remix and task actions."""

import io
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from gallery.models import GalleryImage, GenerationTask, ReferenceImage, Status
from tests.factories import make_reference, make_task, run_until_final

HX = {"HTTP_HX_REQUEST": "true"}


def set_status(task, status):
    GenerationTask.objects.filter(pk=task.pk).update(status=status)


def version_in(html):
    return re.search(r'data-version="([0-9a-f.]+)"', html).group(1)


def png_upload(name="ref.png", colour="orange", size=(64, 48)):
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return SimpleUploadedFile(name, out.getvalue(), content_type="image/png")


def form_data(**overrides):
    return {"prompt": "A kite over the dunes", "size": "1:1", "quality": "1K", "n": "1",
            "priority": "standard", "ask_for_n": "on", **overrides}


# History ------------------------------------------------------------------------------------


def test_the_history_shows_the_teams_20_newest_tasks_newest_first(client_alice, team, alice):
    tasks = [make_task(team, alice, prompt=f"Task number {i:02}") for i in range(22)]
    html = client_alice.get("/").content.decode()
    shown = re.findall(r"<p class=\"task-prompt\">Task number (\d\d)", html)
    assert shown == [f"{i:02}" for i in range(21, 1, -1)]
    assert str(tasks[0].pk) not in html


def test_the_history_header_counts_running_and_completed(client_alice, team, alice):
    for status in (Status.QUEUED, Status.RUNNING, Status.COMPLETED, Status.COMPLETED, Status.FAILED):
        set_status(make_task(team, alice), status)
    html = client_alice.get("/").content.decode()
    assert "The team's last 20 tasks · 2 running · 2 completed" in html


def test_only_mine_is_remembered_and_hides_teammates_tasks(client_alice, team, alice, bob):
    make_task(team, alice, prompt="Alice's lighthouse")
    make_task(team, bob, prompt="Bob's windmill")
    response = client_alice.get("/history/?mine=1", **HX)
    assert "Alice&#x27;s lighthouse" in response.content.decode()
    assert "Bob&#x27;s windmill" not in response.content.decode()
    page = client_alice.get("/").content.decode()  # remembered on the next visit
    assert "Bob&#x27;s windmill" not in page and 'aria-checked="true"' in page
    client_alice.get("/history/?mine=0", **HX)
    assert "Bob&#x27;s windmill" in client_alice.get("/").content.decode()


def test_other_teams_tasks_never_appear(client_charlie, team, alice):
    make_task(team, alice, prompt="A secret campaign")
    assert "A secret campaign" not in client_charlie.get("/").content.decode()
    assert "A secret campaign" not in client_charlie.get("/history/?v=x", **HX).content.decode()


def test_a_failed_task_shows_its_reason_and_a_completed_one_its_thumbnails(client_alice, team, alice):
    failed = run_until_final(make_task(team, alice, prompt="x [sandbox:fail=content_policy_violation]"))
    done = run_until_final(make_task(team, alice, n=2))
    html = client_alice.get("/").content.decode()
    assert "The provider&#x27;s safety filter blocked this prompt or its reference images." in html
    assert "Edit the prompt or change the references, then generate again." in html
    for image in done.images.all():
        assert f"/media/image/{image.pk}/thumb/" in html
    assert f"/tasks/{failed.pk}/retry/" not in html  # a refusal is edited, not retried


# The poll -----------------------------------------------------------------------------------


def test_an_unchanged_poll_answers_204_without_a_body(client_alice, team, alice):
    make_task(team, alice)
    version = version_in(client_alice.get("/").content.decode())
    response = client_alice.get(f"/history/?v={version}", **HX)
    assert response.status_code == 204 and response.content == b""


def test_a_changed_poll_answers_only_the_changed_rows_with_a_new_version(client_alice, team, alice):
    moving, still = make_task(team, alice, prompt="Moving"), make_task(team, alice, prompt="Still")
    version = version_in(client_alice.get("/").content.decode())
    moving.update_fields(progress=40)
    response = client_alice.get(f"/history/?v={version}", **HX)
    html = response.content.decode()
    assert response.status_code == 200
    assert version_in(html) != version
    assert f'id="task-{moving.pk}"' in html and 'value="40"' in html and 'hx-swap-oob="true"' in html
    assert f'id="task-{still.pk}"' not in html  # only the row that moved
    assert 'id="history-counts"' in html and 'id="history-list"' not in html
    assert "Vary" in response and "HX-Request" in response["Vary"]


def test_a_poll_after_the_list_changed_answers_the_whole_history(client_alice, team, alice, bob):
    make_task(team, alice)
    version = version_in(client_alice.get("/").content.decode())
    newcomer = make_task(team, bob, prompt="A teammate's new task")
    response = client_alice.get(f"/history/?v={version}", **HX)
    html = response.content.decode()
    assert response.status_code == 200 and 'id="history-list"' in html and f"task-{newcomer.pk}" in html
    assert response["HX-Retarget"] == "#history" and response["HX-Reswap"] == "outerHTML"


def test_a_garbage_version_answers_the_whole_history(client_alice, team, alice):
    make_task(team, alice)
    response = client_alice.get("/history/?v=" + "z" * 300, **HX)
    assert response.status_code == 200 and 'id="history-list"' in response.content.decode()


def test_the_poll_slows_down_when_every_listed_task_is_final(client_alice, team, alice):
    """Idle, the history still polls (a teammate's or the API's new task must show up), every 5 s;
    an unchanged poll is a 204."""
    task = make_task(team, alice)
    assert 'hx-trigger="every 2s"' in client_alice.get("/").content.decode()
    set_status(task, Status.COMPLETED)
    html = client_alice.get("/history/?v=old", **HX).content.decode()
    poller = re.search(r'<div id="history-poll"[^>]*>', html).group(0)
    assert 'hx-trigger="every 5s"' in poller
    token = re.search(r'data-version="([^"]+)"', poller).group(1)
    assert client_alice.get(f"/history/?v={token}", **HX).status_code == 204
    bob_task = make_task(team, alice)
    html = client_alice.get(f"/history/?v={token}", **HX).content.decode()
    assert f"task-{bob_task.pk}" in html and 'hx-trigger="every 2s"' in html


@pytest.mark.parametrize("images_per_task", [1, 15])
def test_the_poll_costs_the_same_queries_whatever_the_number_of_images(
    images_per_task, client_alice, team, alice, django_assert_max_num_queries
):
    for _ in range(20):
        task = make_task(team, alice)
        GalleryImage.objects.bulk_create(
            GalleryImage(team=team, task=task, index=i, file="x.png", thumbnail="x.webp", width=1, height=1,
                         format="PNG", bytes=1, sha256="0" * 64)
            for i in range(images_per_task)
        )
    client_alice.get("/")  # warm the session
    with django_assert_max_num_queries(8):
        assert client_alice.get("/history/?v=stale", **HX).status_code == 200
    version = version_in(client_alice.get("/").content.decode())
    task.update_fields(progress=10)
    with django_assert_max_num_queries(8):
        assert client_alice.get(f"/history/?v={version}", **HX).status_code == 200  # one changed row
    version = version_in(client_alice.get("/").content.decode())
    with django_assert_max_num_queries(5):
        assert client_alice.get(f"/history/?v={version}", **HX).status_code == 204


def test_the_history_url_without_htmx_leads_to_the_studio(client_alice):
    assert client_alice.get("/history/?v=x").url == "/"


# Submitting with htmx -----------------------------------------------------------------------


def test_an_htmx_submit_keeps_the_prompt_and_settings_and_returns_the_history_with_the_new_task(client_alice):
    """People iterate: after Generate the form still holds what was sent (prompt, settings and
    the references, now stored with the task), under a new submit token."""
    data = form_data(size="16:9", quality="4K", submit_token="first-token", references=[png_upload("kept.png", "red")])
    response = client_alice.post("/", data, **HX)
    html = response.content.decode()
    task = GenerationTask.objects.get()
    assert response.status_code == 200
    assert "taskCreated" in response["HX-Trigger"]
    assert 'id="studio-form"' in html and "A kite over the dunes</textarea>" in html
    assert re.search(r'name="size" value="16:9"\s+checked', html) and re.search(r'name="quality" value="4K"\s+checked', html)
    reference = task.references.get()
    assert f'name="keep_reference" value="{reference.pk}"' in html
    assert 'value="first-token"' not in html
    assert 'id="history" class="history" hx-swap-oob="true"' in html
    assert f'id="task-{task.pk}"' in html


def test_a_rejected_htmx_submit_keeps_the_input_and_creates_nothing(client_alice):
    response = client_alice.post("/", form_data(prompt="   ", n="16"), **HX)
    html = response.content.decode()
    assert response.status_code == 400
    assert "Write a prompt: describe the image you want." in html
    assert "Choose between 1 and 15 images." in html
    assert 'value="16"' in html
    assert not GenerationTask.objects.exists()


def test_the_same_form_sent_twice_creates_one_task(client_alice):
    data = form_data(submit_token="tok-123")
    client_alice.post("/", data, **HX)
    client_alice.post("/", data, **HX)
    assert GenerationTask.objects.count() == 1


def test_references_keep_the_order_the_drop_zone_shows(client_alice, team, alice):
    old = make_task(team, alice, references=[make_reference(colour="blue", name="kept.png")])
    kept = old.references.get()
    data = form_data(
        references=[png_upload("first.png", "red"), png_upload("second.png", "green")],
        keep_reference=[kept.pk],
        reference_order=f"f1,r{kept.pk},f0",
    )
    client_alice.post("/", data, **HX)
    task = GenerationTask.objects.exclude(pk=old.pk).get()
    assert list(task.references.values_list("original_name", flat=True)) == ["second.png", "kept.png", "first.png"]


# Remix and "use as reference" ---------------------------------------------------------------


def test_remix_loads_prompt_settings_and_references_into_the_form(client_alice, team, alice):
    task = make_task(team, alice, prompt="Moody forest", n=3, size="16:9", quality="4K",
                     references=[make_reference(name="moss.png")])
    html = client_alice.get(f"/?remix={task.pk}", **HX).content.decode()
    assert html.lstrip().startswith("<form")  # only the form, for htmx to swap in
    assert "Moody forest</textarea>" in html
    assert 'name="size" value="16:9" checked' in html and 'name="quality" value="4K" checked' in html
    assert 'value="3"' in html
    ref = task.references.get()
    assert f'name="keep_reference" value="{ref.pk}"' in html and "moss.png" in html


def test_a_remix_without_uploading_again_copies_the_references(client_alice, team, alice):
    task = make_task(team, alice, references=[make_reference(name="moss.png")])
    ref = task.references.get()
    client_alice.post("/", form_data(keep_reference=[ref.pk]), **HX)
    new = GenerationTask.objects.exclude(pk=task.pk).get()
    copy = new.references.get()
    assert copy.sha256 == ref.sha256 and copy.file.name != ref.file.name


def test_a_gallery_image_can_be_used_as_a_reference(client_alice, team, alice):
    done = run_until_final(make_task(team, alice))
    image = done.images.get()
    html = client_alice.get(f"/?use_image={image.pk}").content.decode()
    assert f'name="use_image" value="{image.pk}"' in html
    client_alice.post("/", form_data(use_image=[image.pk]), **HX)
    new = GenerationTask.objects.exclude(pk=done.pk).get()
    assert new.references.get().sha256 == image.sha256


def test_another_teams_task_or_image_cannot_be_remixed_or_reused(client_charlie, team, alice):
    task = run_until_final(make_task(team, alice, prompt="Secret product shot", references=[make_reference()]))
    html = client_charlie.get(f"/?remix={task.pk}&use_image={task.images.get().pk}").content.decode()
    assert "Secret product shot" not in html and "keep_reference" not in html.split("data-ref-tiles")[1].split("</ul>")[0]
    response = client_charlie.post("/", form_data(keep_reference=[task.references.get().pk]), **HX)
    assert response.status_code == 400
    assert "One of the chosen images no longer exists" in response.content.decode()
    assert GenerationTask.objects.count() == 1


def test_references_reused_count_toward_the_limits(client_alice, team, alice):
    refs = [make_reference(colour=c) for c in ("red", "green", "blue")]
    task = make_task(team, alice, references=refs)
    ids = list(task.references.values_list("pk", flat=True))
    response = client_alice.post("/", form_data(keep_reference=ids, n="13"), **HX)
    assert "3 reference images + 13 images = 16" in response.content.decode()
    assert GenerationTask.objects.count() == 1


# Actions ------------------------------------------------------------------------------------


def test_retry_creates_a_new_task_and_answers_the_history(client_alice, team, alice):
    failed = run_until_final(make_task(team, alice, prompt="x [sandbox:fail=request_cancelled]"))
    response = client_alice.post(f"/tasks/{failed.pk}/retry/", **HX)
    assert response.status_code == 200 and 'id="history"' in response.content.decode()
    assert GenerationTask.objects.filter(retry_of=failed).count() == 1


def test_only_failed_tasks_can_be_retried(client_alice, team, alice):
    task = make_task(team, alice)
    assert client_alice.post(f"/tasks/{task.pk}/retry/").status_code == 404


def test_a_task_refused_for_its_content_is_edited_not_retried(client_alice, team, alice):
    refused = run_until_final(make_task(team, alice, prompt="x [sandbox:fail=content_policy_violation]"))
    html = client_alice.get("/").content.decode()
    assert f"/tasks/{refused.pk}/retry/" not in html and "Edit prompt" in html
    response = client_alice.post(f"/tasks/{refused.pk}/retry/")
    assert response.status_code == 409
    assert "Edit the prompt or change the references" in response.content.decode()
    assert GenerationTask.objects.count() == 1


def test_cancel_marks_the_task_cancelled(client_alice, team, alice):
    task = make_task(team, alice)
    response = client_alice.post(f"/tasks/{task.pk}/cancel/")
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.status == Status.CANCELLED


def test_delete_removes_a_finished_task_its_images_and_files(client_alice, team, alice, settings, django_capture_on_commit_callbacks):
    task = run_until_final(make_task(team, alice, n=2, references=[make_reference()]))
    names = [i.file.name for i in task.images.all()] + [task.references.get().file.name]
    with django_capture_on_commit_callbacks(execute=True):
        client_alice.post(f"/tasks/{task.pk}/delete/", **HX)
    assert not GenerationTask.objects.exists() and not GalleryImage.objects.exists()
    assert not ReferenceImage.objects.exists()
    assert not any((settings.MEDIA_ROOT / name).exists() for name in names)


def test_a_running_task_cannot_be_deleted(client_alice, team, alice):
    task = make_task(team, alice)
    assert client_alice.post(f"/tasks/{task.pk}/delete/").status_code == 404
    assert GenerationTask.objects.filter(pk=task.pk).exists()


@pytest.mark.parametrize("action", ["retry", "cancel", "delete"])
def test_an_outsider_gets_404_for_each_action(action, client_charlie, team, alice):
    task = run_until_final(make_task(team, alice, prompt="x [sandbox:fail=invalid_parameters]"))
    assert client_charlie.post(f"/tasks/{task.pk}/{action}/").status_code == 404
    assert GenerationTask.objects.get(pk=task.pk).status == Status.FAILED


def test_the_task_page_shows_inputs_timeline_and_images(client_alice, team, alice):
    task = run_until_final(make_task(team, alice, prompt="Dune kite", n=2, references=[make_reference(name="k.png")]))
    html = client_alice.get(f"/tasks/{task.pk}/").content.decode()
    assert "Dune kite" in html and "Sent to the provider" in html and "Sandbox" in html
    assert "<title>Dune kite · Task" in html
    assert task.upstream_id not in html  # no internal ids on a person's page
    assert html.index("/thumb/") < html.index("Timeline")  # the images first
    assert html.count("/thumb/") == 2 and f"/media/reference/{task.references.get().pk}/" in html
