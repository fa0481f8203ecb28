from settings.base import *  # noqa: F403
from settings.env import env_bool

DEBUG = env_bool("DJANGO_DEBUG", True)  # on unless said otherwise (the HTTP benchmark turns it off)
INSTALLED_APPS = [*INSTALLED_APPS, "bench"]  # manage.py loadtest; never in production
