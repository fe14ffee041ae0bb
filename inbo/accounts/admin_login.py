"""The Django admin's login form, throttled per client address (THROTTLE_RATE_ADMIN_LOGIN).

Routed at ``/admin/login/`` ahead of the admin's own URLs. GETs and allowed POSTs go to the
admin's login view unchanged; a POST over the limit gets a 429 page in the admin's own look,
with ``Retry-After``. Like every throttle it fails open when the cache is down.
"""

from __future__ import annotations

import math

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect

from inbo.api.throttling import address_wait

SCOPE = "admin_login"

_TOO_MANY = engines["django"].from_string(
    """{% extends "admin/base_site.html" %}
{% block title %}Too many sign-in attempts | {{ site_title }}{% endblock %}
{% block nav-breadcrumbs %}{% endblock %}
{% block content %}
<p class="errornote">Too many sign-in attempts from your address.
Try again in {{ wait }} second{{ wait|pluralize }}.</p>
<p><a href="{{ request.get_full_path }}">Back to the sign-in form</a></p>
{% endblock %}"""
)


@never_cache
@csrf_protect
def admin_login(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        wait = address_wait(request, SCOPE)
        if wait is not None:
            seconds = math.ceil(wait)
            context = {**admin.site.each_context(request), "wait": seconds}
            response = HttpResponse(_TOO_MANY.render(context, request), status=429)
            response["Retry-After"] = str(seconds)
            return response
    return admin.site.login(request)
