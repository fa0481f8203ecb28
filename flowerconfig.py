"""Flower's configuration: ``celery -A spot flower`` reads ``flowerconfig.py`` from its working
directory (the repository root, as in the Procfile), after the ``FLOWER_*`` environment variables and
before the command line. Names defined here that are Flower options set them; the rest is ignored.

- ``inspect_timeout``: the matchers run the solo pool and answer Flower's control messages (their
  active queues, which the Broker page lists) only between two drain slices, up to about 1.3 s apart
  (0.25 s of matching plus a 1 s blocking read when idle). Flower's default of 1 s missed them, and
  the Broker page then showed only ``default``. ``FLOWER_INSPECT_TIMEOUT`` (ms) still overrides it.
- Authentication outside development: unless ``DJANGO_SETTINGS_MODULE`` is ``settings.dev`` or
  ``settings.test``, Flower refuses to start without ``FLOWER_BASIC_AUTH`` (``user:password``, several
  separated by commas), which Flower itself reads from the environment.
"""

import os

inspect_timeout = float(os.environ.get("FLOWER_INSPECT_TIMEOUT", "5000"))

_DEVELOPMENT = {"settings.dev", "settings.test"}
_settings_module = os.environ.get("DJANGO_SETTINGS_MODULE", "settings.prod")  # the default of spot/celery.py
_credentials = [c for c in os.environ.get("FLOWER_BASIC_AUTH", "").split(",") if c.strip()]

if _settings_module not in _DEVELOPMENT:
    if not _credentials:
        raise SystemExit(
            f"flower: refusing to start without authentication under DJANGO_SETTINGS_MODULE={_settings_module}: "
            "set FLOWER_BASIC_AUTH=user:password (several separated by commas)"
        )
    if any(not user or not password for user, _, password in (c.partition(":") for c in _credentials)):
        raise SystemExit("flower: FLOWER_BASIC_AUTH must be user:password pairs separated by commas")
