"""Files in storage that no row names, and rows whose file is gone.

Storage names are grouped by team (`results/<team>/…`, `references/<team>/…`, see
GenerationTask.images_expected_name and pipeline.reference_name), so the check runs one team at
a time: one team's names in memory, one listing of its two folders. The providers' copies of
references kept for an upstream (`sandbox/uploads/`, `byteplus/uploads/`) are named by
ReferenceImage.upstream_file_id until the task is tidied. Anything else is reported as an orphan.

A file younger than `grace` is left out: the pipeline writes a file before the row that names it
(a crash in between is tidied by the task itself), so a fresh file without a row may be in flight.
"""

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.core.files.storage import FileSystemStorage, default_storage
from django.utils import timezone

from gallery.models import GalleryImage, ReferenceImage, Team

TEAM_FOLDERS = ("results", "references")
UPSTREAM_FOLDERS = ("sandbox/uploads", "byteplus/uploads")


@dataclass
class Findings:
    orphans: list = field(default_factory=list)  # (name, size, modified) of files no row names
    missing: list = field(default_factory=list)  # (row label, name) of rows whose file is not there
    young: int = 0  # files without a row, left out as younger than the grace period
    files: int = 0


def find(grace=timedelta(hours=24), storage=None):
    storage = storage or default_storage
    cutoff = timezone.now() - grace
    found = Findings()
    teams = set(Team.objects.values_list("pk", flat=True))
    upstream = {
        name: f"reference {pk} (upstream copy)"
        for pk, name in ReferenceImage.objects.exclude(upstream_file_id="").values_list("pk", "upstream_file_id")
    }
    listed = set()
    # One listing of everything, in an order that keeps each team's folder together (a bucket lists
    # keys sorted, walk() goes depth-first), compared one group at a time.
    group, files = None, []
    for entry in [*walk(storage, ""), None]:
        key = _group(entry[0]) if entry else None
        if key != group and group is not None:
            folder, team_dir = group
            if folder in TEAM_FOLDERS:
                team_id = int(team_dir) if team_dir.isdigit() and int(team_dir) in teams else None
                listed.add((folder, team_id))
                named = _team_names(team_id) if team_id else {}
                _compare(files, named, f"{folder}/{team_dir}/", cutoff, found)
            elif folder in UPSTREAM_FOLDERS:
                _compare(files, upstream, folder + "/", cutoff, found, report_missing=False)
            else:
                _compare(files, {}, "", cutoff, found, report_missing=False)
            files = []
        group = key
        if entry:
            files.append(entry)
    for team_id in teams:  # a team with no folder at all: each of its rows misses its file
        for folder in TEAM_FOLDERS:
            if (folder, team_id) not in listed:
                found.missing += [(label, name) for name, label in _team_names(team_id).items()
                                  if name.startswith(f"{folder}/")]
    return found


def _group(name):
    parts = name.split("/")
    if parts[0] in TEAM_FOLDERS and len(parts) > 2:
        return parts[0], parts[1]
    if "/".join(parts[:2]) in UPSTREAM_FOLDERS and len(parts) > 2:
        return "/".join(parts[:2]), None
    return "other", None


def _team_names(team_id):
    """{storage name: row label} of one team's files."""
    names = {}
    for pk, file, thumb in GalleryImage.objects.filter(team_id=team_id).values_list("pk", "file", "thumbnail"):
        names[file] = f"image {pk}"
        names[thumb] = f"image {pk} (thumbnail)"
    for pk, file in ReferenceImage.objects.filter(team_id=team_id).values_list("pk", "file"):
        names[file] = f"reference {pk}"
    return names


def _compare(files, named, prefix, cutoff, found, report_missing=True):
    seen = set()
    for name, size, modified in files:
        found.files += 1
        seen.add(name)
        if name in named:
            continue
        if modified > cutoff:
            found.young += 1
        else:
            found.orphans.append((name, size, modified))
    if report_missing:
        found.missing += [(label, name) for name, label in named.items()
                          if name.startswith(prefix) and name not in seen]


def walk(storage, prefix):
    """(name, size, modified) of every file under `prefix` (a folder, or one file's name)."""
    if isinstance(storage, FileSystemStorage):
        root = os.path.join(storage.location, prefix)
        if os.path.isfile(root):
            yield _local(storage, root)
        for folder, folders, files in os.walk(root):
            folders.sort()
            for file in sorted(files):
                yield _local(storage, os.path.join(folder, file))
        return
    # Object storage (django-storages' S3, bucket root): one paginated listing with sizes and times.
    for obj in storage.bucket.objects.filter(Prefix=prefix):
        if not prefix or obj.key == prefix or obj.key.startswith(prefix.rstrip("/") + "/"):
            yield obj.key, obj.size, obj.last_modified


def _local(storage, path):
    stat = os.stat(path)
    name = os.path.relpath(path, storage.location).replace(os.sep, "/")
    return name, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC)


# EvoLink's file service keeps an upload 72 hours (SPEC): the copies the studio keeps itself for
# the sandbox and BytePlus expire the same way when no reference names them.
UPSTREAM_COPY_LIFETIME = timedelta(hours=72)


def expire_upstream_copies(before, storage=None):
    """Deletes the copies of references made for an upstream (UPSTREAM_FOLDERS) that no reference
    names and that are older than `before`: an upload whose worker was killed before it recorded
    it (the next worker uploads again). Returns how many went."""
    storage = storage or default_storage
    named = set(ReferenceImage.objects.exclude(upstream_file_id="").values_list("upstream_file_id", flat=True))
    expired = [name for folder in UPSTREAM_FOLDERS for name, _, modified in walk(storage, folder + "/")
               if name not in named and modified < before]
    for name in expired:
        storage.delete(name)
    return len(expired)


def delete(findings, storage=None):
    """Deletes the orphan files found; returns how many went."""
    storage = storage or default_storage
    for name, _, _ in findings.orphans:
        storage.delete(name)
    return len(findings.orphans)
