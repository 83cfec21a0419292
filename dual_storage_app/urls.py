"""URLs for the stream-through download, the presigned dataset redirect and the JSON
views of browser uploads (:mod:`.uploads.views`).

Include them in a project: ``path("storage/", include("dual_storage_app.urls"))``.
"""

from __future__ import annotations

from django.urls import URLPattern, path

from . import views
from .uploads import views as uploads

app_name = "dual_storage_app"
urlpatterns: list[URLPattern] = [
    path("<str:kind>/<int:pk>/download/", views.artifact_download, name="artifact-download"),
    path("datasets/<int:pk>/link/", views.dataset_link, name="dataset-link"),
    path("datasets/<int:pk>/files/", views.dataset_files, name="dataset-files"),
    path("uploads/", uploads.start, name="upload-start"),
    path("uploads/folders/", uploads.start_folder, name="upload-start-folder"),
    path("uploads/<uuid:session_id>/", uploads.detail, name="upload-detail"),
    path("uploads/<uuid:session_id>/sign/", uploads.sign, name="upload-sign"),
    path("uploads/<uuid:session_id>/parts/", uploads.parts, name="upload-parts"),
    path("uploads/<uuid:session_id>/complete/", uploads.complete, name="upload-complete"),
    path("uploads/<uuid:session_id>/abort/", uploads.abort, name="upload-abort"),
]
