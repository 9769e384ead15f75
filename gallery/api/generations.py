"""POST /v1/images/generations: EvoLink's body, checked by the studio form's own rules
(gallery/forms/studio.py, per model from gallery/catalog.py), then the pipeline's submit."""

from django.conf import settings
from django.core.exceptions import ValidationError

from gallery import budgets, catalog, netguard, offers, options, pipeline
from gallery.forms.studio import (
    check_counts,
    check_model_settings,
    check_reference_count,
    clean_prompt,
    parse_custom_size,
)
from gallery.outbound import url_policy

from .errors import ApiError
from .references import checked, decode_base64, own_file

RATIOS = list(options.RATIOS)
MAX_CALLBACK_URL = 2048
# model_params → the studio form's field that each maps to (checked by check_model_settings).
PARAMS = {"output_format", "tools", "watermark", "background"}


def _rule(param, check, status=400):
    """Runs one of the studio form's rules; its ValidationError becomes the API's error."""
    try:
        return check()
    except ValidationError as e:
        raise ApiError(status, e.messages[0], param) from None


def _string(body, name, default=None):
    value = body.get(name, default)
    if value is not None and not isinstance(value, str):
        raise ApiError(400, f"{name} must be a string.", name)
    return value


def _default(value, default):
    return default if value is None else value


def clean(body, team):
    """(cleaned, task_fields) for pipeline.submit_all, or ApiError naming the first problem."""
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object, e.g. {\"model\": \"doubao-seedream-4.0\", \"prompt\": \"…\"}.")
    # Left out or null: the defaults. An empty string is a value, and not a valid one (as at EvoLink).
    model_id = _string(body, "model", settings.DEFAULT_MODEL)
    model = catalog.get(settings.DEFAULT_MODEL if model_id is None else model_id)
    if model is None:
        raise ApiError(400, f"Unknown model {model_id!r}: choose one of {', '.join(catalog.MODELS)}.", "model")
    raw_prompt = _string(body, "prompt", "")
    if raw_prompt and len(raw_prompt) > model.max_prompt_chars:  # counted as sent, as the OpenAPI document says
        over = len(raw_prompt) - model.max_prompt_chars
        raise ApiError(400, options.say("prompt_too_long", length=f"{len(raw_prompt):,}", model=model.name,
                                        limit=f"{model.max_prompt_chars:,}", over=f"{over:,}",
                                        characters="characters" if over > 1 else "character"), "prompt")
    prompt = _rule("prompt", lambda: clean_prompt(raw_prompt, model))

    n = body.get("n", 1)
    if isinstance(n, float) and n.is_integer():
        n = int(n)  # 2.0 is 2, as JSON Schema counts it
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= options.MAX_IMAGES:
        raise ApiError(400, options.say("n_range", max=options.MAX_IMAGES), "n")

    size = _default(_string(body, "size"), "auto")
    custom = None
    if size not in RATIOS:
        if "x" not in size.lower() and "×" not in size and "*" not in size:
            raise ApiError(400, f"size must be one of {', '.join(RATIOS)} or WIDTHxHEIGHT, not {size!r}.", "size")
        custom = _rule("size", lambda: parse_custom_size(size, model))
        size = "auto"
    quality = _default(_string(body, "quality"), model.default_quality)
    if quality not in options.QUALITIES:
        raise ApiError(400, f"quality must be one of {', '.join(model.qualities)} for {model.name}.", "quality")
    priority = _default(_string(body, "prompt_priority"), "standard")
    if priority not in dict(options.PRIORITIES):
        raise ApiError(400, "prompt_priority must be standard or fast.", "prompt_priority")

    extras = model_params(body.get("model_params"))
    urls = _default(body.get("image_urls"), [])
    if not isinstance(urls, list) or not all(isinstance(url, str) for url in urls):
        raise ApiError(400, "image_urls must be a list of URLs (https:// or data:image/…;base64,).", "image_urls")
    _rule("image_urls", lambda: check_reference_count(len(urls)))
    _rule("n", lambda: check_counts(len(urls), n, model))
    references, pending = image_references(team, urls)

    cleaned = {
        "model": model.id, "compare": [], "prompt": prompt, "size": size, "quality": quality, "custom_size": custom,
        "n": n, "ask_for_n": False,  # the prompt is sent as the script wrote it, as EvoLink would
        "priority": priority, "references": references, "submit_token": "", **extras,
    }
    problems = check_model_settings(model, cleaned, references)
    if pending and "background" in problems and len(urls) == 1:
        problems.pop("background")  # its reference is fetched later: the worker checks it then
    for field, message in problems.items():
        param = {"priority": "prompt_priority", "quality": "quality", "web_search": "model_params.tools"}.get(
            field, f"model_params.{field}")
        raise ApiError(400, message, param)
    if offers.cheapest(model.id, quality) is None:
        raise ApiError(400, options.say("model_unavailable", model=model.name), "model")

    callback = clean_callback_url(body.get("callback_url"))
    return cleaned, {"callback_url": callback, "pending_image_urls": pending}


def model_params(params):
    """EvoLink's model_params as the studio form's extras."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ApiError(400, "model_params must be an object.", "model_params")
    unknown = sorted(set(params) - PARAMS)
    if unknown:
        raise ApiError(400, f"model_params has no {unknown[0]!r}; it takes {', '.join(sorted(PARAMS))}.",
                       f"model_params.{unknown[0]}")
    extras = {}
    if "output_format" in params:
        if params["output_format"] not in ("png", "jpeg"):
            raise ApiError(400, "model_params.output_format must be png or jpeg.", "model_params.output_format")
        extras["output_format"] = params["output_format"]
    if "tools" in params:
        tools = params["tools"]
        if not isinstance(tools, list) or any(tool != {"type": "web_search"} for tool in tools):
            raise ApiError(400, 'model_params.tools takes [{"type": "web_search"}].', "model_params.tools")
        extras["web_search"] = bool(tools)
    if "watermark" in params:
        if not isinstance(params["watermark"], bool):
            raise ApiError(400, "model_params.watermark must be true or false.", "model_params.watermark")
        extras["watermark"] = params["watermark"]
    if "background" in params:
        if params["background"] not in ("opaque", "transparent"):
            raise ApiError(400, "model_params.background must be opaque or transparent.", "model_params.background")
        extras["background"] = params["background"]
    return extras


def image_references(team, urls):
    """(references checked now, [{"position", "url"}] to fetch in the worker). `data:` URIs and
    this studio's file URLs are read here; other https URLs only have their spelling checked
    here (no request leaves a web request) and are fetched by the worker under netguard."""
    references, pending = [], []
    for position, url in enumerate(urls):
        param = f"image_urls[{position}]"
        if url.startswith("data:"):
            ref = checked(param, decode_base64(url, param), param)
        elif (ref := own_file(team, url, param)) is None:
            try:
                netguard.check_url(url, url_policy())
            except netguard.UnsafeURL as e:
                raise ApiError(400, f"{param}: {e.message}", param) from None
            pending.append({"position": position, "url": url})
            continue
        ref.position = position
        references.append(ref)
    return references, pending


def clean_callback_url(value):
    if value in (None, ""):
        return ""
    if not isinstance(value, str):
        raise ApiError(400, "callback_url must be a string.", "callback_url")
    if len(value) > MAX_CALLBACK_URL:
        raise ApiError(400, f"callback_url is {len(value):,} characters long; at most {MAX_CALLBACK_URL:,}.", "callback_url")
    try:
        netguard.check_url(value, url_policy())
    except netguard.UnsafeURL as e:
        raise ApiError(400, f"callback_url: {e.message}", "callback_url") from None
    return value


def submit(team, api_key, cleaned, task_fields, base):
    """Creates the task (attributed to the key and, for budgets, to the key's creator)."""
    cleaned = {**cleaned, "task_fields": {**task_fields, "api_key": api_key, "api_base_url": base[:200]}}
    try:
        return pipeline.submit_all(team, api_key.created_by, cleaned)[0]
    except budgets.BudgetExceeded as e:
        raise ApiError(402, e.message) from None
    except pipeline.ModelUnavailable as e:
        raise ApiError(400, options.say("model_unavailable", model=str(e)), "model") from None
    except pipeline.StorageUnavailable as e:
        raise ApiError(503, str(e)) from None
