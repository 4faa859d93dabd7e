"""Probes and metrics for load balancers, orchestrators and Prometheus (not OCPI)."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import health, metrics


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up (no dependency checked: a restart would not help them)."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Database, broker, beat and a worker: 200 when all are fine, else 503 naming the failed."""
    checks = health.readiness()
    failed = [c.name for c in checks if not c.ok]
    body = {
        "status": "fail" if failed else "ok",
        "failed": failed,
        "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in checks},
    }
    return JsonResponse(body, status=503 if failed else 200)


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text format, for ``Authorization: Bearer <OCPI_METRICS_TOKEN>`` only."""
    expected = settings.OCPI_METRICS_TOKEN
    if not expected:
        return HttpResponse(
            "Metrics are off: set OCPI_METRICS_TOKEN.\n", status=404, content_type="text/plain"
        )
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        presented.strip().encode(), expected.encode()
    ):
        response = HttpResponse(
            "Authorization: Bearer <OCPI_METRICS_TOKEN> required.\n",
            status=401,
            content_type="text/plain",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = metrics.exposition()
    return HttpResponse(body, content_type=content_type)


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for it on every page: no content, instead of a 404 in the log."""
    response = HttpResponse(status=204)
    response["Cache-Control"] = "max-age=86400"
    return response
