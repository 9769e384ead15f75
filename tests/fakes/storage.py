"""Storage that fails on demand, for the fault drills: while the file named by `fault_file`
exists, every write fails as a full disk does (OSError ENOSPC) or, for object storage, as S3
answering 500 does (botocore's ClientError after its own retries). Reads and deletes still work."""

import errno
import os

from django.core.files.storage import FileSystemStorage
from storages.backends.s3 import S3Storage


class FlakyFileSystemStorage(FileSystemStorage):
    def __init__(self, fault_file="", **options):
        self.fault_file = fault_file
        super().__init__(**options)

    def _save(self, name, content):
        if self.fault_file and os.path.exists(self.fault_file):
            raise OSError(errno.ENOSPC, "No space left on device")
        return super()._save(name, content)


class FlakyS3Storage(S3Storage):
    def __init__(self, fault_file="", **options):
        self.fault_file = fault_file
        super().__init__(**options)

    def _save(self, name, content):
        if self.fault_file and os.path.exists(self.fault_file):
            from botocore.exceptions import ClientError

            raise ClientError(
                {"Error": {"Code": "InternalError", "Message": "We encountered an internal error."},
                 "ResponseMetadata": {"HTTPStatusCode": 500}},
                "PutObject",
            )
        return super()._save(name, content)
