"""Downloads: one image with its prompt and settings written into the file, or several as one
ZIP that is streamed while it is built (SPEC §4).

Both read the stored original in chunks and never hold a whole file (or archive) in memory.
"""

import json
import logging
import zipfile

from django.utils import timezone
from django.utils.text import slugify

from gallery import catalog, options
from gallery.images.decode import InvalidImage
from gallery.images.metadata import Metadata, Spliced, with_metadata

log = logging.getLogger(__name__)

NAME_WORDS_CHARS = 60


def file_name(image):
    """`a-lighthouse-at-dusk-2025-01-31-2.png`: the prompt's first words, the day, the image's
    number in its task. An image of a comparison names its model after the prompt's words
    (`a-lighthouse-at-dusk-seedream-4.5-2025-01-31-1.png`), so the models' images of one prompt
    are told apart. Safe anywhere: no separators, quotes or control characters."""
    task = image.task
    words = slugify(task.prompt[:200], allow_unicode=True)[:NAME_WORDS_CHARS].strip("-_") or "seedream"
    if task.compare_group:
        words += f"-{model_tag(task)}"
    day = timezone.localtime(image.created_at).date().isoformat()
    return f"{words}-{day}-{image.index + 1}.{options.extension(image.format).lstrip('.')}"


def model_tag(task):
    """`seedream-4.5`, `seedream-5.0-lite`: the model's short name, with "seedream" before it so
    a bare "4.5" is not read as part of the date or number; a model the catalog no longer knows
    by its id."""
    model = catalog.get(task.model)
    name = f"seedream {model.short_name}" if model else task.model
    # slugify drops dots, and "4.5" would become "45": each dot-separated piece is slugified.
    pieces = [slugify(piece) for piece in name.lower().split(".")]
    return ".".join(piece for piece in pieces if piece) or "model"


def describe(image):
    """The prompt and settings of an image: written into downloads and the ZIP's manifest."""
    task = image.task
    return {
        "model": task.model,
        "model_name": task.model_name,
        "prompt": task.prompt,
        "sent_prompt": task.sent_prompt,
        "size": task.size,
        "quality": task.quality,
        "custom_size": f"{task.custom_width}x{task.custom_height}" if task.custom_width else None,
        "n": task.n,
        "priority": task.priority,
        **{extra: value for extra in ("output_format", "web_search", "watermark", "background")
           if (value := getattr(task, extra))},
        "compare_group": str(task.compare_group) if task.compare_group else None,
        "image": image.index + 1,
        "width": image.width,
        "height": image.height,
        "format": image.format,
        "provider": task.provider,
        "price_per_image": str(task.price_per_image),
        "created_at": timezone.localtime(image.created_at).isoformat(timespec="seconds"),
        "created_by": task.created_by.display_name if task.created_by else None,
        "task_id": str(task.pk),
        "image_id": image.pk,
        "original_sha256": image.sha256,
    }


def metadata(image):
    task = image.task
    return Metadata(
        prompt=task.prompt,
        author=task.created_by.display_name if task.created_by else "",
        created=timezone.localtime(image.created_at),
        settings=describe(image),
    )


class FileChunks:
    """An iterable of a download's chunks that closes the stored file when the response closes,
    even when it was never iterated (a client that went away before the first byte)."""

    def __init__(self, spliced, handle):
        self.size = spliced.size
        self._chunks = spliced.chunks(handle)
        self._handle = handle

    def __iter__(self):
        return self._chunks

    def close(self):
        self._chunks.close()
        self._handle.close()


def open_download(image):
    """The original with its prompt and settings inside, as FileChunks (with `.size`). A file
    whose layout cannot be spliced safely comes as stored. Raises FileNotFoundError."""
    handle = image.file.open("rb")
    try:
        size = image.file.size
        try:
            spliced = with_metadata(handle, size, image.format, metadata(image))
        except InvalidImage as error:
            log.warning("Image %s: downloaded without metadata: %s", image.pk, error)
            spliced = Spliced(((0, size),))
    except BaseException:
        handle.close()
        raise
    return FileChunks(spliced, handle)


def zip_name(team, count):
    day = timezone.localdate().isoformat()
    return f"{slugify(team.name) or 'seedream'}-{day}-{count}-image{'s' if count != 1 else ''}.zip"


class _Sink:
    """Where zipfile writes. It has no tell() or seek(), so zipfile streams: each entry's sizes
    and CRC follow its data in a data descriptor, and nothing is ever rewritten."""

    def __init__(self):
        self._parts = []

    def write(self, data):
        self._parts.append(bytes(data))
        return len(data)

    def flush(self):
        pass

    def take(self):
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def zip_chunks(selected):
    """The bytes of a ZIP of `selected` images (each as open_download gives it) and a
    manifest.json of their prompts and settings, produced while it is sent.

    Images are already compressed, so entries are stored, not deflated: the archive costs about
    as much as copying the files. Memory holds one chunk at a time whatever the total size.
    """
    sink = _Sink()
    described, used = [], set()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
        for image in selected:
            entry = describe(image)
            try:
                chunks = open_download(image)
            except FileNotFoundError:
                log.warning("Image %s: file missing from storage, left out of a ZIP", image.pk)
                described.append({"file": None, "missing": True, **entry})
                continue
            name = _unique(file_name(image), used)
            info = zipfile.ZipInfo(name, date_time=timezone.localtime(image.created_at).timetuple()[:6])
            info.compress_type = zipfile.ZIP_STORED
            info.file_size = chunks.size  # lets zipfile choose ZIP64 up front for a huge entry
            try:
                with archive.open(info, "w") as member:
                    for chunk in chunks:
                        member.write(chunk)
                        if data := sink.take():
                            yield data
            finally:
                chunks.close()
            described.append({"file": name, **entry})
        manifest = {"created_at": timezone.localtime().isoformat(timespec="seconds"), "images": described}
        archive.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))
    yield sink.take()


def _unique(name, used):
    stem, dot, ext = name.rpartition(".")
    candidate, number = name, 1
    while candidate.lower() in used or candidate.lower() == "manifest.json":
        number += 1
        candidate = f"{stem}-{number}{dot}{ext}"
    used.add(candidate.lower())
    return candidate
