"""URLs for the stream-through download and the presigned dataset redirect.

Include them in a project: ``path("storage/", include("dual_storage_app.urls"))``.
"""

from __future__ import annotations

from django.urls import URLPattern, path

from . import views

app_name = "dual_storage_app"
urlpatterns: list[URLPattern] = [
    path("<str:kind>/<int:pk>/download/", views.artifact_download, name="artifact-download"),
    path("datasets/<int:pk>/link/", views.dataset_link, name="dataset-link"),
]
