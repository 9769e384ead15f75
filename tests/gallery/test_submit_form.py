"""The submit form (SPEC §2): every rule, posted through the studio view, with its message, and
nothing saved when a submission is rejected. The plain rule functions are also tested directly
where that is cheaper."""

import hashlib
import io
import struct
import zlib
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils.html import escape
from django_tasks_db.models import DBTaskResult
from PIL import Image

from gallery.forms.studio import (
    check_counts,
    check_reference_count,
    clean_prompt,
    parse_custom_size,
)
from gallery.options import sent_prompt
from gallery.models import GenerationTask, ReferenceImage
from tests.gallery.conftest import DEFAULTS  # noqa: F401 (for the other form tests)

MB = 1024 * 1024

BLANK = "Write a prompt: describe the image you want."
WRONG_N = "Choose between 1 and 15 images."
PIXELS = "Seedream 4.0 takes custom sizes of 921,600 to 16,777,216 pixels."


# Building files in memory


def encode(im, image_format="PNG", **params):
    out = io.BytesIO()
    im.save(out, image_format, **params)
    return out.getvalue()


def png(size=(32, 32), mode="RGB", color="red"):
    return encode(Image.new(mode, size, color))


def noise_png(size=(64, 48)):
    pixels = hashlib.shake_256(b"noise").digest(size[0] * size[1] * 3)
    return encode(Image.frombytes("RGB", size, pixels))


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_of_exactly(total_bytes):
    """A valid 32 × 32 PNG padded to total_bytes with a private ancillary chunk after IHDR."""
    base = png()
    after_ihdr = 8 + 25  # signature, then IHDR (4 length + 4 type + 13 data + 4 CRC)
    padding = total_bytes - len(base) - 12
    data = base[:after_ihdr] + chunk(b"pdNg", b"\0" * padding) + base[after_ihdr:]
    assert len(data) == total_bytes
    return data


def png_claiming(width, height):
    """A PNG of a few bytes whose header claims width × height (a decompression bomb's shape)."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    pixels = zlib.compress(b"\0")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def upload(data, name="reference.png", content_type="image/png"):
    return SimpleUploadedFile(name, data, content_type=content_type)


# Posting through the studio view


def stored_files():
    root = Path(settings.MEDIA_ROOT)
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def assert_rejected(response, *messages):
    assert response.status_code == 400
    html = response.content.decode()
    for message in messages:
        assert escape(message) in html, f"missing message: {message!r}"
    assert GenerationTask.objects.count() == 0
    assert ReferenceImage.objects.count() == 0
    assert stored_files() == []
    assert response.on_commit_callbacks == []


def accepted_task(response):
    assert response.status_code == 302, response.content.decode()[:3000]
    assert response["Location"] == "/"
    assert len(response.on_commit_callbacks) == 1  # the job is enqueued after commit
    (task,) = GenerationTask.objects.all()
    return task


# Prompt


@pytest.mark.parametrize("prompt", ["", "   \n\t  \r\n "], ids=["empty", "whitespace-only"])
def test_it_rejects_a_blank_prompt(submit, prompt):
    assert_rejected(submit(prompt=prompt), BLANK)


def test_it_rejects_a_missing_prompt(submit):
    assert_rejected(submit(prompt=None), BLANK)


def test_it_rejects_a_prompt_of_2001_characters(submit):
    response = submit(prompt="a" * 2001)
    assert_rejected(
        response, "The prompt is 2,001 characters long; Seedream 4.0 takes at most 2,000. Shorten it by 1 character."
    )


def test_it_accepts_a_prompt_of_exactly_2000_characters(submit):
    task = accepted_task(submit(prompt="a" * 2000))
    assert task.prompt == "a" * 2000


def test_it_counts_a_windows_line_break_as_one_character(submit):
    prompt = "a" * 999 + "\r\n" + "b" * 1000  # 2,001 as sent, 2,000 as the browser counts it
    task = accepted_task(submit(prompt=prompt))
    assert task.prompt == "a" * 999 + "\n" + "b" * 1000


def test_it_rejects_a_control_character_in_the_prompt(submit):
    response = submit(prompt="a fox\x07 in the snow")
    assert_rejected(
        response,
        "The prompt contains an invisible control character (U+0007, character 6). Remove it and try again.",
    )


def test_it_accepts_newlines_and_tabs_and_normalises_line_breaks(submit):
    task = accepted_task(submit(prompt="  A fox\r\n\tin the snow\rat dusk\n  "))
    assert task.prompt == "A fox\n\tin the snow\nat dusk"


def test_a_rejected_submission_keeps_what_was_typed(submit):
    prompt = "A fox <b>reading</b> “Le Monde”\nin a café"
    response = submit(prompt=prompt, n="16", custom_size="1000x500", size="16:9", priority="fast")
    assert_rejected(response, WRONG_N, "1000×500 is 500,000 pixels; " + PIXELS)
    html = response.content.decode()
    assert escape(prompt) + "</textarea>" in html
    assert 'value="1000x500"' in html
    assert 'value="16"' in html
    assert '<input type="radio" name="size" value="16:9" checked>' in html
    assert '<input type="radio" name="priority" value="fast" checked>' in html


def test_a_rejected_reference_keeps_the_typed_prompt(submit):
    response = submit(prompt="A lighthouse at night", references=[upload(b"not an image", "notes.png")])
    assert_rejected(response, "“notes.png”: This file is not an image we can read.")
    assert "A lighthouse at night</textarea>" in response.content.decode()


# References: count, size, type


def test_it_rejects_eleven_references(submit):
    response = submit(references=[upload(png(), f"ref{i}.png") for i in range(11)])
    assert_rejected(response, "You added 11 reference images; the limit is 10. Remove 1.")


def test_it_rejects_a_reference_of_10_mb_and_one_byte(submit):
    response = submit(references=[upload(png_of_exactly(10 * MB + 1), "big.png")])
    assert_rejected(
        response,
        "“big.png” is 10,485,761 bytes; reference images can be at most 10 MB (10,485,760 bytes) each.",
    )


def test_it_states_a_clearly_oversized_reference_in_megabytes(submit):
    response = submit(references=[upload(b"\0" * (12 * MB), "huge.png")])
    assert_rejected(
        response,
        "“huge.png” is 12.0\xa0MB; reference images can be at most 10 MB (10,485,760 bytes) each.",
    )


def test_it_accepts_a_reference_of_exactly_10_mb(submit):
    data = png_of_exactly(10 * MB)
    task = accepted_task(submit(references=[upload(data, "big.png")]))
    (ref,) = task.references.all()
    assert (ref.bytes, ref.format, ref.width, ref.height) == (10 * MB, "PNG", 32, 32)
    assert Path(settings.MEDIA_ROOT, ref.file.name).read_bytes() == data


def test_it_rejects_a_file_that_is_not_an_image(submit):
    response = submit(references=[upload(b"Just some notes, not a picture.\n", "notes.png")])
    assert_rejected(
        response, "“notes.png”: This file is not an image we can read. Use a JPG, PNG or WEBP image."
    )


def test_it_rejects_a_gif(submit):
    gif = encode(Image.new("P", (32, 32)), "GIF")
    response = submit(references=[upload(gif, "anim.gif", "image/gif")])
    assert_rejected(response, "“anim.gif” is a GIF image; reference images must be JPG, PNG or WEBP.")


def test_it_rejects_a_gif_named_png(submit):
    gif = encode(Image.new("P", (32, 32)), "GIF")
    response = submit(references=[upload(gif, "disguised.png", "image/png")])
    assert_rejected(response, "“disguised.png” is a GIF image; reference images must be JPG, PNG or WEBP.")


def test_it_rejects_a_truncated_png(submit):
    data = noise_png()
    response = submit(references=[upload(data[: len(data) // 2], "cut.png")])
    assert_rejected(
        response, "“cut.png”: This file is not an image we can read. Use a JPG, PNG or WEBP image."
    )


@pytest.mark.parametrize(
    "image_format, name, content_type, extension",
    [
        ("PNG", "photo.jpg", "image/jpeg", ".png"),
        ("JPEG", "photo.png", "image/png", ".jpg"),
        ("WEBP", "photo.bin", "application/octet-stream", ".webp"),
    ],
)
def test_the_content_decides_the_type_not_the_name(submit, image_format, name, content_type, extension):
    data = encode(Image.new("RGB", (40, 30), "teal"), image_format)
    task = accepted_task(submit(references=[upload(data, name, content_type)]))
    (ref,) = task.references.all()
    assert (ref.format, ref.original_name) == (image_format, name)
    assert ref.file.name.endswith(extension)
    assert Path(settings.MEDIA_ROOT, ref.file.name).read_bytes() == data


# References: dimensions


@pytest.mark.parametrize("size", [(20, 80), (80, 20)], ids=["1:4", "4:1"])
def test_it_rejects_a_reference_beyond_one_to_three(submit, size):
    response = submit(references=[upload(png(size), "odd.png")])
    w, h = size
    assert_rejected(
        response,
        f"“odd.png” is {w}×{h} pixels, too narrow or too wide: "
        "width divided by height must be between 1/3 and 3.",
    )


def test_it_accepts_references_of_exactly_three_to_one_and_one_to_three(submit):
    refs = [upload(png((300, 100)), "wide.png"), upload(png((100, 300)), "tall.png")]
    task = accepted_task(submit(references=refs))
    assert [(r.width, r.height) for r in task.references.all()] == [(300, 100), (100, 300)]


@pytest.mark.parametrize("size", [(13, 20), (20, 13)])
def test_it_rejects_a_reference_with_a_13_pixel_side(submit, size):
    response = submit(references=[upload(png(size), "small.png")])
    w, h = size
    assert_rejected(
        response, f"“small.png” is {w}×{h} pixels; each side must be between 14 and 6,000 pixels."
    )


def test_it_accepts_a_reference_of_14_by_14_pixels(submit):
    task = accepted_task(submit(references=[upload(png((14, 14)), "small.png")]))
    assert [(r.width, r.height) for r in task.references.all()] == [(14, 14)]


@pytest.mark.parametrize("size", [(6001, 2001), (2001, 6001)])
def test_it_rejects_a_reference_with_a_6001_pixel_side(submit, size):
    response = submit(references=[upload(png(size, mode="1", color=1), "huge.png")])
    w, h = size
    assert_rejected(response, f"“huge.png” is {w}×{h} pixels; each side must be between 14 and 6,000 pixels.")


def test_it_accepts_a_reference_with_a_6000_pixel_side(submit):
    task = accepted_task(submit(references=[upload(png((6000, 2000), mode="1", color=1), "wide.png")]))
    assert [(r.width, r.height) for r in task.references.all()] == [(6000, 2000)]


@pytest.mark.parametrize(
    "make",
    [
        lambda: png((8000, 8000), mode="1", color=1),  # a real image of 64 M pixels, a few kB on disk
        lambda: png_claiming(100_000, 100_000),  # past Pillow's own guard, refused at open
    ],
    ids=["8000x8000", "100000x100000"],
)
def test_it_rejects_a_decompression_bomb(submit, make):
    data = make()
    assert len(data) < 100_000
    response = submit(references=[upload(data, "bomb.png")])
    assert_rejected(
        response,
        "“bomb.png”: This image is too large to decode safely. Each side must be at most 6,000 pixels.",
    )


def test_it_reports_every_rejected_reference(submit):
    gif = encode(Image.new("P", (32, 32)), "GIF")
    refs = [upload(png(), "fine.png"), upload(gif, "a.gif"), upload(png((13, 13)), "b.png")]
    response = submit(references=refs)
    assert_rejected(
        response,
        "“a.gif” is a GIF image; reference images must be JPG, PNG or WEBP.",
        "“b.png” is 13×13 pixels; each side must be between 14 and 6,000 pixels.",
    )


# Ratio, quality, custom size, n, priority


def test_it_rejects_an_aspect_ratio_not_offered(submit):
    assert_rejected(submit(size="7:3"), "Choose one of the offered aspect ratio values.")


def test_it_rejects_a_quality_not_offered(submit):
    assert_rejected(submit(quality="8K"), "Choose one of the offered quality values.")


def test_it_rejects_a_priority_not_offered(submit):
    assert_rejected(submit(priority="urgent"), "Choose one of the offered priority values.")


def test_it_rejects_a_custom_size_in_the_wrong_format(submit):
    response = submit(custom_size="big")
    assert_rejected(response, "Write the custom size as WIDTHxHEIGHT, for example 1920x1080.")


def test_it_rejects_a_custom_size_with_too_few_pixels(submit):
    assert_rejected(submit(custom_size="1000x500"), "1000×500 is 500,000 pixels; " + PIXELS)


def test_it_rejects_a_custom_size_with_too_many_pixels(submit):
    assert_rejected(submit(custom_size="5000x5000"), "5000×5000 is 25,000,000 pixels; " + PIXELS)


def test_it_rejects_a_custom_size_wider_than_16_to_1(submit):
    # 4000 × 240 has enough pixels (960,000) but a ratio of 16.7.
    response = submit(custom_size="4000x240")
    assert_rejected(
        response, "4000×240 is too narrow or too wide: width divided by height must be between 1/16 and 16."
    )


def test_it_stores_an_accepted_custom_size(submit):
    task = accepted_task(submit(custom_size="1920 × 1080", size="1:1", quality="4K"))
    assert (task.custom_width, task.custom_height) == (1920, 1080)
    assert task.pixel_size == (1920, 1080)


@pytest.mark.parametrize("n", ["0", "16", "-1", "three", "2.5", None])
def test_it_rejects_a_number_of_images_outside_1_to_15(submit, n):
    assert_rejected(submit(n=n), WRONG_N)


def test_it_rejects_ten_references_with_six_images(submit):
    response = submit(n="6", references=[upload(png(), f"ref{i}.png") for i in range(10)])
    assert_rejected(
        response,
        "10 reference images + 6 images = 16, but together they can be at most 15. "
        "With 10 references, ask for at most 5 images.",
    )


def test_it_reports_too_many_images_even_when_a_reference_is_also_rejected(submit):
    refs = [upload(png(), f"ref{i}.png") for i in range(9)] + [upload(b"text", "notes.png")]
    response = submit(n="6", references=refs)
    assert_rejected(
        response,
        "“notes.png”: This file is not an image we can read.",
        "10 reference images + 6 images = 16, but together they can be at most 15.",
    )


def test_it_accepts_ten_references_with_five_images_and_keeps_their_order(submit):
    datas = [png((20 + i, 30), color=(10 * i, 0, 0)) for i in range(10)]
    task = accepted_task(submit(n="5", references=[upload(d, f"ref{i}.png") for i, d in enumerate(datas)]))
    refs = list(task.references.all())
    assert [r.position for r in refs] == list(range(10))
    assert [r.original_name for r in refs] == [f"ref{i}.png" for i in range(10)]
    for ref, data in zip(refs, datas, strict=True):
        assert (ref.format, ref.width, ref.height, ref.bytes) == ("PNG", 20 + ref.position, 30, len(data))
        assert ref.sha256 == hashlib.sha256(data).hexdigest()
        assert ref.team_id == task.team_id
        assert Path(settings.MEDIA_ROOT, ref.file.name).read_bytes() == data
    assert len(stored_files()) == 10


# Accepted submissions


def test_an_accepted_submission_creates_one_task_with_the_normalised_values(
    submit, settings, alice, team, django_capture_on_commit_callbacks
):
    settings.PRICE_OVERRIDES = {"sandbox": Decimal("0.0222")}
    response = submit(
        prompt="  A fox\r\nin the snow  ", n="3", size="16:9", quality="4K", priority="fast",
        references=[upload(png((40, 30)), "a.png")],
    )
    task = accepted_task(response)
    assert task.team == team and task.created_by == alice
    assert task.prompt == "A fox\nin the snow"
    assert task.sent_prompt == "A fox\nin the snow\n\nGenerate 3 different images."
    assert task.ask_for_n is True
    assert (task.size, task.quality, task.n, task.priority) == ("16:9", "4K", 3, "fast")
    assert (task.custom_width, task.custom_height) == (None, None)
    assert task.provider == "sandbox" and task.status == "queued"
    assert task.price_per_image == Decimal("0.0222")
    assert task.reserved_cost == Decimal("0.0666")
    assert task.references.count() == 1
    response.on_commit_callbacks[0]()
    assert DBTaskResult.objects.count() == 1


def test_the_prompt_sent_does_not_ask_for_n_images_when_the_switch_is_off(submit):
    task = accepted_task(submit(prompt="A fox", n="3", ask_for_n=None))
    assert task.ask_for_n is False
    assert (task.prompt, task.sent_prompt) == ("A fox", "A fox")


def test_the_prompt_sent_does_not_ask_for_one_image(submit):
    task = accepted_task(submit(prompt="A fox", n="1"))
    assert task.sent_prompt == "A fox"


def test_an_accepted_submission_without_references_stores_no_file(submit):
    task = accepted_task(submit())
    assert task.references.count() == 0
    assert stored_files() == []


# The plain rule functions


@pytest.mark.parametrize(
    "text, size",
    [
        ("1920x1080", (1920, 1080)),
        ("1920 x 1080", (1920, 1080)),
        ("1920×1080", (1920, 1080)),
        ("1920X1080", (1920, 1080)),
        ("1920*1080", (1920, 1080)),
        ("  1920x1080\n", (1920, 1080)),
        ("1280x720", (1280, 720)),
        ("720x1280", (720, 1280)),
        ("4096x4096", (4096, 4096)),
        ("4000x250", (4000, 250)),  # exactly 16:1
        ("250x4000", (250, 4000)),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_parse_custom_size_accepts(text, size):
    assert parse_custom_size(text) == size


@pytest.mark.parametrize(
    "text",
    ["big", "1920x", "x1080", "1920x1080x3", "1920,1080", "-1920x1080", "1920.5x1080", "123456x1",
     "1920 1080"],
)
def test_parse_custom_size_rejects_the_wrong_format(text):
    with pytest.raises(ValidationError) as caught:
        parse_custom_size(text)
    assert caught.value.code == "format"


@pytest.mark.parametrize("text", ["0x1080", "1279x720", "1280x719", "4097x4096", "4096x4097", "99999x99999"])
def test_parse_custom_size_rejects_a_pixel_count_out_of_range(text):
    with pytest.raises(ValidationError) as caught:
        parse_custom_size(text)
    assert caught.value.code == "pixels"


@pytest.mark.parametrize("text", ["4001x250", "250x4001", "4000x240", "16000x999"])
def test_parse_custom_size_rejects_a_ratio_beyond_16(text):
    with pytest.raises(ValidationError) as caught:
        parse_custom_size(text)
    assert caught.value.code == "aspect"


@pytest.mark.parametrize(
    "text, cleaned",
    [
        ("a\r\nb\rc\nd", "a\nb\nc\nd"),
        ("\ta\tb\t", "a\tb"),
        ("🦊" * 2000, "🦊" * 2000),
        ("👩\u200d👩\u200d👧 café", "👩\u200d👩\u200d👧 café"),  # a joiner is a format character, not a control
    ],
)
def test_clean_prompt_normalises(text, cleaned):
    assert clean_prompt(text) == cleaned


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\x9f"])
def test_clean_prompt_rejects_control_characters(char):
    with pytest.raises(ValidationError) as caught:
        clean_prompt(f"a{char}b")
    assert caught.value.code == "control_character"
    assert f"U+{ord(char):04X}, character 2" in caught.value.message


def test_clean_prompt_counts_after_trimming():
    assert clean_prompt(" " * 10 + "a" * 2000 + "\n" * 10) == "a" * 2000
    with pytest.raises(ValidationError) as caught:
        clean_prompt("a" * 2003)
    assert caught.value.message.endswith("Shorten it by 3 characters.")


def test_check_reference_count_allows_ten():
    check_reference_count(10)
    with pytest.raises(ValidationError):
        check_reference_count(11)


@pytest.mark.parametrize("refs, n", [(0, 15), (10, 5), (5, 10), (1, 14)])
def test_check_counts_allows_up_to_15_in_all(refs, n):
    check_counts(refs, n)


def test_check_counts_speaks_of_one_reference_in_the_singular():
    with pytest.raises(ValidationError) as caught:
        check_counts(1, 15)
    assert caught.value.message == (
        "1 reference image + 15 images = 16, but together they can be at most 15. "
        "With 1 reference, ask for at most 14 images."
    )


@pytest.mark.parametrize(
    "n, ask, sent",
    [(1, True, "P"), (2, True, "P\n\nGenerate 2 different images."), (15, False, "P"), (1, False, "P")],
)
def test_sent_prompt(n, ask, sent):
    assert sent_prompt("P", n, ask) == sent
