from django.core.management.base import BaseCommand

from gallery import pruning


class Command(BaseCommand):
    help = "Deletes rows that grow with use and are no longer needed (workers also do this hourly)."

    def handle(self, *args, **options):
        for what, count in pruning.prune().items():
            self.stdout.write(f"{what.replace('_', ' ')}: {count} deleted")
