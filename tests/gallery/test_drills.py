"""The short form of the fault drill (bench/drills.py): tasks against a fake upstream that answers
with faults, while worker processes are killed with SIGKILL at random moments and storage refuses
writes for a while. No timing is asserted; deadlines are generous for a loaded 2-core machine.
(The full form also restarts PostgreSQL; the test suite never does.)"""

import pytest

from bench.drills import Plan, check, drill
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
