"""Small make_* helpers with defaults, for tests that need tasks and images."""

import io

from PIL import Image

from gallery import pipeline
from gallery.forms.studio import CheckedReference
from gallery.images.decode import inspect_image, make_thumbnail
from gallery.models import Membership, Team, User

PASSWORD = "correct horse battery staple"


def make_user(username, email=None, password=PASSWORD, **extra):
    user = User(username=username, email=email or f"{username}@example.com", **extra)
    user.set_password(password)
    user.save()
    return user


def make_team(name, owner, *members):
    team = Team.create_with_owner(name, owner)
    for user, role in members:
        Membership.objects.create(team=team, user=user, role=role)
    return team


def png_bytes(width=64, height=48, colour="orange"):
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


def make_reference(width=64, height=48, colour="orange", name="ref.png"):
    data = png_bytes(width, height, colour)
    return CheckedReference(name=name, data=data, info=inspect_image(data))


def make_task(team, user, prompt="A lighthouse at dusk", n=1, references=(), **inputs):
    cleaned = {
        "prompt": prompt,
        "ask_for_n": True,
        "size": "1:1",
        "quality": "1K",
        "custom_size": None,
        "n": n,
        "priority": "standard",
        "references": list(references),
        **inputs,
    }
    return pipeline.submit(team, user, cleaned)


def run_until_final(task, max_steps=50):
    """Drives the task with direct calls to the pipeline, as a worker would."""
    for _ in range(max_steps):
        task.refresh_from_db()
        if task.is_final and not task.tidy_pending:
            return task
        pipeline.advance(task.pk)
    task.refresh_from_db()
    return task


# Gallery images without the pipeline: rows pointing at small real files in storage.

FORMATS = {"PNG": ("png", {}), "JPEG": ("jpg", {"quality": 90}), "WEBP": ("webp", {"quality": 80})}


def image_bytes(width=64, height=48, image_format="PNG", colour="orange"):
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, image_format, **FORMATS[image_format][1])
    return out.getvalue()


def make_finished_task(team, user, prompt="A lighthouse at dusk", **fields):
    """A completed task row, as the pipeline leaves it (no provider call)."""
    from gallery.models import GenerationTask, Status

    fields = {"size": "1:1", "quality": "2K", "provider": "sandbox", "status": Status.COMPLETED, **fields}
    return GenerationTask.objects.create(
        team=team, created_by=user, prompt=prompt, sent_prompt=prompt, **fields
    )


def make_image(task, index=0, image_format="PNG", width=64, height=48, colour="orange", **fields):
    """A gallery image of `task` whose original and WebP thumbnail really are in storage."""
    import hashlib

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from gallery.models import GalleryImage

    data = image_bytes(width, height, image_format, colour)
    extension = "." + FORMATS[image_format][0]
    name = default_storage.save(task.images_expected_name(index, extension), ContentFile(data))
    thumbnail = ContentFile(make_thumbnail(data))
    thumb = default_storage.save(task.images_expected_name(index, ".thumb.webp"), thumbnail)
    return GalleryImage.objects.create(
        team=task.team, task=task, index=index, file=name, thumbnail=thumb, width=width, height=height,
        format=image_format, bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), **fields,
    )


def make_images(team, user, count, newest=None, step=None, prompt="Image {i}", **task_fields):
    """`count` images cheaply: one task each, bulk-created, all rows sharing one small real
    original and thumbnail. Image i is made `i * step` before `newest` (so index 0 is newest)."""
    import hashlib
    from datetime import timedelta

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.utils import timezone

    from gallery.models import GalleryImage, GenerationTask, Status

    newest = newest or timezone.now()
    step = timedelta(seconds=1) if step is None else step
    data = image_bytes()
    original = default_storage.save("results/shared/original.png", ContentFile(data))
    thumb = default_storage.save("results/shared/thumb.webp", ContentFile(make_thumbnail(data)))
    fields = {"size": "1:1", "quality": "2K", "provider": "sandbox", "status": Status.COMPLETED,
              **task_fields}
    tasks = GenerationTask.objects.bulk_create(
        GenerationTask(
            team=team, created_by=user, prompt=prompt.format(i=i), sent_prompt=prompt.format(i=i),
            created_at=newest - i * step, deadline_at=newest, storage_key=f"bulk{i}", **fields,
        )
        for i in range(count)
    )
    return GalleryImage.objects.bulk_create(
        GalleryImage(
            team=team, task=task, index=0, file=original, thumbnail=thumb, width=64, height=48, format="PNG",
            bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), created_at=task.created_at,
        )
        for task in tasks
    )
