from django.apps import AppConfig


class MatchingConfig(AppConfig):
    """Registers the matcher's Celery tasks and management commands; it owns no models."""

    name = "matching"
