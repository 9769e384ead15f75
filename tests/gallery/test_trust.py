"""The promises of "Trust" (issue 10) that are not races or bad input: nothing paid for is lost,
no request ends in a silent 500, each person may change only what the rules allow."""

import io
import logging
import smtplib
from decimal import Decimal

import pytest
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import include, path
from PIL import ExifTags, Image

from gallery import pipeline
from gallery.models import GalleryImage, GenerationTask, Invite, ReferenceImage, Status, Team, User
from gallery.providers.sandbox import SandboxProvider
from tests.factories import PASSWORD, make_user
from tests.factories import make_reference, make_task, run_until_final
from tests.gallery.test_studio import HX, form_data, png_upload
from tests.gallery.test_teams import invite_link


def stored(settings, folder=""):
    root = settings.MEDIA_ROOT / folder
    return sorted(str(p.relative_to(settings.MEDIA_ROOT)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


# Unhandled errors are logged --------------------------------------------------------------------


def boom(request):
    raise RuntimeError("the disk caught fire")


# A URLconf with one broken view besides the studio's own routes.
urlpatterns = [path("boom/", boom), path("", include("seedream_site.urls"))]
handler500 = "gallery.views.errors.server_error"


def test_an_unhandled_error_is_logged_with_its_traceback_and_request_id_and_the_page_shows_the_id(
    settings, caplog, alice
):
    settings.DEBUG = False
    settings.ROOT_URLCONF = __name__
    client = Client(raise_request_exception=False)

    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = client.get("/boom/", HTTP_X_REQUEST_ID="req-abc123")

    assert response.status_code == 500
    assert response["X-Request-ID"] == "req-abc123"
    assert "req-abc123" in response.content.decode() and "has been logged" in response.content.decode()
    records = [r for r in caplog.records if r.name == "django.request" and r.levelno == logging.ERROR]
    assert records and records[0].exc_info[0] is RuntimeError
    assert records[0].request_id == "req-abc123"


def test_the_console_handler_writes_errors_with_the_traceback_and_request_id_when_debug_is_off(settings, alice):
    """The real logging configuration, not caplog: Django's default sends errors only to ADMINS."""
    settings.DEBUG = False
    settings.ROOT_URLCONF = __name__
    handler = logging.getLogger().handlers[0]
    buffer = io.StringIO()
    old_stream = handler.setStream(buffer)
    try:
        Client(raise_request_exception=False).get("/boom/", HTTP_X_REQUEST_ID="trace-me-7")
    finally:
        handler.setStream(old_stream)
    written = buffer.getvalue()
    assert "Internal Server Error: /boom/" in written
    assert "req trace-me-7" in written
    assert "RuntimeError: the disk caught fire" in written and "Traceback" in written


def test_a_forged_request_id_is_replaced_by_a_fresh_one(client, db):
    response = client.get("/login/", HTTP_X_REQUEST_ID="x\r\nSet-Cookie: evil=1")
    assert response["X-Request-ID"] != "x" and len(response["X-Request-ID"]) == 16


# Invites ------------------------------------------------------------------------------------------


def test_an_invite_email_that_cannot_be_sent_still_gives_the_link_and_says_so(client_alice, team, monkeypatch):
    def refuse(*args, **kwargs):
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

    monkeypatch.setattr("gallery.views.teams.send_mail", refuse)
    response = client_alice.post("/team/invite/", {"email": "new@example.com", "role": "member"}, follow=True)

    assert response.status_code == 200
    html = response.content.decode()
    assert "could not be sent" in html and "Copy the link below" in html
    assert Invite.objects.pending().filter(email="new@example.com").count() == 1
    assert "/invite/" in html  # the link is on the page


def test_a_team_name_with_a_line_break_from_before_the_rule_does_not_break_the_invite_mail(
    client_alice, team, mailoutbox
):
    Team.objects.filter(pk=team.pk).update(name="Studio\nBcc: victim@example.com")
    response = client_alice.post("/team/invite/", {"email": "new@example.com", "role": "member"})

    assert response.status_code == 302
    assert len(mailoutbox) == 1 and "\n" not in mailoutbox[0].subject
    assert mailoutbox[0].to == ["new@example.com"] and not mailoutbox[0].bcc


def test_an_invite_for_an_address_cannot_be_accepted_by_someone_signed_in_with_another(
    client_charlie, alice, charlie, team
):
    invite, link = invite_link(team, alice, email="dora@example.com")
    response = client_charlie.post(link)

    assert response.status_code == 403
    assert "This invite is for dora@example.com" in response.content.decode()
    assert not team.memberships.filter(user=charlie).exists()
    invite.refresh_from_db()
    assert invite.accepted_at is None  # still usable by the right person


def test_an_invite_for_an_address_makes_the_account_with_that_address_whatever_is_posted(client, alice, team):
    invite, link = invite_link(team, alice, email="dora@example.com")
    page = client.get(link).content.decode()
    assert 'value="dora@example.com"' in page and "disabled" in page

    response = client.post(link, {"name": "Dora", "email": "mallory@example.com", "password1": PASSWORD,
                                  "password2": PASSWORD})

    assert response.status_code == 302
    assert User.objects.filter(email="dora@example.com").exists()
    assert not User.objects.filter(email="mallory@example.com").exists()


def test_an_invite_for_an_address_accepts_that_address_in_any_case(client, alice, team):
    dora = make_user("dora", email="Dora@Example.com")
    client.force_login(dora, backend="gallery.auth.EmailOrUsernameBackend")
    _, link = invite_link(team, alice, email="dora@example.com")
    assert client.post(link).status_code == 302
    assert team.memberships.filter(user=dora).exists()


# Password reset throttling ------------------------------------------------------------------------


def test_password_reset_mails_an_address_at_most_three_times_an_hour(client, alice, mailoutbox):
    for _ in range(5):
        response = client.post("/password/reset/", {"email": "alice@example.com"})
        assert response.status_code == 302  # the page never tells whether the limit was reached
    assert len(mailoutbox) == 3


def test_password_reset_refuses_a_flood_from_one_address_visibly(client, alice, settings, mailoutbox):
    settings.PASSWORD_RESET_IP_LIMIT = (10, 3600)
    statuses = [client.post("/password/reset/", {"email": f"someone{i}@example.com"}).status_code for i in range(12)]
    assert statuses[:10] == [302] * 10 and statuses[10:] == [429, 429]
    response = client.post("/password/reset/", {"email": "alice@example.com"})
    assert "Too many password reset requests came from your network" in response.content.decode()
    assert mailoutbox == []  # none of those addresses has an account, and alice's came too late


# Uploads ------------------------------------------------------------------------------------------


def test_a_request_body_over_the_cap_is_refused_before_it_is_read(client_alice, team):
    from gallery import options

    class Unreadable(io.BytesIO):
        def read(self, *args):
            raise AssertionError("the body was read")

    response = client_alice.generic(
        "POST", "/", data=b"", content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(options.MAX_REQUEST_BYTES + 1), **{"wsgi.input": Unreadable()},
    )
    assert response.status_code == 413
    assert "more than the studio accepts in one go" in response.content.decode()
    assert not GenerationTask.objects.exists()


def test_more_files_than_any_form_sends_get_a_sentence_not_a_bare_400(client_alice, team):
    files = [png_upload(f"f{i}.png") for i in range(25)]
    response = client_alice.post("/", {**form_data(), "references": files})
    assert response.status_code == 400
    assert "more files than any studio form sends" in response.content.decode()
    assert not GenerationTask.objects.exists() and not ReferenceImage.objects.exists()


def test_more_fields_than_any_form_sends_get_a_sentence(client_alice, team):
    response = client_alice.post("/gallery/download/", {"ids": [str(i) for i in range(700)]})
    assert response.status_code == 400
    assert "more fields than any studio form sends" in response.content.decode()


# References are upright and carry no camera metadata ---------------------------------------------------


def photo(orientation, size=(120, 60)):
    """A JPEG of a landscape picture whose EXIF says how to turn it, with GPS and camera tags."""
    image = Image.new("RGB", size, "red")
    image.paste("blue", (size[0] // 2, 0, size[0], size[1]))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "SecretCam"
    exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] = "N"
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95, exif=exif, comment=b"shot at home")
    return out.getvalue()


def test_a_portrait_photo_stored_sideways_is_a_portrait_everywhere(client_alice, team, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("portrait.jpg", photo(orientation=6), content_type="image/jpeg")
    response = client_alice.post("/", {**form_data(size="auto"), "references": [upload]})

    assert response.status_code == 302
    ref = ReferenceImage.objects.get()
    assert (ref.width, ref.height) == (60, 120)
    task = run_until_final(ref.task)
    assert task.status == Status.COMPLETED
    image = task.images.get()
    assert image.height > image.width  # `auto` followed the upright reference


@pytest.mark.parametrize("orientation", [1, 6])
def test_the_stored_reference_has_no_camera_metadata(orientation, client_alice, team):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("photo.jpg", photo(orientation), content_type="image/jpeg")
    client_alice.post("/", {**form_data(), "references": [upload]})

    with ReferenceImage.objects.get().file.open("rb") as f:
        data = f.read()
    with Image.open(io.BytesIO(data)) as stored_image:
        assert not stored_image.getexif()
        assert "comment" not in stored_image.info
    assert b"SecretCam" not in data and b"shot at home" not in data


# Submissions are never silently dropped ---------------------------------------------------------------


def test_the_same_form_sent_again_with_another_prompt_is_a_new_task(client_alice, team):
    client_alice.post("/", form_data(prompt="A red kite", submit_token="tok-1"), **HX)
    client_alice.post("/", form_data(prompt="A blue kite", submit_token="tok-1"), **HX)
    assert sorted(GenerationTask.objects.values_list("prompt", flat=True)) == ["A blue kite", "A red kite"]


def test_the_same_form_sent_twice_with_the_same_inputs_is_one_task(client_alice, team):
    for _ in range(2):
        client_alice.post("/", form_data(prompt="A red kite", submit_token="tok-2"), **HX)
    assert GenerationTask.objects.count() == 1


def test_storage_refusing_the_references_is_a_503_with_a_sentence_and_nothing_saved(
    client_alice, team, settings, monkeypatch
):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(default_storage, "save", full)
    response = client_alice.post("/", {**form_data(), "references": [png_upload()]})

    assert response.status_code == 503
    assert "could not save your reference images" in response.content.decode()
    assert not GenerationTask.objects.exists() and stored(settings) == []


# Cancel and delete never lose a stored image ----------------------------------------------------------


def test_a_cancel_between_saving_an_image_and_recording_it_keeps_the_image_and_its_file(team, alice, settings, monkeypatch):
    task = make_task(team, alice, n=2)
    pipeline.advance(task.pk)  # created upstream
    original_create = GalleryImage.objects.create

    def cancel_then_record(**fields):
        # The worker has saved the first image's file; the web request cancels before its row exists.
        web_copy = GenerationTask.objects.get(pk=fields["task"].pk)
        if not web_copy.is_final:
            assert pipeline.cancel(web_copy)
        return original_create(**fields)

    monkeypatch.setattr(GalleryImage.objects, "create", cancel_then_record)
    pipeline.advance(task.pk)  # follows, stores both images; cancelled in between
    monkeypatch.undo()
    task = run_until_final(task)

    assert task.status == Status.CANCELLED and not task.tidy_pending
    images = list(task.images.all())
    assert images and all(default_storage.exists(i.file.name) and default_storage.exists(i.thumbnail.name) for i in images)
    assert task.final_cost == task.price_per_image * len(images)
    assert sorted(stored(settings, "results")) == sorted(n for i in images for n in (i.file.name, i.thumbnail.name))


def test_a_cancel_in_a_web_request_calls_no_provider(client_alice, team, alice, monkeypatch):
    task = make_task(team, alice, references=[make_reference()])
    pipeline.advance(task.pk)  # the reference is now at the provider
    called = []
    monkeypatch.setattr(SandboxProvider, "delete_reference", lambda self, file_id: called.append(file_id))

    client_alice.post(f"/tasks/{task.pk}/cancel/")
    assert called == []  # the request only changed the state
    pipeline.advance(task.pk)  # the worker tidies up under the lease
    assert len(called) == 1
    task.refresh_from_db()
    assert task.status == Status.CANCELLED and task.final_cost == Decimal(0) and not task.tidy_pending


def test_deleting_a_task_a_worker_still_holds_is_refused_and_says_so(client_alice, team, alice):
    task = run_until_final(make_task(team, alice))
    held = GenerationTask.objects.get(pk=task.pk)
    assert held.take_lease()
    response = client_alice.post(f"/tasks/{task.pk}/delete/", follow=True)
    assert "try deleting it again in a moment" in response.content.decode()
    assert GenerationTask.objects.filter(pk=task.pk).exists()
    held.release_lease()
    client_alice.post(f"/tasks/{task.pk}/delete/")
    assert not GenerationTask.objects.filter(pk=task.pk).exists()


def test_a_storage_error_while_deleting_files_after_commit_is_logged_not_a_500(
    client_alice, team, alice, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    task = run_until_final(make_task(team, alice))

    def broken(name):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(default_storage, "delete", broken)
    with caplog.at_level(logging.WARNING, logger="gallery"), django_capture_on_commit_callbacks(execute=True):
        response = client_alice.post(f"/tasks/{task.pk}/delete/")
    assert response.status_code == 302
    assert not GenerationTask.objects.filter(pk=task.pk).exists()
    assert any("Could not delete" in r.getMessage() for r in caplog.records)


def test_a_storage_error_while_deleting_gallery_images_is_not_a_500(
    client_alice, team, alice, monkeypatch, django_capture_on_commit_callbacks
):
    task = run_until_final(make_task(team, alice))
    image = task.images.get()
    monkeypatch.setattr(default_storage, "delete", lambda name: (_ for _ in ()).throw(OSError(5, "I/O error")))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client_alice.post("/gallery/delete/", {"ids": [image.pk], "confirmed": "1"})
    assert len(callbacks) == 1
    assert response.status_code == 302
    assert not GalleryImage.objects.filter(pk=image.pk).exists()


# Who may change what ------------------------------------------------------------------------------------


@pytest.fixture
def alices_work(team, alice):
    failed = run_until_final(make_task(team, alice, prompt="Alice's failure [sandbox:fail=request_cancelled]"))
    running = make_task(team, alice, prompt="Alice's running task [sandbox:slow=60]")
    done = run_until_final(make_task(team, alice, prompt="Alice's finished task"))
    return {"failed": failed, "running": running, "done": done, "image": done.images.get()}


@pytest.mark.parametrize("action,which", [("retry", "failed"), ("cancel", "running"), ("delete", "done")])
def test_a_member_cannot_retry_cancel_or_delete_a_teammates_task(action, which, client_bob, alices_work):
    task = alices_work[which]
    before = (GenerationTask.objects.count(), GenerationTask.objects.get(pk=task.pk).status)
    response = client_bob.post(f"/tasks/{task.pk}/{action}/")
    assert response.status_code == 403
    assert "Only the person who made this task, or a team owner or admin" in response.content.decode()
    assert (GenerationTask.objects.count(), GenerationTask.objects.get(pk=task.pk).status) == before


def test_a_member_cannot_delete_a_teammates_image(client_bob, alices_work):
    image = alices_work["image"]
    response = client_bob.post("/gallery/delete/", {"ids": [image.pk], "confirmed": "1"})
    assert response.status_code == 403
    assert "made by someone else" in response.content.decode()
    assert GalleryImage.objects.filter(pk=image.pk).exists()


def test_a_member_sees_no_buttons_for_a_teammates_tasks_and_images(client_bob, alices_work):
    studio = client_bob.get("/").content.decode()
    for task in (alices_work["failed"], alices_work["running"], alices_work["done"]):
        for action in ("retry", "cancel", "delete"):
            assert f"/tasks/{task.pk}/{action}/" not in studio
    image_page = client_bob.get(f"/gallery/{alices_work['image'].pk}/").content.decode()
    assert "/gallery/delete/" not in image_page
    gallery = client_bob.get("/gallery/").content.decode()
    assert f'value="{alices_work["image"].pk}" form="selection" data-deletable' not in gallery


def bobs_task(team, bob, which):
    if which == "failed":
        return run_until_final(make_task(team, bob, prompt="x [sandbox:fail=request_cancelled]"))
    if which == "running":
        return make_task(team, bob, prompt="y [sandbox:slow=60]")
    return run_until_final(make_task(team, bob))


@pytest.mark.parametrize("who", ["bob", "alice"])
@pytest.mark.parametrize("action,which", [("retry", "failed"), ("cancel", "running"), ("delete", "done")])
def test_a_member_may_act_on_their_own_task_and_an_owner_on_a_members(action, which, who, client, team, bob, alice):
    """Bob (a member) on his own task, and Alice (the owner) on Bob's."""
    task = bobs_task(team, bob, which)
    client.force_login(bob if who == "bob" else alice, backend="gallery.auth.EmailOrUsernameBackend")
    assert f"/tasks/{task.pk}/{action}/" in client.get("/").content.decode()
    assert client.post(f"/tasks/{task.pk}/{action}/").status_code == 302
