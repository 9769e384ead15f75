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
