"""Settings for the worker processes of the fault drills (bench/drills.py, and its short form in
tests/gallery/test_drills.py): the app's own settings, with a storage whose writes fail while the
file DRILL_STORAGE_FAULT_FILE exists. Drills only; the app never reads this module."""

import os

from seedream_site.settings import *  # noqa: F403
from seedream_site.settings import STORAGES

_flaky = "FlakyS3Storage" if "S3Storage" in STORAGES["default"]["BACKEND"] else "FlakyFileSystemStorage"
STORAGES = {
    **STORAGES,
    "default": {
        "BACKEND": f"tests.fakes.storage.{_flaky}",
        "OPTIONS": {**STORAGES["default"].get("OPTIONS", {}), "fault_file": os.environ["DRILL_STORAGE_FAULT_FILE"]},
    },
}
