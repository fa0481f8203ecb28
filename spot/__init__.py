"""The Django project. Re-exports the Celery app so ``celery -A spot worker`` finds it."""

from spot.celery import app as celery_app

__all__ = ["celery_app"]
