"""Moves the media files from local disk (MEDIA_ROOT) into the configured S3 storage.

Every file the database refers to (gallery originals and thumbnails, references) and every other
file under MEDIA_ROOT is copied under the same name, read back and compared (size and SHA-256)
with the local file, and only then deleted locally. It can be stopped at any point and run again:
a file already in the bucket is compared, not copied twice, and a local file goes only once its
copy is known to be whole.
"""

import hashlib
import os
from dataclasses import dataclass, field

from django.conf import settings
from django.core.files.storage import FileSystemStorage, storages
from django.core.management.base import BaseCommand, CommandError
from storages.backends.s3 import S3Storage

from gallery.models import GalleryImage, ReferenceImage

CHUNK = 1024 * 1024


@dataclass
class Summary:
    copied: int = 0
    already_there: int = 0
    verified: int = 0
    failed: list = field(default_factory=list)

    def line(self):
        return (
            f"copied {self.copied}, already there {self.already_there}, "
            f"verified {self.verified}, failed {len(self.failed)}"
        )


class Command(BaseCommand):
    help = "Copies local media files into the S3 bucket, verifies each copy, then deletes the local file."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="list what would move; change nothing")
        parser.add_argument("--keep-local", action="store_true", help="copy and verify, but keep local files")

    def handle(self, *args, dry_run, keep_local, verbosity, **options):
        self.verbosity = verbosity
        bucket = storages["default"]
        if not isinstance(bucket, S3Storage):
            raise CommandError("The default storage is not S3: set S3_BUCKET (and its keys) first.")
        local = FileSystemStorage(location=settings.MEDIA_ROOT)
        names = media_names(local)
        if dry_run:
            self.dry_run(names, local, bucket)
            return
        summary = Summary()
        for name in names:
            try:
                self.move(name, local, bucket, summary, keep_local)
            except Exception as e:  # one bad file must not stop the others; a rerun retries it
                summary.failed.append(name)
                self.stderr.write(f"failed: {name}: {e}")
        if not keep_local:
            prune_empty_folders(settings.MEDIA_ROOT)
        self.stdout.write(summary.line())
        if summary.failed:
            raise CommandError(f"{len(summary.failed)} file(s) failed (see above); none of them was deleted.")

    def move(self, name, local, bucket, summary, keep_local):
        if not local.exists(name):
            if not bucket.exists(name):
                raise FileNotFoundError("in the database, but neither in MEDIA_ROOT nor in the bucket")
            summary.already_there += 1  # moved by an earlier run
            return
        size, digest = fingerprint(local, name)
        if bucket.exists(name):
            # An earlier run stopped after copying. A different object under this name was not
            # put there by us (S3 writes are all or nothing): never overwrite it.
            if fingerprint(bucket, name) != (size, digest):
                raise ValueError("a different file of that name is already in the bucket; left both alone")
            summary.already_there += 1
        else:
            copy(name, local, bucket)
            if fingerprint(bucket, name) != (size, digest):
                bucket.delete(name)  # ours and broken: the next run copies it again
                raise ValueError("the copy read back differs from the local file; removed the copy")
            summary.copied += 1
        summary.verified += 1
        if self.verbosity >= 2:
            self.stdout.write(f"verified: {name}")
        if not keep_local:
            local.delete(name)

    def dry_run(self, names, local, bucket):
        counts = {"would copy": 0, "already there": 0, "missing": 0}
        for name in names:
            if local.exists(name) and not bucket.exists(name):
                what = "would copy"
                self.stdout.write(f"would copy: {name} ({local.size(name):,} bytes)")
            elif bucket.exists(name):
                what = "already there"
                self.stdout.write(f"already in the bucket: {name}")
            else:
                what = "missing"
                self.stdout.write(f"missing (neither local nor in the bucket): {name}")
            counts[what] += 1
        self.stdout.write("dry run: " + ", ".join(f"{what} {count}" for what, count in counts.items()))


def media_names(local):
    """Every name the database refers to and every file under MEDIA_ROOT, sorted, each once."""
    names = set()
    for pair in GalleryImage.objects.values_list("file", "thumbnail").iterator():
        names.update(pair)
    names.update(ReferenceImage.objects.values_list("file", flat=True).iterator())
    root = local.location
    for folder, _, files in os.walk(root):
        for file_name in files:
            names.add(os.path.relpath(os.path.join(folder, file_name), root).replace(os.sep, "/"))
    names.discard("")
    return sorted(names)


def copy(name, local, bucket):
    with local.open(name, "rb") as f:
        saved = bucket.save(name, f)
    if saved != name:  # file_overwrite=True keeps names; anything else would break the rows
        bucket.delete(saved)
        raise ValueError(f"the bucket stored it as {saved}")


def fingerprint(storage, name):
    """(size, SHA-256) of a stored file, read through the storage."""
    digest, size = hashlib.sha256(), 0
    with storage.open(name, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def prune_empty_folders(root):
    """Removes the folders that moving emptied (never MEDIA_ROOT itself)."""
    for folder, _, _ in os.walk(root, topdown=False):
        if os.path.abspath(folder) != os.path.abspath(root):
            try:
                os.rmdir(folder)
            except OSError:
                pass  # not empty
