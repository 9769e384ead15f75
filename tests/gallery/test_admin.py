import pytest
from django.contrib import admin

from gallery.models import (
    Charge,
    GalleryImage,
    GenerationTask,
    Invite,
    Membership,
    ReferenceImage,
    Team,
    User,
)
from tests.factories import make_reference, make_task, run_until_final

MODELS = [User, Team, Membership, Invite, GenerationTask, ReferenceImage, GalleryImage, Charge]


def test_every_model_is_in_the_admin():
    for model in MODELS:
        assert admin.site.is_registered(model), model


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_an_instance_operator_can_list_and_open_each_model(model, client, alice, team):
    alice.is_staff = alice.is_superuser = True
    alice.save()
    run_until_final(make_task(team, alice, references=[make_reference()]))
    Invite.create(team, alice)
    client.force_login(alice, backend="gallery.auth.EmailOrUsernameBackend")
    meta = model._meta
    assert client.get(f"/admin/{meta.app_label}/{meta.model_name}/").status_code == 200
    obj = model.objects.first()
    assert client.get(f"/admin/{meta.app_label}/{meta.model_name}/{obj.pk}/change/").status_code == 200


def test_a_team_member_cannot_reach_the_admin(client_bob):
    assert client_bob.get("/admin/").status_code == 302
