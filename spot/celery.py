"""The Celery app ``spot``: configuration from Django settings (``CELERY_*``), tasks from the apps."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")

app = Celery("spot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
