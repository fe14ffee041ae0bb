"""Root URLs: the versioned API, its schema and docs, admin, health and metrics."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from inbo.accounts import views as accounts
from inbo.accounts.admin_login import admin_login

api_v1 = [
    path("auth/register/", accounts.RegisterView.as_view(), name="auth-register"),
    path("auth/token/", accounts.TokenView.as_view(), name="auth-token"),
    path("auth/logout/", accounts.LogoutView.as_view(), name="auth-logout"),
    path("auth/logout-all/", accounts.LogoutAllView.as_view(), name="auth-logout-all"),
    path("me/", accounts.MeView.as_view(), name="me"),
    path("", include("reading_app.api.urls")),
    path("", include("experience_app.api.urls")),
    path("", include("search_app.api.urls")),
    path("", include("experiments_app.api.urls")),
    path("", include("rules_app.api.urls")),
]
if settings.INBO_BENCH_ENDPOINTS:
    # Benchmark-only endpoints (`make bench`, docs/BENCHMARKS.md); never routed otherwise.
    api_v1.append(path("_bench/", include("inbo.api.bench")))

urlpatterns = [
    path("api/v1/", include((api_v1, "v1"), namespace="v1")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # Ahead of the admin's own login route: the same view, throttled per address.
    path("admin/login/", admin_login, name="admin-login-throttled"),
    path("admin/", admin.site.urls),
    path("", include("monitoring.urls")),  # /health/live/, /health/ready/, /metrics
]

handler400 = "inbo.api.errors.json_bad_request"
handler403 = "inbo.api.errors.json_permission_denied"
handler404 = "inbo.api.errors.json_not_found"
handler500 = "inbo.api.errors.json_server_error"
