from django.apps import AppConfig


class BenchConfig(AppConfig):
    """The benchmark side: ``manage.py loadtest``. Installed by the development and test settings only;
    no product module imports ``bench``."""

    name = "bench"
