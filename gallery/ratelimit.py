"""Rate limits counted in the database (shared by every process and machine).

`allow` is a sliding window: at most `limit` hits in *any* `period` seconds, so a burst across a
minute boundary cannot pass twice the limit (the Team API's per-key limit and its throttle on
wrong keys). `hit` is a fixed window (hits per calendar period), kept for the password-reset
throttles, where a doubled burst at a boundary is harmless."""

import math
import time
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from gallery.models import RateWindow, Throttle

SLOTS = 60  # sub-windows per period: a hit is forgotten at most period/SLOTS late, never early
ATTEMPTS = 50  # conditional updates lost to concurrent hits on one key before giving up


def client_ip(request):
    """The address a request came from: the key of the per-address limits."""
    return request.META.get("REMOTE_ADDR", "")


def allow(key, limit, period):
    """Counts one hit on `key` unless `limit` hits were counted in the last `period` seconds;
    returns (allowed, seconds until a hit would be allowed again). A refused hit is not counted.

    The window is kept as hits per sub-window of period/SLOTS seconds, the oldest counted whole
    (so the count errs high, never low), in one row per key changed by a conditional UPDATE on its
    version: of two concurrent hits that read the same count, one writes and the other reads again."""
    key, width = key[:200], period / SLOTS
    for _ in range(ATTEMPTS):
        now = time.time()
        current = int(now // width)
        row = RateWindow.objects.filter(key=key).values_list("slot", "counts", "version").first()
        counts = _window(row, current)
        if sum(counts) >= limit:
            return False, _wait(counts, limit, current, width, now)
        counts[-1] += 1
        text = ",".join(map(str, counts)).lstrip("0,")
        if row is None:
            try:
                with transaction.atomic():
                    RateWindow.objects.create(key=key, slot=current, counts=text, version=1)
                return True, 0
            except IntegrityError:  # a concurrent first hit created the row: count again
                continue
        changed = RateWindow.objects.filter(key=key, version=row[2]).update(
            slot=current, counts=text, version=row[2] + 1, updated_at=timezone.now()
        )
        if changed:
            return True, 0
    return False, 1  # this many concurrent hits on one key are too many anyway


def _window(row, current):
    """Hits per sub-window from current - SLOTS to current (SLOTS + 1 of them)."""
    counts = [0] * (SLOTS + 1)
    if row is None or not row[1]:
        return counts
    stored = [int(c) for c in row[1].split(",")]
    first = row[0] - len(stored) + 1
    for offset, hits in enumerate(stored):
        # A sub-window "from the future" (another machine's clock is ahead) counts as the newest.
        index = min(first + offset, current) - (current - SLOTS)
        if index >= 0:
            counts[index] += hits
    return counts


def _wait(counts, limit, current, width, now):
    """Seconds until enough of the oldest sub-windows have left the window for one more hit."""
    left = sum(counts)
    for index, hits in enumerate(counts):
        left -= hits
        if left < limit:
            # Sub-window current - SLOTS + index leaves when the window starts after it.
            return max(1, math.ceil((current + index + 1) * width - now))
    return 1


def hit(key, limit, period):
    """Counts one hit on `key` in a fixed window; returns (allowed, seconds until the window ends)."""
    now = time.time()
    window = int(now // period)
    rows = Throttle.objects.filter(key=key[:200], period=period, window=window)
    if not rows.update(hits=F("hits") + 1):
        try:
            with transaction.atomic():
                Throttle.objects.create(key=key[:200], period=period, window=window, hits=1)
        except IntegrityError:  # another request created the window's row first
            rows.update(hits=F("hits") + 1)
    hits = rows.values_list("hits", flat=True).first() or 1
    return hits <= limit, math.ceil((window + 1) * period - now)


def prune(older_than_seconds=2 * 24 * 3600):
    """Forgets windows that ended long ago (and sliding windows idle as long); returns how many
    rows went."""
    cutoff = time.time() - older_than_seconds
    deleted = 0
    for period in Throttle.objects.values_list("period", flat=True).distinct():
        deleted += Throttle.objects.filter(period=period, window__lt=int(cutoff // period)).delete()[0]
    idle = timezone.now() - timedelta(seconds=older_than_seconds)
    deleted += RateWindow.objects.filter(updated_at__lt=idle).delete()[0]
    return deleted
