# Issue 21: sliding-window rate limits, and a random public id per image for the Team API's signed
# result links (which named the row id before). Existing images get theirs here.

import uuid

from django.db import migrations, models

BATCH = 1000


def give_existing_images_a_public_id(apps, schema_editor):
    GalleryImage = apps.get_model("gallery", "GalleryImage")
    while pks := list(GalleryImage.objects.filter(public_id=None).values_list("pk", flat=True)[:BATCH]):
        GalleryImage.objects.bulk_update(
            [GalleryImage(pk=pk, public_id=uuid.uuid4()) for pk in pks], ["public_id"], batch_size=BATCH
        )


class Migration(migrations.Migration):

    dependencies = [
        ('gallery', '0013_charge_outlives_team'),
    ]

    operations = [
        migrations.CreateModel(
            name='RateWindow',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('key', models.CharField(max_length=200, unique=True)),
                ('slot', models.BigIntegerField(default=0, help_text='The newest sub-window counted, in sub-windows since 1970.')),
                ('counts', models.TextField(blank=True, help_text='Hits per sub-window, oldest first, ending at `slot`.')),
                ('version', models.PositiveBigIntegerField(default=0)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
        ),
        migrations.AddField(
            model_name='galleryimage',
            name='public_id',
            field=models.UUIDField(editable=False, null=True),
        ),
        migrations.RunPython(give_existing_images_a_public_id, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name='galleryimage',
            name='public_id',
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
    ]
