"""Team API keys (SPEC §5): shown once, stored as a hash and a lookup prefix, named, revocable,
with last-used time; the API page lets owners and admins manage them and members look."""

from datetime import timedelta

from django.utils import timezone

from gallery.models import ApiKey, GenerationTask, Role
from tests.factories import make_user
from tests.factories import make_task
from tests.gallery.api_kit import ApiClient, assert_error, make_key

BODY = {"prompt": "A lighthouse at dusk", "size": "1:1", "quality": "1K"}


def test_a_key_is_stored_only_as_its_hash_and_prefix(team, alice):
    key, raw, secret = make_key(team, alice)
    assert raw.startswith("sk-studio-") and len(raw) > 50 and secret.startswith("whsec_")
    row = ApiKey.objects.filter(pk=key.pk).values().get()
    assert raw not in str(row) and secret not in str(row)
    assert raw.startswith(key.prefix) and len(key.prefix) < len(raw) - 40


def test_keys_authenticate_their_team_and_record_last_use(team, alice):
    key, raw, _ = make_key(team, alice)
    assert key.last_used_at is None
    assert ApiClient(raw).get("/v1/credits").status_code == 200
    key.refresh_from_db()
    assert key.last_used_at and timezone.now() - key.last_used_at < timedelta(seconds=5)


def test_missing_wrong_and_revoked_keys_are_401(team, alice):
    key, raw, _ = make_key(team, alice)
    assert_error(ApiClient("").get("/v1/credits"), 401, None, "Bearer")
    assert_error(ApiClient("sk-evo-abc").get("/v1/credits"), 401, None, "not a studio key")
    assert_error(ApiClient(raw[:-1] + ("a" if raw[-1] != "a" else "b")).get("/v1/credits"), 401, None, "not valid")
    assert_error(ApiClient(key.prefix + "x" * 48).get("/v1/credits"), 401, None, "not valid")
    client = ApiClient(raw)
    client.client.defaults["HTTP_AUTHORIZATION"] = f"Basic {raw}"
    assert_error(client.client.get("/v1/credits"), 401)
    key.revoke()
    error = assert_error(ApiClient(raw).post("/v1/images/generations", BODY), 401, None, "revoked")
    assert error["type"] == "authentication_error" and GenerationTask.objects.count() == 0


def test_a_session_is_no_substitute_for_a_key(client_alice):
    assert_error(client_alice.get("/v1/credits"), 401)
    assert_error(client_alice.post("/v1/images/generations", BODY, content_type="application/json"), 401)


def test_a_key_of_another_team_sees_only_its_own_team(team, alice, other_team, charlie):
    task = make_task(team, alice)
    rival = ApiClient(make_key(other_team, charlie)[1])
    assert_error(rival.get(f"/v1/tasks/{task.pk}"), 404)
    made = rival.post("/v1/images/generations", BODY).json()
    assert GenerationTask.objects.get(pk=made["id"]).team == other_team


def test_tasks_show_their_keys_name_in_history(team, alice, client_alice):
    raw = make_key(team, alice, "Catalogue batch")[1]
    task_id = ApiClient(raw).post("/v1/images/generations", BODY).json()["id"]
    page = client_alice.get("/").content.decode()
    assert "via API key “Catalogue batch”" in page
    assert "Catalogue batch" in client_alice.get(f"/tasks/{task_id}/").content.decode()


def test_an_owner_creates_a_key_sees_it_once_and_it_works(client_alice, team):
    response = client_alice.post("/api/keys/", {"name": "Nightly"})
    assert response.status_code == 302
    page = client_alice.get("/api/").content.decode()
    key = ApiKey.objects.get(team=team)
    raw = page.split('id="new-key">', 1)[1].split("<", 1)[0]
    assert raw.startswith(key.prefix) and "whsec_" in page
    assert "curl http://testserver/v1/images/generations" in page and raw in page.split('id="first-curl"', 1)[1]
    assert raw not in client_alice.get("/api/").content.decode()  # shown once
    assert ApiClient(raw).post("/v1/images/generations", BODY).status_code == 200
    assert key.created_by.username == "alice"


def test_an_admin_may_manage_keys_and_a_member_only_looks(client, team, alice, bob):
    dana = make_user("dana")
    team.memberships.create(user=dana, role=Role.ADMIN)
    key = make_key(team, alice, "Alice key")[0]
    client.force_login(bob, backend="gallery.auth.EmailOrUsernameBackend")
    page = client.get("/api/").content.decode()
    assert "Alice key" in page and key.prefix in page and "Create key" not in page and "Revoke" not in page
    assert client.post("/api/keys/", {"name": "Mine"}).status_code == 403
    assert client.post(f"/api/keys/{key.pk}/revoke/").status_code == 403
    assert client.post(f"/api/keys/{key.pk}/rotate/").status_code == 403
    client.force_login(dana, backend="gallery.auth.EmailOrUsernameBackend")
    assert client.post(f"/api/keys/{key.pk}/revoke/").status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None and ApiKey.objects.count() == 1


def test_another_teams_keys_are_404_on_the_page(client_charlie, team, alice):
    key = make_key(team, alice)[0]
    assert key.prefix not in client_charlie.get("/api/").content.decode()
    assert client_charlie.post(f"/api/keys/{key.pk}/revoke/").status_code == 404
    assert client_charlie.post(f"/api/keys/{key.pk}/rotate/").status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None


def test_a_key_name_must_be_one_line(client_alice):
    response = client_alice.post("/api/keys/", {"name": "two\nlines"})
    assert response.status_code == 400 and "one line" in response.content.decode()
    assert client_alice.post("/api/keys/", {"name": "  "}).status_code == 400
    assert ApiKey.objects.count() == 0


def test_rotating_shows_a_new_signing_secret_once(client_alice, team, alice):
    key, _, old = make_key(team, alice)
    assert client_alice.post(f"/api/keys/{key.pk}/rotate/").status_code == 302
    page = client_alice.get("/api/").content.decode()
    key.refresh_from_db()
    assert key.signing_secret() in page and old != key.signing_secret()
    assert key.signing_secret() not in client_alice.get("/api/").content.decode()
