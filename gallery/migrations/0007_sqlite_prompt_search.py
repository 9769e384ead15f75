# The gallery's prompt search on SQLite (ImageQuerySet.matching): an FTS5 index of each image's
# prompt, keyed by the image's id, kept in step by triggers, so a search reads the index instead
# of scanning the team's images. PostgreSQL has its GIN index (0004); other databases get nothing.
#
# On SQLite, Django alters a table by rebuilding it, which drops its triggers: a later migration
# that alters gallery_galleryimage or gallery_generationtask must create these triggers again
# (tests/gallery/test_search.py fails if they are missing).

from django.db import migrations

CREATE = [
    # unicode61 folds case and removes diacritics; the prefix indexes make 2- and 3-letter
    # prefixes (what one has typed so far) one lookup instead of a walk over every longer word.
    (
        "CREATE VIRTUAL TABLE gallery_image_search USING fts5("
        "prompt, tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3')"
    ),
    (
        "INSERT INTO gallery_image_search(rowid, prompt) "
        "SELECT i.id, t.prompt FROM gallery_galleryimage i JOIN gallery_generationtask t ON t.id = i.task_id"
    ),
    """CREATE TRIGGER gallery_image_search_insert AFTER INSERT ON gallery_galleryimage BEGIN
        INSERT INTO gallery_image_search(rowid, prompt)
        SELECT NEW.id, prompt FROM gallery_generationtask WHERE id = NEW.task_id;
    END""",
    """CREATE TRIGGER gallery_image_search_delete AFTER DELETE ON gallery_galleryimage BEGIN
        DELETE FROM gallery_image_search WHERE rowid = OLD.id;
    END""",
    """CREATE TRIGGER gallery_image_search_move AFTER UPDATE OF id, task_id ON gallery_galleryimage
    BEGIN
        DELETE FROM gallery_image_search WHERE rowid = OLD.id;
        INSERT INTO gallery_image_search(rowid, prompt)
        SELECT NEW.id, prompt FROM gallery_generationtask WHERE id = NEW.task_id;
    END""",
    """CREATE TRIGGER gallery_image_search_prompt AFTER UPDATE OF prompt ON gallery_generationtask
    BEGIN
        UPDATE gallery_image_search SET prompt = NEW.prompt
        WHERE rowid IN (SELECT id FROM gallery_galleryimage WHERE task_id = NEW.id);
    END""",
]
DROP = [
    "DROP TRIGGER IF EXISTS gallery_image_search_prompt",
    "DROP TRIGGER IF EXISTS gallery_image_search_move",
    "DROP TRIGGER IF EXISTS gallery_image_search_delete",
    "DROP TRIGGER IF EXISTS gallery_image_search_insert",
    "DROP TABLE IF EXISTS gallery_image_search",
]


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for statement in CREATE:
            schema_editor.execute(statement)


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for statement in DROP:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("gallery", "0006_seedream_models")]

    operations = [migrations.RunPython(create_index, drop_index)]
