"""The decorator every API view wears: bearer key, rate limit, method, and errors as JSON."""

import logging
from functools import wraps

from django.conf import settings
from django.http import Http404
from django.views.decorators.csrf import csrf_exempt

from gallery import ratelimit
from gallery.models import ApiKey

from .errors import EVOLINK, ApiError

log = logging.getLogger(__name__)


def bearer(request):
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def api_view(methods, envelope=EVOLINK):
    """Authenticates the key (the request then acts for `request.team` as `request.api_key`),
    counts it against the key's rate limit and turns every failure into the upstream's error
    shape; a bug answers a JSON 500 (and is logged), never an HTML page."""

    def decorator(view):
        @csrf_exempt
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            try:
                if request.method not in methods:
                    raise ApiError(405, f"This address takes {' or '.join(methods)} requests, not {request.method}.",
                                   headers={"Allow": ", ".join(methods)})
                raw = bearer(request)
                if not raw:
                    raise ApiError(401, "Send your studio API key in the header Authorization: Bearer sk-studio-…")
                key, problem = ApiKey.authenticate(raw)
                if key is None:
                    raise ApiError(401, problem)
                allowed, retry_after = ratelimit.hit(f"api-key:{key.pk}", settings.API_RATE_LIMIT_PER_MINUTE, 60)
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
