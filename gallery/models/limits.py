from django.db import models


class Throttle(models.Model):
    """Hits on one key (an address, an IP, an API key) in one fixed time window. Kept in the
    database so every web process and machine counts together."""

    key = models.CharField(max_length=200)
    window = models.BigIntegerField(help_text="Start of the window, in periods since 1970.")
    period = models.PositiveIntegerField(help_text="Length of the window in seconds.")
    hits = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint("key", "period", "window", name="throttle_window")]

    def __str__(self):
        return f"{self.key}: {self.hits} in window {self.window}"


class RateWindow(models.Model):
    """A sliding-window limit on one key: the hits of the last `period` seconds, counted in
    SLOTS sub-windows of period/SLOTS seconds each (gallery/ratelimit.py). One row per key,
    changed only by a conditional UPDATE on `version`, so concurrent requests on every process
    and machine never count past the limit."""

    key = models.CharField(max_length=200, unique=True)
    slot = models.BigIntegerField(default=0, help_text="The newest sub-window counted, in sub-windows since 1970.")
    counts = models.TextField(blank=True, help_text="Hits per sub-window, oldest first, ending at `slot`.")
    version = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.key}: {self.counts} up to {self.slot}"
