"""The home page: what this deployment is and where to go from here."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

LINKS = [
    ("/notes/", "Notes", "a JSON list of notes, stored in this project's PostgreSQL"),
    ("/readyz", "Readiness", "whether the database and the cache answer"),
    ("/healthz", "Liveness", "plain ok while the process serves"),
    ("/admin/", "Admin", "Django's admin site"),
]


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html", {"project": settings.PROJECT_NAME, "links": LINKS})
