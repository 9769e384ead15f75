# The gallery's prompt search finds other forms of a word on SQLite too: "lighthouses" finds "A
# lighthouse", "running" finds "a fox runs". The FTS5 index of 0007 is made again with the porter
# tokenizer (English stemming over unicode61) and refilled from the images. A search word is
# stemmed the same way and still matched as a prefix, so "lightho" (typed so far) finds it too.
#
# PostgreSQL already stems: ImageQuerySet.matching and the GIN index of 0004 use the 'english'
# configuration. Nothing changes there.
#
# The triggers that keep the index in step (gallery/search_index.py) are dropped before every
# migrate and created again after it, with the index refilled, so none names the old table here.

from django.db import migrations

TABLE = "gallery_image_search"
FILL = (
    f"INSERT INTO {TABLE}(rowid, prompt) "
    "SELECT i.id, t.prompt FROM gallery_galleryimage i JOIN gallery_generationtask t ON t.id = i.task_id"
)
TRIGGERS = ("prompt", "move", "delete", "insert")


def rebuild(tokenize):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "sqlite":
            return
        for name in TRIGGERS:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {TABLE}_{name}")
        schema_editor.execute(f"DROP TABLE IF EXISTS {TABLE}")
        # The prefix indexes make 2- and 3-letter prefixes one lookup (as in 0007).
        schema_editor.execute(
            f"CREATE VIRTUAL TABLE {TABLE} USING fts5(prompt, tokenize = '{tokenize}', prefix = '2 3')"
        )
        schema_editor.execute(FILL)

    return run


class Migration(migrations.Migration):
    dependencies = [("gallery", "0011_quality_and_image_team_index")]

    operations = [
        migrations.RunPython(
            rebuild("porter unicode61 remove_diacritics 2"),
            rebuild("unicode61 remove_diacritics 2"),
        )
    ]
