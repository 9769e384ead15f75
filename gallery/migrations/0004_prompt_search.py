# The gallery's full-text search on PostgreSQL (ImageQuerySet.matching). The expression must be
# exactly the one Django writes for SearchVector("task__prompt", config="english"), or the
# planner will not use the index. Other databases search with a contains match and get nothing.

from django.db import migrations

INDEX = "task_prompt_search"
CREATE = (
    f"CREATE INDEX IF NOT EXISTS {INDEX} ON gallery_generationtask "
    "USING gin (to_tsvector('english'::regconfig, COALESCE(prompt, '')))"
)


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("gallery", "0003_providers")]

    operations = [migrations.RunPython(create_index, drop_index)]
