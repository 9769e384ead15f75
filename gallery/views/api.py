"""The Team API's views (SPEC §5): EvoLink's task API and file service, the signed result and
file links, and the OpenAPI document. Each view only translates HTTP; the rules are in
gallery/api/."""

import secrets
import uuid
from functools import wraps

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.http import JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from gallery import budgets, netguard, options
from gallery.api import body as request_body
from gallery.api import generations, idempotency
from gallery.api.auth import api_view
from gallery.api.errors import FILES, ApiError, envelope_for
from gallery.api.openapi import LIST_PAGE_LAST, LIST_PAGE_MAX, document
from gallery.api.references import checked, decode_base64
from gallery.api_objects import base_url, file_lookup, file_object, result_lookup, task_object
from gallery.models import ApiFile, GalleryImage, GenerationTask
from gallery.models.tasks import delete_stored_files
from gallery.outbound import USER_AGENT, url_policy
from gallery.pipeline import reference_name
from gallery.views.media import PRIVATE_HOUR, _serve

JSON_TYPES = ("application/json", "text/json")
URL_UPLOAD_DEADLINE = 15.0
# No budget: nothing caps what the key may spend but the studio's providers.
UNLIMITED = 999_999_999.0


def _raw_body(request):
    """The body, read once, within the endpoint's size cap (gallery/api/body.py)."""
    return request_body.read(request, request.api_body_limit)


def _json_body(request):
    """The JSON document of the body, checked for size, depth and lone surrogates."""
    content_type = request.content_type or ""
    if content_type and content_type not in JSON_TYPES and not content_type.endswith("+json"):
        raise ApiError(415, f"Send the body as JSON with Content-Type: application/json (not {content_type}).")
    return request_body.parse_json(_raw_body(request) or b"null")


def _ok(data, status=200):
    response = JsonResponse(data, status=status)
    response["Cache-Control"] = "no-store"
    return response


# Tasks ----------------------------------------------------------------------------------------


@api_view(["POST"], body=request_body.GENERATIONS)
def generations_view(request):
    record = None
    body = _json_body(request)  # before the Idempotency-Key's digest, which parses it again
    if "Idempotency-Key" in request.headers:
        key = idempotency.clean_key(request.headers["Idempotency-Key"])
        record, replay = idempotency.begin(request.api_key, key, idempotency.body_digest(_raw_body(request)))
        if replay:
            response = _ok(replay[1], replay[0])
            response["Idempotent-Replayed"] = "true"
            return response
    status, answer = 500, None
    try:
        cleaned, task_fields = generations.clean(body, request.team)
        base = base_url(request)
        task = generations.submit(request.team, request.api_key, cleaned, task_fields, base)
        status, answer = 200, task_object(task, base)
        return _ok(answer)
    except ApiError as e:
        status = e.status
        raise
    finally:
        idempotency.finish(record, status, answer)


def _task(request, task_id):
    try:
        pk = uuid.UUID(task_id)
    except ValueError:
        raise ApiError(404, "There is no task with this id (or it belongs to another team).", "id") from None
    task = GenerationTask.objects.for_team(request.team).filter(pk=pk).first()
    if task is None:
        raise ApiError(404, "There is no task with this id (or it belongs to another team).", "id")
    return task


@api_view(["GET"])
def task_view(request, task_id):
    return _ok(task_object(_task(request, task_id), base_url(request)))


@api_view(["GET"])
def credits_view(request):
    """EvoLink's balance shape: what is left of the team's monthly budget, in dollars; with no
    budget, the month's spend and a balance nothing caps (unlimited_credits)."""
    status = budgets.month_status(request.team)
    spent = float(status.spent)
    left = UNLIMITED if status.left is None else float(status.left)
    unlimited = status.budget is None
    user = {"remaining_credits": left, "used_credits": spent, "unlimited_credits": unlimited,
            "budget": None if unlimited else float(status.budget), "currency": "USD"}
    token = {"remaining_credits": left, "unlimited_credits": unlimited, "used_credits": spent,
             "name": request.api_key.name}
    return _ok({"success": True, "message": "", "data": {"user": user, "token": token}})


# Signed links (no session, no key: the signature is the permission) -----------------------------


def _get_only(view):
    """GET only, answered in the API's JSON shape (405 with Allow, 404 for a bad link), no CSRF."""

    @csrf_exempt
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            if request.method != "GET":
                raise ApiError(405, f"This address takes GET requests, not {request.method}.", headers={"Allow": "GET"})
            return view(request, *args, **kwargs)
        except ApiError as e:
            return e.response(envelope_for(request.path))

    return wrapper


@_get_only
def result_file(request, token):
    image = _signed_for(GalleryImage, result_lookup(token),
                        "This link is not valid, or it has expired: GET the task again for a fresh one.")
    return _serve(request, image.file, image.content_type, PRIVATE_HOUR, etag=f'"{image.sha256}"')


@_get_only
def file_content(request, token):
    api_file = _signed_for(ApiFile, file_lookup(token), "This link is not valid, or it has expired.")
    return _serve(request, api_file.file, options.content_type(api_file.format), PRIVATE_HOUR,
                  etag=f'"{api_file.sha256}"')


def _signed_for(model, lookup, problem):
    """The row a signed link names (`lookup`, None for a forged or expired link); 404 with
    `problem` if there is none."""
    found = model.objects.filter(**lookup).first() if lookup else None
    if found is None:
        raise ApiError(404, problem, "token")
    return found


@_get_only
def openapi_view(request):
    response = JsonResponse(document(base_url(request)), json_dumps_params={"indent": 1})
    response["Access-Control-Allow-Origin"] = "*"  # API browsers may load it from elsewhere
    return response


# The file service -------------------------------------------------------------------------------


def _file_answer(request, api_file, message="File uploaded successfully"):
    return _ok({"success": True, "code": 200, "msg": message, "data": file_object(api_file, base_url(request))})


def _store_file(request, name, data, param):
    if ApiFile.objects.filter(team=request.team).count() >= settings.API_FILE_QUOTA:
        raise ApiError(403, f"The team's file quota is full ({settings.API_FILE_QUOTA:,} files). Delete files "
                            "you no longer need (DELETE /api/v1/files/{file_id}).")
    ref = checked(name or "file", data, param)
    now = timezone.now()
    stored = default_storage.save(reference_name(request.team, now, ref.info.format), ContentFile(ref.data))
    try:
        with transaction.atomic():
            api_file = ApiFile.objects.create(
                file_id=f"file_{secrets.token_hex(12)}", team=request.team, api_key=request.api_key, file=stored,
                original_name=(name or "")[:255], format=ref.info.format, width=ref.info.width,
                height=ref.info.height, bytes=ref.info.bytes, sha256=ref.info.sha256, created_at=now,
            )
    except BaseException:
        delete_stored_files([stored])
        raise
    return api_file


def _file_name(value):
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > 255:
        raise ApiError(400, "file_name must be text of at most 255 characters.", "file_name")
    return "".join(char for char in value if char.isprintable())  # what cannot be shown is dropped


@api_view(["POST"], envelope=FILES, body=request_body.STREAM)
def upload_stream(request):
    try:
        fields, files = request_body.multipart(request, request_body.STREAM)
        upload = files.get("file")
    except MultiPartParserError:
        raise ApiError(400, "The body is not a multipart/form-data upload the studio can read.", "file") from None
    except RequestDataTooBig:
        raise ApiError(413, "The upload's fields other than the file are larger than 2.5 MB; send the image as the "
                            "field “file” and at most a file_name beside it.") from None
    except (TooManyFieldsSent, TooManyFilesSent):
        raise ApiError(400, "The upload carries more fields or files than the file service takes: send one image "
                            "as the field “file” (and at most a file_name).") from None
    if upload is None:
        raise ApiError(400, "Send the image as the multipart/form-data field “file”.", "file")
    if upload.size > options.MAX_REFERENCE_BYTES:
        raise ApiError(413, f"The file is larger than {options.MAX_REFERENCE_BYTES // 2**20} MB, the most a reference "
                            "image may be.", "file")
    name = _file_name(fields.get("file_name") or fields.get("fileName") or upload.name)
    return _file_answer(request, _store_file(request, name, upload.read(), "file"))


@api_view(["POST"], envelope=FILES, body=request_body.BASE64)
def upload_base64(request):
    body = _json_body(request)
    value = body.get("base64_data") if isinstance(body, dict) else None
    if not isinstance(value, str) or not value:
        raise ApiError(400, "Send the image as base64_data (a data: URI or bare base64).", "base64_data")
    data = decode_base64(value, "base64_data", allow_plain=True)
    return _file_answer(request, _store_file(request, _file_name(body.get("file_name")), data, "base64_data"))


@api_view(["POST"], envelope=FILES)
def upload_url(request):
    """Fetched while the client waits (its answer is the stored file), through the SSRF-safe
    client with a short deadline, no redirects and the upload size cap."""
    body = _json_body(request)
    url = body.get("file_url") if isinstance(body, dict) else None
    if not isinstance(url, str) or not url:
        raise ApiError(400, "Send the image's address as file_url.", "file_url")
    name = _file_name(body.get("file_name")) or url.split("?")[0].rsplit("/", 1)[-1][:255]
    try:
        with netguard.make_client(url_policy(), headers={"User-Agent": USER_AGENT}) as client:
            data, _ = netguard.fetch(client, url, url_policy(), max_bytes=options.MAX_REFERENCE_BYTES,
                                     deadline_seconds=URL_UPLOAD_DEADLINE, max_redirects=0)
    except netguard.UnsafeURL as e:
        raise ApiError(400, f"file_url was refused: {e.message}", "file_url") from None
    except netguard.FetchError as e:
        if e.code == "too_large":
            raise ApiError(413, f"The file at file_url is larger than {options.MAX_REFERENCE_BYTES // 2**20} MB.",
                           "file_url") from None
        raise ApiError(400, f"file_url could not be fetched: {e.message}", "file_url") from None
    return _file_answer(request, _store_file(request, name, data, "file_url"))


@api_view(["GET"], envelope=FILES)
def files_quota(request):
    used = ApiFile.objects.filter(team=request.team).count()
    data = {"user_group": "default", "used_files": used, "max_files": settings.API_FILE_QUOTA,
            "remain_files": max(settings.API_FILE_QUOTA - used, 0), "is_custom": False, "quota_reason": ""}
    return _ok({"success": True, "code": 200, "msg": "OK", "data": data})


def _positive(request, name, default, maximum):
    if name not in request.GET:
        return default
    value = request.GET[name]
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= maximum:
        raise ApiError(400, f"{name} must be a whole number from 1 to {maximum:,}.", name)
    return int(value)


@api_view(["GET"], envelope=FILES)
def files_list(request):
    page = _positive(request, "page", 1, LIST_PAGE_LAST)
    # EvoLink's own client sends pageSize; page_size is the studio's spelling. Both are checked; page_size wins.
    size = _positive(request, "pageSize", 20, LIST_PAGE_MAX)
    size = _positive(request, "page_size", size, LIST_PAGE_MAX)
    files = ApiFile.objects.filter(team=request.team)
    total = files.count()
    base = base_url(request)
    rows = [file_object(f, base) for f in files[(page - 1) * size: page * size]]
    data = {"files": rows, "total": total, "page": page, "page_size": size}
    return _ok({"success": True, "code": 200, "msg": "OK", "data": data})


@api_view(["DELETE"], envelope=FILES)
def file_delete(request, file_id):
    # An id no file can have (a NUL, which PostgreSQL cannot compare, or too long) is not looked up.
    fits = file_id.isprintable() and len(file_id) <= 40
    api_file = ApiFile.objects.filter(team=request.team, file_id=file_id).first() if fits else None
    if api_file is None:
        raise ApiError(404, "There is no file with this id (or it belongs to another team).", "file_id")
    name = api_file.file.name
    api_file.delete()
    transaction.on_commit(lambda: delete_stored_files([name]))
    return _ok({"success": True, "code": 200, "msg": "File deleted", "data": {"file_id": file_id}})
