from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("storage/", include("dual_storage_app.urls")),
    path("runs/new/", include("tests.testapp.dataset_form")),
]
