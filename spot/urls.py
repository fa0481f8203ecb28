from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from spot import exporter, health

urlpatterns = [
    path("admin/", admin.site.urls),
    # The OpenAPI schema generated from the code, and Swagger UI over it from local static files
    # (drf-spectacular-sidecar); both public. Outside /api/v1/: they describe the API, they are not
    # part of it (no envelope). Before the API's routes, which may end in a catch-all.
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    # The old system's API, under its version prefix (docs/API.md); the unversioned /api/... routes
    # of earlier releases are gone (404 in the error envelope, spot.http).
    path("api/v1/", include("orders.urls")),
    # FR-RL-004; no authentication, so a prober needs no credentials.
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    # FR-OB-001: every gunicorn worker's metrics in one scrape (prometheus_client's multiprocess mode).
    path("metrics", exporter.metrics, name="metrics"),
]

# The admin's CSS under gunicorn in development (empty unless DEBUG; production serves static files).
urlpatterns += staticfiles_urlpatterns()
