import itertools

import pytest

from gallery.models import FINAL_STATES, GenerationTask, IllegalTransition, Status
from gallery.models.tasks import TRANSITIONS
from tests.factories import make_task

LEGAL = {(current, new) for current, targets in TRANSITIONS.items() for new in targets} | {
    (current, new)
    for current in Status
    if current not in FINAL_STATES
    for new in (Status.FAILED, Status.CANCELLED)
}
ALL_PAIRS = set(itertools.product(Status, Status))


def task_in(state, team, user):
    task = make_task(team, user)
    GenerationTask.objects.filter(pk=task.pk).update(status=state)
    task.refresh_from_db()
    return task


@pytest.mark.parametrize("current,new", sorted(LEGAL))
def test_it_allows_each_legal_move(current, new, team, alice):
    task = task_in(current, team, alice)
    assert task.move_to(new) is True
    task.refresh_from_db()
    assert task.status == new


@pytest.mark.parametrize("current,new", sorted(ALL_PAIRS - LEGAL))
def test_it_refuses_each_illegal_move(current, new, team, alice):
    task = task_in(current, team, alice)
    with pytest.raises(IllegalTransition):
        task.move_to(new)
    task.refresh_from_db()
    assert task.status == current


@pytest.mark.parametrize("final", sorted(FINAL_STATES))
def test_a_final_state_is_never_left(final, team, alice):
    task = task_in(final, team, alice)
    for new in Status:
        with pytest.raises(IllegalTransition):
            task.move_to(new)


def test_it_does_not_move_a_row_that_another_process_moved(team, alice):
    task = make_task(team, alice)
    GenerationTask.objects.filter(pk=task.pk).update(status=Status.CANCELLED)
    assert task.move_to(Status.SUBMITTED) is False
    task.refresh_from_db()
    assert task.status == Status.CANCELLED


def test_each_move_stamps_its_time(team, alice):
    task = make_task(team, alice)
    task.move_to(Status.SUBMITTED)
    task.move_to(Status.RUNNING)
    task.move_to(Status.STORING)
    task.move_to(Status.COMPLETED)
    task.refresh_from_db()
    assert task.created_at <= task.submitted_at <= task.running_at <= task.storing_at <= task.finished_at


def test_only_one_worker_holds_a_lease(team, alice):
    task = make_task(team, alice)
    other = GenerationTask.objects.get(pk=task.pk)
    assert task.take_lease() is True
    assert other.take_lease() is False
    task.release_lease()
    assert other.take_lease() is True


def test_an_expired_lease_can_be_taken(team, alice, settings):
    task = make_task(team, alice)
    settings.TASK_LEASE_SECONDS = -1  # the lease is already over when taken
    assert task.take_lease() is True
    assert GenerationTask.objects.get(pk=task.pk).take_lease() is True


def test_querysets_speak_the_business(team, other_team, alice, charlie):
    mine = make_task(team, alice)
    make_task(other_team, charlie)
    done = task_in(Status.COMPLETED, team, alice)
    assert set(GenerationTask.objects.for_team(team)) == {mine, done}
    assert list(GenerationTask.objects.for_team(team).unfinished()) == [mine]
    assert list(GenerationTask.objects.for_team(team).recent(1)) == [done]
