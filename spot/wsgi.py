import os

from django.core.wsgi import get_wsgi_application

from spot.http import guard_charset

# Production unless a process says otherwise: settings.prod refuses to start without its secrets, so a
# deployment that forgets DJANGO_SETTINGS_MODULE stops, instead of serving with DEBUG on.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.prod")
# Behind a charset check: Django decodes the query string with the charset a request names while it
# builds the request, before any middleware, and a codec such as rot13 would raise there (spot.http).
application = guard_charset(get_wsgi_application())
