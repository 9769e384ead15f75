"""Fixed-window rate limits counted in the database (shared by every process and machine)."""

import math
import time

from django.db import IntegrityError, transaction
from django.db.models import F

from gallery.models import Throttle


def hit(key, limit, period):
    """Counts one hit on `key`; returns (allowed, seconds until the window ends)."""
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
    """Forgets windows that ended long ago; returns how many rows went."""
    cutoff = time.time() - older_than_seconds
    deleted = 0
    for period in Throttle.objects.values_list("period", flat=True).distinct():
        deleted += Throttle.objects.filter(period=period, window__lt=int(cutoff // period)).delete()[0]
    return deleted
