"""Settings for the server of bench/poll.py: the app's own settings, with a URLconf that adds a
bare view to measure against. Benchmarks only; the app never reads this module."""

from seedream_site.settings import *  # noqa: F403

ROOT_URLCONF = "bench.poll_urls"
