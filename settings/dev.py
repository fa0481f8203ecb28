from settings.base import *  # noqa: F403

DEBUG = True
INSTALLED_APPS = [*INSTALLED_APPS, "bench"]  # manage.py loadtest; never in production
