"""The short form of the fault drill (bench/drills.py): tasks against a fake upstream that answers
with faults, while worker processes are killed with SIGKILL at random moments and storage refuses
writes for a while. No timing is asserted; deadlines are generous for a loaded 2-core machine.
(The full form also restarts PostgreSQL; the test suite never does.)"""

from types import SimpleNamespace

import pytest

from bench.drills import Plan, check, drill, outcome
from tests.factories import make_task
from tests.workers import worker_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(params=["database", "redis"])
def queue(request):
    if request.param == "redis":
        return request.getfixturevalue("rq_queue").url
    return "database"


def test_a_short_fault_drill_loses_nothing_and_doubles_nothing(queue, team, alice, settings, tmp_path):
    env = worker_env(settings.MEDIA_ROOT, TASKS_BACKEND=queue)
    plan = Plan(tasks=12, kills=8, storage_fault_seconds=3, finish_timeout=300)

    result = drill(team, alice, plan, tmp_path, env)

    broken = [promise for promise, held in check(result) if not held]
    assert not broken, (broken, result)
    assert result["kills"] == 8
    assert result["statuses"].get("completed", 0) >= 10, result


def test_a_duplicate_is_matched_to_its_task_by_the_prompt_as_sent(team, alice):
    """The fake counts what it was sent: for n > 1 the prompt ends with "Generate n different
    images.", so a duplicate recorded on its task once looked unrecorded to the drill."""
    task = make_task(team, alice, prompt="Drill task 0: a lighthouse in a storm", n=2)
    assert task.sent_prompt != task.prompt
    task.uncertain_creates = 1
    task.save(update_fields=["uncertain_creates"])
    fake = SimpleNamespace(tasks={}, accepted={task.sent_prompt: 2}, files={})

    result = outcome([task.pk], fake)

    assert result["duplicate_submissions"] == 1 and result["duplicates_not_recorded"] == 0
