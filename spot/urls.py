from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import include, path

from spot import exporter, health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("orders.urls")),
    # FR-RL-004; no authentication, so a prober needs no credentials.
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    # FR-OB-001: every gunicorn worker's metrics in one scrape (prometheus_client's multiprocess mode).
    path("metrics", exporter.metrics, name="metrics"),
]

# The admin's CSS under gunicorn in development (empty unless DEBUG; production serves static files).
urlpatterns += staticfiles_urlpatterns()
