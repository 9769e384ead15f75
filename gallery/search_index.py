"""Keeps SQLite's FTS5 index of prompts (gallery_image_search, made by migration 0007) in step
with the images, by triggers. They exist only between migrations: dropped before each migrate and
created again after it, with the index refilled, because on SQLite Django alters a table by
rebuilding it, and a trigger that names the table being rebuilt makes the rebuild fail."""

from gallery.models.images import SEARCH_TABLE

TRIGGERS = {
    "gallery_image_search_insert": f"""AFTER INSERT ON gallery_galleryimage BEGIN
        INSERT INTO {SEARCH_TABLE}(rowid, prompt) SELECT NEW.id, prompt FROM gallery_generationtask WHERE id = NEW.task_id;
    END""",
    "gallery_image_search_delete": f"""AFTER DELETE ON gallery_galleryimage BEGIN
        DELETE FROM {SEARCH_TABLE} WHERE rowid = OLD.id;
    END""",
    "gallery_image_search_move": f"""AFTER UPDATE OF id, task_id ON gallery_galleryimage BEGIN
        DELETE FROM {SEARCH_TABLE} WHERE rowid = OLD.id;
        INSERT INTO {SEARCH_TABLE}(rowid, prompt) SELECT NEW.id, prompt FROM gallery_generationtask WHERE id = NEW.task_id;
    END""",
    "gallery_image_search_prompt": f"""AFTER UPDATE OF prompt ON gallery_generationtask BEGIN
        UPDATE {SEARCH_TABLE} SET prompt = NEW.prompt
        WHERE rowid IN (SELECT id FROM gallery_galleryimage WHERE task_id = NEW.id);
    END""",
}


def _has_index(cursor):
    cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = %s", [SEARCH_TABLE])
    return cursor.fetchone() is not None


def drop_triggers(using, **kwargs):
    """pre_migrate: no trigger may name a table a migration is about to rebuild."""
    from django.db import connections

    connection = connections[using]
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        for name in TRIGGERS:
            cursor.execute(f"DROP TRIGGER IF EXISTS {name}")


def create_triggers(using, **kwargs):
    """post_migrate (also after a test's flush): the triggers back, and the index refilled from
    the images, so nothing written while they were gone is missing from searches."""
    from django.db import connections, transaction

    connection = connections[using]
    if connection.vendor != "sqlite":
        return
    with transaction.atomic(using=using), connection.cursor() as cursor:
        if not _has_index(cursor):
            return  # migrated back before 0007
        for name, body in TRIGGERS.items():
            cursor.execute(f"CREATE TRIGGER IF NOT EXISTS {name} {body}")
        cursor.execute(f"DELETE FROM {SEARCH_TABLE}")
        cursor.execute(
            f"INSERT INTO {SEARCH_TABLE}(rowid, prompt) SELECT i.id, t.prompt "
            "FROM gallery_galleryimage i JOIN gallery_generationtask t ON t.id = i.task_id"
        )
