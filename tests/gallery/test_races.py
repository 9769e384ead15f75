"""Races that only a real database with real concurrency shows: each test runs its contenders in
threads with their own connections, started together at a barrier, many times over. They mean
most on PostgreSQL (CI runs the suite there too); SQLite serialises writers and passes anyway.

Re-run: DATABASE_URL=postgres://postgres@127.0.0.1:5432/test make test  (or pytest this file)
"""

import threading

import pytest
from django.db import connections
from django.test import Client

from gallery.models import Instance, LastOwnerError, Membership, Role, Team, User
from tests.factories import PASSWORD, make_user
from tests.gallery.test_teams import invite_link

pytestmark = pytest.mark.django_db(transaction=True)
ROUNDS = 8


def race(*contenders):
    """Runs each callable in its own thread, all released at once; returns their results (or the
    exception each raised)."""
    barrier = threading.Barrier(len(contenders))
    results = [None] * len(contenders)

    def run(index, function):
        try:
            barrier.wait()
            results[index] = function()
        except Exception as e:  # kept to be asserted on
            results[index] = e
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, f)) for i, f in enumerate(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_two_owners_demoting_each_other_at_once_leave_exactly_one_owner():
    for round_ in range(ROUNDS):
        first, second = make_user(f"ada{round_}"), make_user(f"bea{round_}")
        team = Team.create_with_owner(f"Duo {round_}", first)
        Membership.objects.create(team=team, user=second, role=Role.OWNER)
        memberships = list(Membership.objects.filter(team=team))

        results = race(*[lambda m=m: m.change_role(Role.MEMBER) for m in memberships])

        assert Membership.objects.owners().filter(team=team).count() == 1, f"round {round_}: {results}"
        assert sum(isinstance(r, LastOwnerError) for r in results) == 1


def test_two_owners_removing_each_other_at_once_leave_exactly_one_owner():
    for round_ in range(ROUNDS):
        first, second = make_user(f"cid{round_}"), make_user(f"dee{round_}")
        team = Team.create_with_owner(f"Pair {round_}", first)
        Membership.objects.create(team=team, user=second, role=Role.OWNER)
        memberships = list(Membership.objects.filter(team=team))

        race(*[lambda m=m: m.remove() for m in memberships])

        assert Membership.objects.owners().filter(team=team).count() == 1


def test_two_first_visits_at_once_create_one_team_and_one_owner():
    def onboard(name):
        return lambda: Client().post(
            "/welcome/",
            {"team_name": f"Team {name}", "name": name, "email": f"{name}@example.com",
             "password1": PASSWORD, "password2": PASSWORD},
        ).status_code

    for round_ in range(ROUNDS):
        results = race(onboard(f"first{round_}"), onboard(f"second{round_}"))

        assert results == [302, 302]
        assert User.objects.count() == 1 and User.objects.filter(is_superuser=True).count() == 1
        assert Team.objects.count() == 1 and Instance.objects.count() == 1
        User.objects.all().delete()
        Team.objects.all().delete()
        Instance.objects.all().delete()


def test_two_people_joining_at_once_with_the_same_name_before_the_at_get_distinct_usernames(alice, team):
    _, first_link = invite_link(team, alice, email="sam@one.example")
    _, second_link = invite_link(team, alice, email="sam@two.example")

    def join(link, email):
        return lambda: Client().post(
            link, {"name": "Sam", "email": email, "password1": PASSWORD, "password2": PASSWORD}
        ).status_code

    results = race(join(first_link, "sam@one.example"), join(second_link, "sam@two.example"))

    assert results == [302, 302]
    sams = User.objects.filter(first_name="Sam")
    assert sams.count() == 2 and len({u.username for u in sams}) == 2
    assert team.memberships.filter(user__in=sams).count() == 2


def test_two_sign_ups_with_one_address_at_once_make_one_account_and_a_clear_message(alice, team):
    _, first_link = invite_link(team, alice)
    _, second_link = invite_link(team, alice)

    def join(link):
        def post():
            response = Client().post(
                link, {"name": "Kim", "email": "kim@example.com", "password1": PASSWORD, "password2": PASSWORD}
            )
            return response.status_code, "already exists" in response.content.decode()
        return post

    results = race(join(first_link), join(second_link))

    assert sorted(results) == [(302, False), (400, True)]
    assert User.objects.filter(email="kim@example.com").count() == 1
