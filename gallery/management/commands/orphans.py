from datetime import timedelta

from django.core.management.base import BaseCommand
from django.template.defaultfilters import filesizeformat

from gallery import orphans


class Command(BaseCommand):
    help = (
        "Reports files in storage that no row names (and rows whose file is missing); with "
        "--delete, deletes those files. Rows are never deleted."
    )

    def add_arguments(self, parser):
        parser.add_argument("--delete", action="store_true", help="delete the orphan files found")
        parser.add_argument(
            "--older-than", type=float, default=24 * 3600, metavar="SECONDS",
            help="only files at least this old count (default a day: a newer file may be in flight)",
        )

    def handle(self, *args, delete, older_than, **options):
        found = orphans.find(grace=timedelta(seconds=older_than))
        size = sum(size for _, size, _ in found.orphans)
        for name, file_size, modified in found.orphans:
            self.stdout.write(f"orphan file: {name} ({filesizeformat(file_size)}, {modified:%Y-%m-%d %H:%M})")
        for label, name in found.missing:
            self.stdout.write(f"missing file: {label} names {name}")
        self.stdout.write(
            f"{found.files} files checked: {len(found.orphans)} orphan files ({filesizeformat(size)}), "
            f"{found.young} newer than {older_than:g} s left alone, {len(found.missing)} rows without their file"
        )
        if delete and found.orphans:
            self.stdout.write(f"deleted {orphans.delete(found)} orphan files")
