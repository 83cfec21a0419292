"""The admin's "Usage and cost" page: the catalog per kind, its growth drawn as an SVG,
each store's monthly cost at its prices and the dual layout's saving."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from .exceptions import ConfigurationError, DualStorageError, safe_reason
from .usage import GROWTH_DAYS, growth_series, usage_report
from .usage_chart import bytes_chart


def usage_page(model_admin: Any, request: HttpRequest) -> HttpResponse:
    """Render the page; ``?scan=1`` also lists every bucket (a store failure is one
    error message and the catalog's figures; a misconfiguration, one message on the
    admin's index)."""
    scan = request.GET.get("scan") == "1"
    try:
        try:
            report = usage_report(scan=scan)
        except DualStorageError as exc:
            messages.error(request, f"Could not list the stores: {safe_reason(exc)}.")
            report = usage_report(scan=False)
    except ConfigurationError as exc:
        messages.error(request, f"Usage is unavailable: {safe_reason(exc)}.")
        return HttpResponseRedirect(reverse("admin:index"))
    series = growth_series(GROWTH_DAYS, now=report.generated_at)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": "Usage and cost",
        "report": report,
        "costs": list(report.stores.values()),
        "chart": bytes_chart({kind: points for kind, points in series.items()}),
    }
    return TemplateResponse(request, "dual_storage_app/admin/usage.html", context)
