"""Background jobs, through the tasks API: thin wrappers around the pipeline."""

from django_tasks import task

from gallery import pipeline, webhooks


@task()
def advance(task_id):
    pipeline.advance(task_id)


@task()
def deliver_callback(delivery_id):
    webhooks.deliver(delivery_id)
