"""The studio's outbound HTTP settings, beside gallery/netguard.py (which reads no settings and
takes its policy from the caller): the policy for addresses the studio did not choose (references
by URL, callbacks, the result links providers hand back), the User-Agent every request sends,
and how long a call made for a task may take."""

from django.conf import settings

from gallery import netguard

USER_AGENT = "SeedreamStudio/1.0 (+self-hosted)"


def url_policy():
    return netguard.Policy(allow_http=settings.ALLOW_HTTP_URLS, allow_loopback=settings.ALLOW_LOOPBACK_URLS)


def within_lease(seconds):
    """A call's deadline, kept inside the task's lease: the pipeline renews the lease before each
    call, so no second worker can take the task (and pay again) while one is still waiting."""
    return min(seconds, max(5.0, settings.TASK_LEASE_SECONDS - 10.0))
