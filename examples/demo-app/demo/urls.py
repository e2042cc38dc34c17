"""URLs. /healthz, /readyz and /metrics are served by demo.middleware.ProbeMiddleware."""

from django.contrib import admin
from django.urls import path

from demo.views import home
from notes import views

urlpatterns = [
    path("", home, name="home"),
    path("admin/", admin.site.urls),
    path("notes/", views.notes, name="notes"),
    path("cache/<str:key>", views.cache_entry, name="cache"),
]
