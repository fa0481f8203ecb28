import os

from django.core.wsgi import get_wsgi_application

# Production unless a process says otherwise: settings.prod refuses to start without its secrets, so a
# deployment that forgets DJANGO_SETTINGS_MODULE stops, instead of serving with DEBUG on.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.prod")
application = get_wsgi_application()
