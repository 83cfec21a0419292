"""URLs for the stream-through download and the presigned dataset redirect.

Include them in a project: ``path("storage/", include("dual_storage_app.urls"))``.
"""

from __future__ import annotations

from django.urls import URLPattern

app_name = "dual_storage_app"
urlpatterns: list[URLPattern] = []
