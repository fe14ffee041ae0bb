"""The report (experiments_app.services.report): SRM, CUPED, sequential looks, the daily
series; and where people read it: ``manage.py experiment_report``, the staff API endpoint
and the admin page with its SVG plot."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from experiments_app.models import Exposure
from experiments_app.plot import lift_svg
from experiments_app.services.report import experiment_report
from tests.experiments.test_metrics import NOW, START, running, world  # noqa: F401
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
User = get_user_model()
URL = "/api/v1/experiments/{}/report/"


def _bulk_exposed(experiment, counts: dict[str, int], *, at=START + timedelta(hours=1)):
    """``counts`` users per variant key, exposed at ``at``; returns their ids by variant."""
    variants = {v.key: v for v in experiment.variants.all()}
    out: dict[str, list[int]] = {}
    for key, n in counts.items():
        users = User.objects.bulk_create(
            User(username=f"{experiment.key}-{key}-{i}", email=f"{key}{i}@example.com")
            for i in range(n)
        )
        Exposure.objects.bulk_create(
            Exposure(experiment=experiment, variant=variants[key], user=u, exposed_at=at)
            for u in users
        )
        out[key] = [u.id for u in users]
    return out


def test_a_60_40_split_of_a_50_50_design_blocks_the_report():
    experiment = running("srm")
    _bulk_exposed(experiment, {"control": 600, "treat": 400})
    report = experiment_report(experiment, now=NOW)
    assert report["srm"]["blocking"] is True
    assert report["srm"]["p_value"] < 1e-6
    assert report["warnings"][0].startswith("Sample ratio mismatch")
    assert "Do not read the results" in report["warnings"][0]
    assert [v["users"] for v in report["variants"]] == [600, 400]


def test_a_sound_split_does_not_warn():
    experiment = running("sound")
    _bulk_exposed(experiment, {"control": 510, "treat": 490})
    report = experiment_report(experiment, now=NOW)
    assert report["srm"]["blocking"] is False
    assert report["warnings"] == []


def test_cuped_variance_reduction_on_a_count_metric(world):  # noqa: F811
    from experiments_app.services import analysis, metrics

    pop = metrics.population(world, now=NOW)
    data = metrics.metric_data(world, pop, ["reads_per_user"])["reads_per_user"]
    arms = [(v.id, v.key) for v in world.variants.order_by("-is_control", "id")]
    # Give the pre-period the same shape as the window: a perfect covariate.
    data.pre_num[:] = data.num.sum(axis=1)
    result = analysis.cuped(data, pop.variant_ids, arms)
    assert result is not None
    assert result["variance_reduction"] == pytest.approx(1.0)


def test_sequential_looks_one_per_day_and_the_series_for_the_plot(world):  # noqa: F811
    report = experiment_report(world, now=NOW)
    cmp = report["metrics"]["home_ctr"]["comparisons"][0]
    assert cmp["sequential"]["looks"] == 3  # started three days ago
    assert cmp["sequential"]["information_fraction"] == pytest.approx(3 / 14)
    assert cmp["sequential"]["bound"] > 3  # early looks need overwhelming evidence
    points = report["series"]["points"]
    assert report["series"]["metric"] == "home_ctr"
    assert [p["date"] for p in points] == [
        (START + timedelta(days=k)).date().isoformat() for k in (1, 2, 3)
    ]
    assert points[-1]["lift"] == pytest.approx(cmp["lift"])
    assert points[0]["bound"] > points[-1]["bound"]


def test_the_plot_escapes_text_and_draws_a_band():
    svg = lift_svg(
        [{"variant": "<script>", "date": "2024-05-01", "lift": 0.1, "ci_low": 0.0,
          "ci_high": 0.2}, {"variant": "<script>", "date": "2024-05-02", "lift": 0.05,
                            "ci_low": -0.02, "ci_high": 0.12}],
        title='a "title" & more',
    )  # fmt: skip
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "&amp; more" in svg
    assert "<polygon" in svg and "<polyline" in svg
    assert "No data yet." in lift_svg([])


# --- manage.py experiment_report ----------------------------------------------------------


def test_command_prints_tables_with_the_srm_warning_on_top():
    experiment = running("srm-cmd")
    _bulk_exposed(experiment, {"control": 600, "treat": 400})
    out = StringIO()
    call_command("experiment_report", "srm-cmd", stdout=out)
    text = out.getvalue()
    assert text.startswith("!! Sample ratio mismatch")
    assert "home_ctr (ratio; primary)" in text
    assert "control (control)" in text


def test_command_json_and_one_metric(world):  # noqa: F811
    out = StringIO()
    call_command("experiment_report", "exp", "--json", "--metric", "reads_per_user", stdout=out)
    report = json.loads(out.getvalue())
    assert list(report["metrics"]) == ["reads_per_user"]
    assert report["series"]["metric"] == "reads_per_user"


def test_command_unknown_key_is_an_error():
    with pytest.raises(CommandError, match="No experiment"):
        call_command("experiment_report", "nope")


# --- the staff API ------------------------------------------------------------------------


@pytest.fixture
def staff_client():
    client = APIClient()
    client.force_authenticate(UserFactory(is_staff=True))
    return client


def test_api_report_for_staff(staff_client, world):  # noqa: F811
    response = staff_client.get(URL.format("exp"))
    assert response.status_code == 200
    body = response.json()
    assert body["experiment"]["key"] == "exp"
    assert {"home_ctr", "dismiss_rate", "latency_p95"} <= set(body["metrics"])
    assert body["guardrails"][0]["status"] in {"ok", "breached"}


def test_api_one_metric(staff_client, world):  # noqa: F811
    response = staff_client.get(URL.format("exp"), {"metric": "mean_depth"})
    assert response.status_code == 200
    assert list(response.json()["metrics"]) == ["mean_depth"]


def test_api_unknown_metric_is_400_in_the_envelope(staff_client, world):  # noqa: F811
    response = staff_client.get(URL.format("exp"), {"metric": "ctr"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert "metric" in error["details"]


def test_api_unknown_key_is_404_in_the_envelope(staff_client):
    response = staff_client.get(URL.format("nope"))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_api_is_staff_only(auth_client, api_client, world):  # noqa: F811
    response = auth_client.get(URL.format("exp"))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert api_client.get(URL.format("exp")).status_code == 401


# --- the admin page -----------------------------------------------------------------------


@pytest.fixture
def admin_client_(client):
    admin = User.objects.create_superuser("boss", "boss@example.com", "correct-horse-battery")
    client.force_login(admin)
    return client


def test_admin_change_page_links_to_the_report(admin_client_, world):  # noqa: F811
    response = admin_client_.get(f"/admin/experiments_app/experiment/{world.pk}/change/")
    assert response.status_code == 200
    assert 'href="report/"' in response.content.decode()


def test_admin_report_page_renders_tables_and_the_plot(admin_client_, world):  # noqa: F811
    world.hypothesis = "<b>bold</b> claim"
    world.save(update_fields=["hypothesis"])
    response = admin_client_.get(f"/admin/experiments_app/experiment/{world.pk}/report/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<svg" in html and "<polyline" in html
    assert "&lt;b&gt;bold&lt;/b&gt; claim" in html
    assert "Guardrails" in html and "dismiss_rate" in html


def test_admin_report_page_ignores_an_unknown_metric(admin_client_, world):  # noqa: F811
    url = f"/admin/experiments_app/experiment/{world.pk}/report/?metric=%3Cx%3E"
    response = admin_client_.get(url, follow=True)
    assert response.status_code == 200
    assert "Unknown metric" in response.content.decode()


def test_admin_report_page_of_an_unknown_experiment_is_404(admin_client_):
    response = admin_client_.get("/admin/experiments_app/experiment/99999/report/")
    assert response.status_code == 404


def test_cuped_on_a_ratio_metric_keeps_the_estimate_and_narrows_the_interval():
    import numpy as np

    from experiments_app.services import analysis
    from experiments_app.services.metrics import MetricData

    rng = np.random.default_rng(7)
    n = 4000
    arm = np.repeat([1, 2], n // 2)
    activity = rng.gamma(2.0, 5.0, size=n)  # a heavy user stays heavy
    pre_den = rng.poisson(activity) + 1.0
    den = rng.poisson(activity) + 1.0
    taste = rng.beta(2, 18, size=n)  # each user's own click rate, in both periods
    pre_num = rng.binomial(pre_den.astype(int), taste).astype(float)
    num = rng.binomial(den.astype(int), np.where(arm == 2, taste * 1.1, taste)).astype(float)
    data = MetricData("home_ctr", "ratio", num[:, None], den[:, None], pre_num, pre_den)
    arms = [(1, "control"), (2, "treat")]
    plain = analysis.analyse(data, arm, arms)["comparisons"][0]
    adjusted = analysis.cuped(data, arm, arms)
    assert adjusted is not None
    assert adjusted["variance_reduction"] > 0.1
    cmp = adjusted["comparisons"][0]
    assert cmp["diff"] == pytest.approx(plain["diff"], abs=0.006)
    assert cmp["ci_high"] - cmp["ci_low"] < plain["ci_high"] - plain["ci_low"]


def test_a_draft_has_an_empty_report(staff_client):
    from experiments_app.services import lifecycle
    from experiments_app.services.validation import VariantSpec

    lifecycle.experiment_create(
        key="draft",
        hypothesis="Not yet.",
        layer_key="draft-layer",
        variants=[VariantSpec("control", 50, True), VariantSpec("treat", 50)],
        guardrails=["latency_p95"],
    )
    response = staff_client.get(URL.format("draft"))
    assert response.status_code == 200
    body = response.json()
    assert body["srm"] is None
    assert body["warnings"] == ["No exposed users yet."]
    assert body["metrics"]["home_ctr"]["variants"][0]["mean"] is None
    assert body["guardrails"][0]["enough_users"] is False


def test_users_in_a_variant_of_weight_zero_block_the_report(staff_client):
    experiment = running("zero", weights=(100, 0))
    _bulk_exposed(experiment, {"control": 50, "treat": 3})
    body = staff_client.get(URL.format("zero")).json()
    assert body["srm"] == {"statistic": None, "p_value": 0.0, "blocking": True}
    assert body["warnings"][0].startswith("Sample ratio mismatch")
