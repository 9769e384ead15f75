"""Files on S3-compatible object storage, against a real local S3 server (tests/s3): the pipeline
stores there, media views answer with presigned URLs only after the team check, downloads and ZIPs
read from the bucket, deletes reach it, and move_media_to_s3 moves a local install's files."""

import hashlib
import io
import json
import os
import time
import zipfile
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from django.conf import settings as django_settings
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage
from django.core.management import CommandError, call_command
from django.test import override_settings
from PIL import Image
from storages.backends.s3 import S3Storage

from gallery import pipeline
from gallery.management.commands import move_media_to_s3
from gallery.models import GalleryImage, Status
from tests.factories import make_finished_task, make_image, make_reference, make_task, run_until_final

PROMPT = "A lighthouse made of marmalade"
YEAR = 365 * 24 * 3600


def local_files(root):
    return sorted(
        os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/")
        for folder, _, names in os.walk(root)
        for name in names
    )


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def pixels(data):
    with Image.open(io.BytesIO(data)) as im:
        return im.mode, im.size, im.tobytes()


def query(url):
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def with_query(url, **changes):
    new_query = urlencode({**query(url), **changes}, quote_via=quote)
    return urlunsplit(urlsplit(url)._replace(query=new_query))


@pytest.fixture
def work(s3_storage, alice, team):
    """Studio's image (a JPEG) and a reference, stored in the bucket."""
    task = make_task(team, alice, prompt=PROMPT, references=[make_reference(name="mood.png")])
    return {"image": make_image(task, image_format="JPEG"), "reference": task.references.get()}


# Settings and fixtures


def test_switching_storages_takes_effect_and_is_undone(s3_bucket):
    """What the s3_storage fixture relies on: Django drops its cached storages when STORAGES
    changes, and again when the old value comes back."""
    with override_settings(STORAGES={**django_settings.STORAGES, "default": s3_bucket.storage()}):
        assert isinstance(default_storage, S3Storage)
        default_storage.save("probe.txt", ContentFile(b"probe"))
    assert isinstance(default_storage, FileSystemStorage)
    assert s3_bucket.keys() == ["probe.txt"]
    assert not default_storage.exists("probe.txt")


# The pipeline


def test_a_task_stores_its_original_thumbnail_and_references_in_the_bucket(s3_storage, alice, team, settings):
    task = run_until_final(make_task(team, alice, prompt=PROMPT, references=[make_reference()]))

    assert task.status == Status.COMPLETED
    image, reference = task.images.get(), task.references.get()
    assert s3_storage.keys() == sorted([image.file.name, image.thumbnail.name, reference.file.name])
    original = s3_storage.read(image.file.name)
    assert (len(original), sha256(original)) == (image.bytes, image.sha256)
    assert Image.open(io.BytesIO(s3_storage.read(image.thumbnail.name))).format == "WEBP"
    assert sha256(s3_storage.read(reference.file.name)) == reference.sha256
    assert local_files(settings.MEDIA_ROOT) == []


def test_a_result_left_by_a_crashed_attempt_is_replaced_in_place_without_a_look_first(s3_storage, monkeypatch):
    """S3 with file_overwrite replaces an object on PUT and never renames: save_exactly asks
    nothing first (a HEAD per file was 30 round trips a task)."""
    default_storage.save("results/left-behind.png", ContentFile(b"half of an earlier try"))
    looked = []
    monkeypatch.setattr(S3Storage, "exists", lambda storage, name: looked.append(name) or True)

    pipeline.save_exactly("results/left-behind.png", ContentFile(b"the whole image"))

    assert looked == []
    assert s3_storage.read("results/left-behind.png") == b"the whole image"


def test_on_local_disk_a_left_file_is_still_removed_before_saving(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    default_storage.save("results/left-behind.png", ContentFile(b"half of an earlier try"))

    pipeline.save_exactly("results/left-behind.png", ContentFile(b"the whole image"))

    assert (tmp_path / "results" / "left-behind.png").read_bytes() == b"the whole image"
    assert local_files(tmp_path) == ["results/left-behind.png"]


# Media views


def test_members_are_redirected_to_presigned_urls_that_serve_the_stored_bytes(client_bob, work, s3_storage):
    image, reference = work["image"], work["reference"]
    hour, forever = "private, max-age=3600", f"private, max-age={YEAR}, immutable"
    cases = [
        (f"/media/image/{image.pk}/", image.file.name, "image/jpeg", hour),
        (f"/media/image/{image.pk}/thumb/", image.thumbnail.name, "image/webp", forever),
        (f"/media/reference/{reference.pk}/", reference.file.name, "image/png", hour),
    ]
    for path, key, content_type, cache_control in cases:
        response = client_bob.get(path)

        assert response.status_code == 302, path
        assert response["Cache-Control"] == "private, max-age=150"  # half of a 300 s URL
        location = response["Location"]
        assert location.startswith(f"{s3_storage.server.endpoint_url}/{s3_storage.name}/{key}?")
        assert "X-Amz-Signature=" in location and "X-Amz-Expires=300" in location
        fetched = httpx.get(location)
        assert fetched.status_code == 200, fetched.text
        assert fetched.content == s3_storage.read(key)
        assert fetched.headers["Content-Type"] == content_type
        assert fetched.headers["Cache-Control"] == cache_control

    original = httpx.get(client_bob.get(f"/media/image/{image.pk}/")["Location"])
    disposition = original.headers["Content-Disposition"]
    assert disposition.startswith('inline; filename="a-lighthouse-made-of-marmalade-')
    assert sha256(original.content) == image.sha256


def test_an_outsider_gets_a_404_and_no_presigned_url(client_charlie, work):
    image, reference = work["image"], work["reference"]
    for path in (
        f"/media/image/{image.pk}/",
        f"/media/image/{image.pk}/thumb/",
        f"/media/reference/{reference.pk}/",
        f"/media/image/{image.pk}/download/",
    ):
        response = client_charlie.get(path)

        assert response.status_code == 404, path
        assert "Location" not in response
        assert b"X-Amz-Signature" not in response.content


def test_the_bucket_refuses_altered_and_unsigned_urls(client_bob, work):
    location = client_bob.get(f"/media/image/{work['image'].pk}/")["Location"]
    signature = query(location)["X-Amz-Signature"]
    forged = signature[:-1] + ("0" if signature[-1] != "0" else "1")

    altered_signature = httpx.get(with_query(location, **{"X-Amz-Signature": forged}))
    # The response overrides are signed too: nobody can turn an image URL into an HTML page.
    altered_type = httpx.get(with_query(location, **{"response-content-type": "text/html"}))
    unsigned = httpx.get(location.split("?")[0])

    assert altered_signature.status_code == 403 and b"SignatureDoesNotMatch" in altered_signature.content
    assert altered_type.status_code == 403 and b"SignatureDoesNotMatch" in altered_type.content
    assert unsigned.status_code == 403
    assert httpx.get(with_query(location)).status_code == 200  # the same URL, rebuilt, still works


def test_an_expired_presigned_url_is_refused(client_bob, work, s3_storage, settings):
    s3_storage.use(settings, querystring_expire=1)
    response = client_bob.get(f"/media/image/{work['image'].pk}/thumb/")
    assert response["Cache-Control"] == "private, max-age=0"
    assert "X-Amz-Expires=1&" in response["Location"]

    # X-Amz-Date has whole seconds: wait until just past the second after it, no longer.
    signed_at = datetime.strptime(query(response["Location"])["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    dead_at = signed_at.replace(tzinfo=UTC) + timedelta(seconds=1.1)
    time.sleep(max(0.0, (dead_at - datetime.now(UTC)).total_seconds()))
    fetched = httpx.get(response["Location"])

    assert fetched.status_code == 403
    assert b"Request has expired" in fetched.content


def test_the_download_with_metadata_reads_the_original_from_the_bucket(client_bob, work, s3_storage):
    image = work["image"]

    response = client_bob.get(f"/media/image/{image.pk}/download/")

    data = b"".join(response.streaming_content)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["Content-Length"] == str(len(data))
    assert response["Content-Disposition"].startswith('attachment; filename="a-lighthouse-made-of-marmalade-')
    assert pixels(data) == pixels(s3_storage.read(image.file.name))
    with Image.open(io.BytesIO(data)) as im:
        assert im.getexif()[0x010E].encode("latin-1").decode() == PROMPT


def test_the_zip_holds_images_read_from_the_bucket(client_bob, alice, team, work, s3_storage):
    first = work["image"]
    second = make_image(make_finished_task(team, alice, prompt="Owl"), image_format="PNG")

    response = client_bob.post("/gallery/download/", {"ids": [first.pk, second.pk]})

    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert archive.testzip() is None
    manifest = json.loads(archive.read("manifest.json"))
    assert {entry["image_id"] for entry in manifest["images"]} == {first.pk, second.pk}
    for entry in manifest["images"]:
        image = GalleryImage.objects.get(pk=entry["image_id"])
        assert pixels(archive.read(entry["file"])) == pixels(s3_storage.read(image.file.name))


def test_deleting_images_removes_their_objects(
    client_alice, alice, team, work, s3_storage, django_capture_on_commit_callbacks
):
    doomed = work["image"]
    kept = make_image(make_finished_task(team, alice, prompt="Owl"))

    with django_capture_on_commit_callbacks(execute=True):
        response = client_alice.post("/gallery/delete/", {"ids": [doomed.pk], "confirmed": "1"})

    assert response.status_code == 302
    keys = s3_storage.keys()
    assert doomed.file.name not in keys and doomed.thumbnail.name not in keys
    assert {kept.file.name, kept.thumbnail.name, work["reference"].file.name} <= set(keys)


# move_media_to_s3


@pytest.fixture
def local_media(alice, team, settings):
    """A local install's files: two images with thumbnails, a reference and a stray file."""
    task = make_task(team, alice, references=[make_reference()])
    make_image(task, 0, image_format="PNG")
    make_image(task, 1, image_format="JPEG")
    root = settings.MEDIA_ROOT
    FileSystemStorage(location=root).save("sandbox/uploads/leftover.bin", ContentFile(b"x" * 10))
    return {name: (root / name).read_bytes() for name in local_files(root)}


def move(*args):
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("move_media_to_s3", *args, stdout=out, stderr=err)
    except CommandError as e:
        return out.getvalue(), err.getvalue() + str(e)
    return out.getvalue(), err.getvalue()


def test_moving_copies_every_file_verifies_it_and_deletes_the_local_copy(local_media, s3_bucket, settings):
    assert len(local_media) == 6
    s3_bucket.use(settings)

    out, err = move()

    assert "copied 6, already there 0, verified 6, failed 0" in out and err == ""
    assert s3_bucket.keys() == sorted(local_media)
    assert all(s3_bucket.read(name) == data for name, data in local_media.items())
    assert local_files(settings.MEDIA_ROOT) == []
    assert os.listdir(settings.MEDIA_ROOT) == []  # emptied folders go too
    image = GalleryImage.objects.first()
    assert default_storage.open(image.file.name).read() == local_media[image.file.name]


def test_a_move_stopped_half_way_completes_when_run_again(local_media, s3_bucket, settings, monkeypatch):
    s3_bucket.use(settings)
    real_copy, calls = move_media_to_s3.copy, []

    def crash_after_third_upload(name, local, bucket):
        calls.append(name)
        real_copy(name, local, bucket)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the process dies: uploaded, not verified, local file still there

    monkeypatch.setattr(move_media_to_s3, "copy", crash_after_third_upload)
    with pytest.raises(KeyboardInterrupt):
        move()
    assert len(s3_bucket.keys()) == 3 and len(local_files(settings.MEDIA_ROOT)) == 4
    monkeypatch.setattr(move_media_to_s3, "copy", real_copy)

    out, err = move()

    assert "copied 3, already there 3, verified 4, failed 0" in out and err == ""
    assert s3_bucket.keys() == sorted(local_media)  # each once, under its own name
    assert all(s3_bucket.read(name) == data for name, data in local_media.items())
    assert local_files(settings.MEDIA_ROOT) == []


def test_a_failed_copy_keeps_the_local_file_fails_the_run_and_a_rerun_moves_it(
    local_media, s3_bucket, settings, monkeypatch
):
    s3_bucket.use(settings)
    real_copy, calls = move_media_to_s3.copy, []

    def fail_third(name, local, bucket):
        calls.append(name)
        if len(calls) == 3:
            raise OSError("connection reset by peer")
        real_copy(name, local, bucket)

    monkeypatch.setattr(move_media_to_s3, "copy", fail_third)
    out, err = move()
    assert "copied 5, already there 0, verified 5, failed 1" in out
    assert f"failed: {calls[2]}: connection reset by peer" in err and "1 file(s) failed" in err
    assert local_files(settings.MEDIA_ROOT) == [calls[2]]

    out, err = move()

    # The stray file, known only from the local folder, is not looked for any more once moved.
    assert "copied 1, already there 4, verified 1, failed 0" in out and err == ""
    assert s3_bucket.keys() == sorted(local_media)
    assert local_files(settings.MEDIA_ROOT) == []


def test_a_different_object_under_the_same_name_is_never_overwritten(local_media, s3_bucket, settings):
    name = min(local_media)
    s3_bucket.put(name, b"someone else's bytes")
    s3_bucket.use(settings)

    out, err = move()

    assert "copied 5, already there 0, verified 5, failed 1" in out
    assert "a different file of that name is already in the bucket" in err
    assert s3_bucket.read(name) == b"someone else's bytes"
    assert local_files(settings.MEDIA_ROOT) == [name]


def test_a_file_the_database_needs_but_nobody_has_fails_the_run(local_media, s3_bucket, settings):
    lost = GalleryImage.objects.first().thumbnail.name
    (settings.MEDIA_ROOT / lost).unlink()
    s3_bucket.use(settings)

    out, err = move()

    assert "copied 5, already there 0, verified 5, failed 1" in out
    assert f"failed: {lost}: in the database, but neither in MEDIA_ROOT nor in the bucket" in err


def test_dry_run_lists_and_keep_local_copies_without_deleting(local_media, s3_bucket, settings):
    s3_bucket.use(settings)

    out, _ = move("--dry-run")
    assert out.count("would copy: ") == 6 and "dry run: would copy 6, already there 0, missing 0" in out
    assert s3_bucket.keys() == [] and local_files(settings.MEDIA_ROOT) == sorted(local_media)

    out, _ = move("--keep-local")
    assert "copied 6, already there 0, verified 6, failed 0" in out
    assert s3_bucket.keys() == sorted(local_media) == local_files(settings.MEDIA_ROOT)


def test_moving_refuses_to_run_without_s3_storage(local_media, settings):
    with pytest.raises(CommandError, match="not S3"):
        call_command("move_media_to_s3")
    assert local_files(settings.MEDIA_ROOT) == sorted(local_media)
