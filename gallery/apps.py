from django.apps import AppConfig
from django.db.models.signals import post_migrate, pre_migrate


class GalleryConfig(AppConfig):
    name = "gallery"
    verbose_name = "Seedream Studio"

    def ready(self):
        from gallery import search_index

        pre_migrate.connect(search_index.drop_triggers, sender=self)
        post_migrate.connect(search_index.create_triggers, sender=self)
