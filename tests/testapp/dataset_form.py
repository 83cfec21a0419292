"""A user's own form with a dataset, exactly as the README shows it, and its view (at
``/runs/new/``, included by ``tests/urls.py``). The browser tests send it a direct
upload of a file or of a folder, and, with JavaScript off, the file itself."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import URLPattern, path
from django.views.decorators.csrf import csrf_protect

from dual_storage_app.uploads.forms import DatasetUploadField, limit_uploads_to


class TrainingRunForm(forms.Form):
    name = forms.CharField()
    dataset = DatasetUploadField()  # direct upload; the ordinary file input without JS


@login_required(login_url="/admin/login/")
@csrf_protect  # sets the csrftoken cookie the upload API's POSTs need (no CSRF middleware)
def start_run(request: HttpRequest) -> HttpResponse:
    """The README's view; on success, JSON naming the run and its dataset's id."""
    form = TrainingRunForm(request.POST or None, request.FILES or None)
    limit_uploads_to(form, request.user)  # only this user's finished uploads
    if form.is_valid():
        dataset = form.cleaned_data["dataset"]  # a Dataset row either way
        dataset.save()  # stores a file that came through the form
        return JsonResponse({"run": form.cleaned_data["name"], "dataset": dataset.pk})
    return render(request, "testapp/start_run.html", {"form": form})


urlpatterns: list[URLPattern] = [path("", start_run, name="start-run")]
