"""Downloads: one image with its prompt inside the file, and many as a streamed ZIP."""

import io
import json
import uuid
import zipfile
from datetime import datetime
from datetime import timezone as dt_timezone

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.http import StreamingHttpResponse
from PIL import Image

from gallery import catalog, downloads
from gallery.images.metadata import COPY_CHUNK_BYTES
from gallery.models import GalleryImage
from tests.factories import make_finished_task, make_image, make_images

PROMPT = "A café on the moon, “film” still — 月の喫茶店"
DAY = datetime(2025, 3, 14, 12, 0, tzinfo=dt_timezone.utc)


def stored(image):
    with default_storage.open(image.file.name, "rb") as f:
        return f.read()


def pixels(data):
    with Image.open(io.BytesIO(data)) as im:
        return im.mode, im.size, im.tobytes()


@pytest.fixture
def task(alice, team):
    return make_finished_task(team, alice, prompt=PROMPT, size="16:9", quality="4K", n=2, created_at=DAY)


THEIR_XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description rdf:about="" xmlns:tiff="http://ns.adobe.com/tiff/1.0/"><tiff:Make>X</tiff:Make>'
    b"</rdf:Description></rdf:RDF></x:xmpmeta>"
)


def settings_from_user_comment(exif):
    comment = exif.get_ifd(0x8769)[0x9286]
    assert comment.startswith(b"ASCII\0\0\0")
    return json.loads(comment[8:])


# One image


def test_a_png_download_has_the_prompt_and_settings_in_text_chunks(client_alice, task):
    image = make_image(task, index=1, image_format="PNG", width=80, height=45, created_at=DAY)

    response = client_alice.get(f"/media/image/{image.pk}/download/")

    data = b"".join(response.streaming_content)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["Content-Length"] == str(len(data))
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "private" in response["Cache-Control"]
    with Image.open(io.BytesIO(data)) as im:
        assert im.text["Description"] == PROMPT
        assert im.text["Author"] == "Alice"
        assert im.text["Software"] == "Seedream Studio"
        settings = json.loads(im.text["Comment"])
        assert "<seedream:Prompt>" in im.text["XML:com.adobe.xmp"]
    assert settings["prompt"] == PROMPT
    assert (settings["size"], settings["quality"], settings["image"], settings["created_by"]) == (
        "16:9",
        "4K",
        2,
        "Alice",
    )
    assert settings["original_sha256"] == image.sha256
    assert pixels(data) == pixels(stored(image))


@pytest.mark.parametrize("image_format", ["JPEG", "WEBP"])
def test_jpeg_and_webp_downloads_carry_exif_and_xmp_with_the_original_pixels(
    client_alice, task, image_format
):
    image = make_image(task, image_format=image_format, width=120, height=68, created_at=DAY)

    data = b"".join(client_alice.get(f"/media/image/{image.pk}/download/").streaming_content)

    original = stored(image)
    with Image.open(io.BytesIO(data)) as im:
        exif = im.getexif()
        xmp = im.info["xmp"]
    assert exif[0x010E].encode("latin-1").decode() == PROMPT  # ImageDescription, UTF-8
    assert exif[0x013B] == "Alice"
    assert settings_from_user_comment(exif)["prompt"] == PROMPT
    assert PROMPT.encode() in xmp and b"trainedAlgorithmicMedia" in xmp
    assert pixels(data) == pixels(original)
    if image_format == "JPEG":
        # Only header segments were added: the entropy-coded image data is byte-identical.
        sos = original.index(b"\xff\xda")
        assert data.endswith(original[sos:])


def test_a_jpeg_keeps_its_own_exif_fields_and_xmp(client_alice, task):
    image = make_image(task, image_format="JPEG")
    exif = Image.Exif()
    exif[0x010F] = "Seedream camera"  # Make
    with Image.open(io.BytesIO(stored(image))) as im:
        out = io.BytesIO()
        im.save(
            out,
            "JPEG",
            exif=exif.tobytes(),
            xmp=THEIR_XMP,
        )
    default_storage.delete(image.file.name)
    default_storage.save(image.file.name, ContentFile(out.getvalue()))

    data = b"".join(client_alice.get(f"/media/image/{image.pk}/download/").streaming_content)

    with Image.open(io.BytesIO(data)) as im:
        assert im.getexif()[0x010F] == "Seedream camera"
        assert im.getexif()[0x013B] == "Alice"
        assert b"<tiff:Make>X</tiff:Make>" in im.info["xmp"] and b"seedream:Prompt" in im.info["xmp"]
    assert data.count(b"Exif\0\0") == 1


def test_a_webp_with_alpha_stays_transparent(client_alice, task):
    image = make_image(task, image_format="WEBP")
    out = io.BytesIO()
    Image.new("RGBA", (40, 30), (255, 0, 0, 60)).save(out, "WEBP", lossless=True)
    default_storage.delete(image.file.name)
    default_storage.save(image.file.name, ContentFile(out.getvalue()))

    data = b"".join(client_alice.get(f"/media/image/{image.pk}/download/").streaming_content)

    assert data[12:16] == b"VP8X" and data[20] & 0x10  # the alpha flag survives the new header
    assert pixels(data) == pixels(out.getvalue())


def test_the_file_name_comes_from_the_prompt_and_the_date(client_alice, alice, team):
    task = make_finished_task(team, alice, prompt='Fox/"quoted"\\ name\r\n..%00 <x>', created_at=DAY)
    image = make_image(task, index=2, created_at=DAY)

    response = client_alice.get(f"/media/image/{image.pk}/download/")

    assert response["Content-Disposition"] == 'attachment; filename="foxquoted-name-00-x-2025-03-14-3.png"'


def test_a_unicode_prompt_gives_a_unicode_file_name_encoded_for_the_header(client_alice, task):
    image = make_image(task, created_at=DAY)

    response = client_alice.get(f"/media/image/{image.pk}/download/")

    assert downloads.file_name(image) == "a-café-on-the-moon-film-still-月の喫茶店-2025-03-14-1.png"
    assert response["Content-Disposition"].startswith("attachment; filename*=utf-8''a-caf%C3%A9-on-the-moon")


def test_an_image_of_a_comparison_names_its_model(client_alice, alice, team):
    group = uuid.uuid4()
    four = make_image(make_finished_task(team, alice, prompt="A lighthouse", model=catalog.SD40,
                                         compare_group=group, created_at=DAY), created_at=DAY)
    lite = make_image(make_finished_task(team, alice, prompt="A lighthouse", model=catalog.SD50_LITE,
                                         compare_group=group, created_at=DAY), created_at=DAY)
    alone = make_image(make_finished_task(team, alice, prompt="A lighthouse", model=catalog.SD45, created_at=DAY),
                       created_at=DAY)

    response = client_alice.get(f"/media/image/{lite.pk}/download/")

    assert response["Content-Disposition"] == (
        'attachment; filename="a-lighthouse-seedream-5.0-lite-2025-03-14-1.png"'
    )
    assert downloads.file_name(four) == "a-lighthouse-seedream-4.0-2025-03-14-1.png"
    assert downloads.file_name(alone) == "a-lighthouse-2025-03-14-1.png"  # not compared: as before


def test_a_zip_of_a_comparison_tells_the_models_apart(client_alice, alice, team):
    group = uuid.uuid4()
    compared = [
        make_image(make_finished_task(team, alice, prompt="Twin", model=model, compare_group=group, created_at=DAY),
                   created_at=DAY)
        for model in (catalog.SD40, catalog.SD45, catalog.SD50_PRO)
    ]
    unknown = make_image(make_finished_task(team, alice, prompt="Twin", model="doubao-seedream-9.9",
                                            compare_group=group, created_at=DAY), created_at=DAY)

    response = zip_response(client_alice, [image.pk for image in [*compared, unknown]])

    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert sorted(archive.namelist()) == [
        "manifest.json",
        "twin-doubao-seedream-9.9-2025-03-14-1.png",
        "twin-seedream-4.0-2025-03-14-1.png",
        "twin-seedream-4.5-2025-03-14-1.png",
        "twin-seedream-5.0-pro-2025-03-14-1.png",
    ]
    manifest = json.loads(archive.read("manifest.json"))
    models = {entry["file"]: entry["model_name"] for entry in manifest["images"]}
    assert models["twin-seedream-4.5-2025-03-14-1.png"] == "Seedream 4.5"


def test_a_prompt_without_letters_still_gives_a_name(alice, team):
    image = make_image(make_finished_task(team, alice, prompt="!!! ???", created_at=DAY), created_at=DAY)

    assert downloads.file_name(image) == "seedream-2025-03-14-1.png"


def test_a_file_we_cannot_splice_is_downloaded_as_stored(client_alice, task):
    image = make_image(task)
    broken = b"\x89PNG\r\n\x1a\n" + b"\0\0\0\x0dIHDR" + b"garbage" * 10
    default_storage.delete(image.file.name)
    default_storage.save(image.file.name, ContentFile(broken))

    response = client_alice.get(f"/media/image/{image.pk}/download/")

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == broken


def test_a_download_of_a_file_missing_from_storage_is_a_404(client_alice, task):
    image = make_image(task)
    default_storage.delete(image.file.name)

    assert client_alice.get(f"/media/image/{image.pk}/download/").status_code == 404


def test_a_large_download_streams_in_bounded_chunks(client_alice, task):
    image = make_image(task)
    big = Image.effect_noise((1600, 1200), 60).convert("RGB")
    out = io.BytesIO()
    big.save(out, "PNG", compress_level=0)
    default_storage.delete(image.file.name)
    default_storage.save(image.file.name, ContentFile(out.getvalue()))

    response = client_alice.get(f"/media/image/{image.pk}/download/")

    chunks = list(response.streaming_content)
    assert len(out.getvalue()) > 5 * COPY_CHUNK_BYTES
    assert max(len(chunk) for chunk in chunks) <= COPY_CHUNK_BYTES
    assert pixels(b"".join(chunks)) == pixels(out.getvalue())


# Many images as a ZIP


def zip_response(client, ids):
    return client.post("/gallery/download/", {"ids": ids})


def test_the_zip_holds_exactly_the_selected_images_and_a_manifest(client_alice, alice, team, task):
    chosen = [
        make_image(task, index=i, image_format=fmt, created_at=DAY) for i, fmt in enumerate(["PNG", "JPEG"])
    ]
    chosen.append(
        make_image(
            make_finished_task(team, alice, prompt="Owl", created_at=DAY), image_format="WEBP", created_at=DAY
        )
    )
    make_image(make_finished_task(team, alice, prompt="Not chosen"))

    response = zip_response(client_alice, [image.pk for image in chosen])

    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="studio-')
    assert response["Content-Disposition"].endswith('-3-images.zip"')
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert archive.testzip() is None
    names = archive.namelist()
    assert names == [  # newest first, like the gallery
        "owl-2025-03-14-1.webp",
        "a-café-on-the-moon-film-still-月の喫茶店-2025-03-14-2.jpg",
        "a-café-on-the-moon-film-still-月の喫茶店-2025-03-14-1.png",
        "manifest.json",
    ]
    manifest = json.loads(archive.read("manifest.json"))
    by_id = {entry["image_id"]: entry for entry in manifest["images"]}
    assert set(by_id) == {image.pk for image in chosen}
    for image in chosen:
        entry = by_id[image.pk]
        assert entry["prompt"] == image.task.prompt
        assert entry["original_sha256"] == image.sha256
        data = archive.read(entry["file"])
        assert pixels(data) == pixels(stored(image))
        with Image.open(io.BytesIO(data)) as im:
            text = (
                im.text.get("Description")
                if im.format == "PNG"
                else im.getexif()[0x010E].encode("latin-1").decode()
            )
        assert text == image.task.prompt


def test_zip_entries_with_the_same_name_are_numbered(client_alice, alice, team):
    same = [
        make_image(make_finished_task(team, alice, prompt="Twin", created_at=DAY), created_at=DAY)
        for _ in range(3)
    ]

    response = zip_response(client_alice, [image.pk for image in same])

    names = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).namelist()
    assert sorted(names) == [
        "manifest.json",
        "twin-2025-03-14-1-2.png",
        "twin-2025-03-14-1-3.png",
        "twin-2025-03-14-1.png",
    ]


def test_the_zip_is_streamed_while_it_is_built(client_alice, alice, team):
    chosen = make_images(team, alice, 3)
    big = Image.effect_noise((1200, 1000), 60).convert("RGB")
    out = io.BytesIO()
    big.save(out, "PNG", compress_level=0)
    for image in chosen:
        name = default_storage.save(f"results/big-{image.pk}.png", ContentFile(out.getvalue()))
        GalleryImage.objects.filter(pk=image.pk).update(file=name, bytes=len(out.getvalue()))

    response = zip_response(client_alice, [image.pk for image in chosen])

    chunks = iter(response.streaming_content)
    first = next(chunks)
    assert first.startswith(b"PK\x03\x04")  # bytes leave before the archive is finished
    rest = list(chunks)
    assert max(len(chunk) for chunk in [first, *rest]) <= COPY_CHUNK_BYTES + 1024
    assert sum(len(c) for c in [first, *rest]) > 3 * len(out.getvalue())
    assert zipfile.ZipFile(io.BytesIO(first + b"".join(rest))).testzip() is None


def test_a_file_missing_from_storage_is_listed_in_the_manifest_not_the_zip(client_alice, alice, team):
    here, gone = (
        make_image(make_finished_task(team, alice, prompt="Here")),
        make_image(make_finished_task(team, alice, prompt="Gone")),
    )
    default_storage.delete(gone.file.name)

    response = zip_response(client_alice, [here.pk, gone.pk])

    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    manifest = json.loads(archive.read("manifest.json"))
    assert [(e["prompt"], e["file"], e.get("missing", False)) for e in manifest["images"]] == [
        ("Gone", None, True),
        ("Here", downloads.file_name(here), False),
    ]
    assert archive.namelist() == [downloads.file_name(here), "manifest.json"]


def test_a_zip_with_another_teams_image_is_a_404(client_alice, alice, charlie, team, other_team):
    mine = make_images(team, alice, 1)[0]
    theirs = make_images(other_team, charlie, 1, prompt="rival secret {i}")[0]

    response = zip_response(client_alice, [mine.pk, theirs.pk])

    assert response.status_code == 404
    assert not isinstance(response, StreamingHttpResponse)
    assert b"rival secret" not in response.content


@pytest.mark.parametrize(
    "ids",
    [
        [],
        [""],
        ["x"],
        ["1 OR 1=1"],
        ["-1"],
        ["9" * 40],
        [str(i) for i in range(1, 502)],
        [str(i) for i in range(1, 1200)],
    ],
)
def test_a_bad_zip_selection_is_a_400(client_alice, alice, team, ids):
    make_images(team, alice, 1)

    response = zip_response(client_alice, ids)

    assert response.status_code == 400
    if len(ids) <= 1000:  # beyond that Django refuses the form itself (DATA_UPLOAD_MAX_NUMBER_FIELDS)
        assert "select" in response.content.decode().lower()


def test_an_unknown_id_in_a_zip_is_a_404(client_alice, alice, team):
    mine = make_images(team, alice, 1)[0]

    assert zip_response(client_alice, [mine.pk, mine.pk + 1000]).status_code == 404


def test_the_zip_needs_a_post(client_alice, alice, team):
    mine = make_images(team, alice, 1)[0]

    assert client_alice.get(f"/gallery/download/?ids={mine.pk}").status_code == 405
