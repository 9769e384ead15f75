"""The decorator every API view wears: bearer key, rate limit, method, and errors as JSON."""

import logging
from functools import wraps

from django.conf import settings
from django.http import Http404
from django.views.decorators.csrf import csrf_exempt

from gallery import ratelimit
from gallery.models import ApiKey

from . import body as request_body
from .errors import EVOLINK, ApiError

log = logging.getLogger(__name__)


def bearer(request):
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def refuse_guessing(request):
    """Counts a request with a wrong, revoked or malformed key against its client address; past
    API_AUTH_FAILURE_LIMIT in the window, a 429 instead of the 401. Only failures count, and only
    after the key was checked: a valid key is never refused by this, even from a throttled address
    (keys carry ~280 random bits; this stops floods and misconfigured scripts, not luck)."""
    limit, period = settings.API_AUTH_FAILURE_LIMIT
    allowed, retry_after = ratelimit.allow(f"api-auth-failure:{ratelimit.client_ip(request)}", limit, period)
    if not allowed:
        raise ApiError(
            429, f"Too many requests with a wrong API key came from your address: at most {limit} in "
            f"{period // 60} minutes. Check the key on the studio's API page; try again in {retry_after} seconds.",
            headers={"Retry-After": str(retry_after)},
        )


def api_view(methods, envelope=EVOLINK, body=request_body.SMALL):
    """Authenticates the key (the request then acts for `request.team` as `request.api_key`),
    counts it against the key's rate limit and turns every failure into the upstream's error
    shape; a bug answers a JSON 500 (and is logged), never an HTML page. A body declared larger
    than `body` (gallery/api/body.py) is refused before anything is read."""

    def decorator(view):
        @csrf_exempt
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            try:
                if request.method not in methods:
                    raise ApiError(405, f"This address takes {' or '.join(methods)} requests, not {request.method}.",
                                   headers={"Allow": ", ".join(methods)})
                request.api_body_limit = body
                request_body.refuse_oversized(request, body)
                raw = bearer(request)
                if not raw:
                    raise ApiError(401, "Send your studio API key in the header Authorization: Bearer sk-studio-…")
                key, problem = ApiKey.authenticate(raw)
                if key is None:
                    refuse_guessing(request)
                    raise ApiError(401, problem)
                allowed, retry_after = ratelimit.allow(f"api-key:{key.pk}", settings.API_RATE_LIMIT_PER_MINUTE, 60)
                if not allowed:
                    raise ApiError(
                        429, f"Too many requests with this key: at most {settings.API_RATE_LIMIT_PER_MINUTE} a minute. "
                        f"Try again in {retry_after} seconds.", headers={"Retry-After": str(retry_after)},
                    )
                key.touch()
                request.api_key, request.team = key, key.team
                log.info("API %s %s: key %s of team %s", request.method, request.path, key.prefix, key.team_id)
                return view(request, *args, **kwargs)
            except ApiError as e:
                return e.response(envelope)
            except Http404:
                return ApiError(404, "There is no such thing here, or it belongs to another team.").response(envelope)
            except Exception:
                log.exception("API request failed")
                return ApiError(
                    500, f"The studio hit an error it did not expect; it has been logged (request {getattr(request, 'id', '')})."
                ).response(envelope)

        return wrapper

    return decorator
