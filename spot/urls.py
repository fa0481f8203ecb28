from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("orders.urls")),
    path("", include("django_prometheus.urls")),
]

# The admin's CSS under gunicorn in development (empty unless DEBUG; production serves static files).
urlpatterns += staticfiles_urlpatterns()
