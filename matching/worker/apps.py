from django.apps import AppConfig


class MatcherWorkerConfig(AppConfig):
    """The matcher worker as a Django app, so Celery's autodiscovery finds ``matching.worker.tasks``."""

    name = "matching.worker"
    label = "matching_worker"
