from django.db import models
from django.utils import timezone


class ProviderCall(models.Model):
    """One attempt to create a task at a provider. The circuit breaker (gallery/routing.py) and the
    providers page read these, so web and worker processes see the same health."""

    provider = models.CharField(max_length=20)
    at = models.DateTimeField(default=timezone.now)
    # False when the provider itself failed (retryable error or an account problem); a refusal
    # of the task's own content (e.g. the safety filter) shows the provider is up.
    ok = models.BooleanField()
    code = models.CharField(max_length=100, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["provider", "-at"], name="provider_call_recent")]

    def __str__(self):
        return f"{self.provider} {'ok' if self.ok else self.code} at {self.at:%H:%M:%S}"


class ProviderState(models.Model):
    """What the studio knows of a provider besides its calls: its account balance as the worker
    last read it (pages show this and never wait for the upstream), and the probe a half-open
    breaker lets through, one at a time across all workers."""

    provider = models.CharField(max_length=20, primary_key=True)
    credits = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    key_credits = models.DecimalField(
        max_digits=14, decimal_places=4, null=True, blank=True, help_text="What this API key may still spend."
    )
    read_at = models.DateTimeField(null=True, blank=True, help_text="When the balance was last read.")
    tried_at = models.DateTimeField(null=True, blank=True)
    problem = models.TextField(blank=True, help_text="Why the last read failed.")
    probe_until = models.DateTimeField(null=True, blank=True, help_text="A worker is probing a resting provider.")

    def __str__(self):
        return f"{self.provider}: {self.credits}"


class SandboxRun(models.Model):
    """The sandbox provider's own record of a simulated upstream task."""

    id = models.CharField(max_length=64, primary_key=True)
    client_ref = models.CharField(max_length=64, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    params = models.JSONField()

    def __str__(self):
        return self.id
