"""``GET /api/v1/experiments/<key>/report/`` (staff only): the experiment's report
(``experiments_app.services.report``) as JSON. The serializers below are its exact shape."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from experiments_app.services import lifecycle
from experiments_app.services.report import REPORT_METRICS, experiment_report
from inbo.api.schema import error_responses
from inbo.replicas import lag_tolerant


class ReportParamsSerializer(serializers.Serializer):
    metric = serializers.ChoiceField(
        choices=REPORT_METRICS,
        required=False,
        help_text="Only this metric (and its daily series); default: every metric, the "
        "primary metric's series.",
    )


class _ExperimentInfo(serializers.Serializer):
    key = serializers.CharField()
    status = serializers.CharField()
    hypothesis = serializers.CharField()
    primary_metric = serializers.CharField()
    guardrails = serializers.ListField(child=serializers.CharField())
    started_at = serializers.DateTimeField(allow_null=True)
    stopped_at = serializers.DateTimeField(allow_null=True)
    stop_reason = serializers.CharField(allow_blank=True)
    planned_days = serializers.IntegerField(help_text="Horizon of the sequential boundary.")
    window_end = serializers.DateTimeField(help_text="min(now, stopped_at).")


class _Srm(serializers.Serializer):
    statistic = serializers.FloatField(
        allow_null=True, help_text="null: a variant of weight 0 has users."
    )
    p_value = serializers.FloatField()
    blocking = serializers.BooleanField(help_text="p < 0.001: do not read the results.")


class _VariantRow(serializers.Serializer):
    key = serializers.CharField()
    is_control = serializers.BooleanField()
    weight = serializers.IntegerField(help_text="Percent of the experiment's users.")
    users = serializers.IntegerField(help_text="Exposed users.")
    exposures = serializers.IntegerField(help_text="Home pages served under the variant.")


class _Summary(serializers.Serializer):
    variant = serializers.CharField()
    users = serializers.IntegerField()
    mean = serializers.FloatField(allow_null=True)
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)


class _Sequential(serializers.Serializer):
    looks = serializers.IntegerField()
    information_fraction = serializers.FloatField()
    z = serializers.FloatField()
    bound = serializers.FloatField()
    crossed = serializers.BooleanField()
    crossed_higher = serializers.BooleanField()
    crossed_lower = serializers.BooleanField()
    first_crossed_look = serializers.IntegerField(allow_null=True)


class _CupedComparison(serializers.Serializer):
    variant = serializers.CharField()
    diff = serializers.FloatField(allow_null=True)
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)
    lift = serializers.FloatField(allow_null=True)
    lift_ci_low = serializers.FloatField(allow_null=True)
    lift_ci_high = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True)
    z = serializers.FloatField(allow_null=True)
    significant = serializers.BooleanField()


class _Comparison(_CupedComparison):
    sequential = _Sequential(allow_null=True)


class _Cuped(serializers.Serializer):
    theta = serializers.FloatField()
    variance_reduction = serializers.FloatField()
    comparisons = _CupedComparison(many=True)


class _MetricBlock(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["ratio", "count", "mean", "p95"])
    roles = serializers.ListField(child=serializers.ChoiceField(["primary", "guardrail"]))
    variants = _Summary(many=True)
    comparisons = _Comparison(many=True)
    cuped = _Cuped(allow_null=True)


class _Guardrail(serializers.Serializer):
    metric = serializers.CharField()
    variant = serializers.CharField()
    status = serializers.ChoiceField(choices=["ok", "breached"])
    harmful = serializers.ChoiceField(choices=["higher", "lower"])
    enough_users = serializers.BooleanField()
    detail = serializers.CharField()


class _SeriesPoint(serializers.Serializer):
    variant = serializers.CharField()
    date = serializers.DateField()
    lift = serializers.FloatField(allow_null=True)
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)
    z = serializers.FloatField(allow_null=True)
    bound = serializers.FloatField()


class _Series(serializers.Serializer):
    metric = serializers.CharField()
    points = _SeriesPoint(many=True)


class ExperimentReportSerializer(serializers.Serializer):
    experiment = _ExperimentInfo()
    generated_at = serializers.DateTimeField()
    warnings = serializers.ListField(
        child=serializers.CharField(), help_text="The SRM warning first when it blocks."
    )
    srm = _Srm(allow_null=True)
    variants = _VariantRow(many=True)
    metrics = serializers.DictField(child=_MetricBlock(), help_text="By metric key.")
    guardrails = _Guardrail(many=True)
    series = _Series()


class ExperimentReportView(APIView):
    permission_classes = [permissions.IsAdminUser]

    @extend_schema(
        summary="An experiment's report (staff only)",
        description="Per variant: users, the metrics' means with 95% intervals; against "
        "control: absolute and relative lift with intervals, p-values, the CUPED-adjusted "
        "estimate and the variance it removed, the sequential (Lan-DeMets O'Brien-Fleming, "
        "one look per day) boundary; the sample-ratio check (a blocking warning when p < "
        "0.001), the guardrails, and the primary metric's cumulative lift per day. "
        'docs/EXPERIMENTS.md "Reading a report".',
        parameters=[
            OpenApiParameter(
                "key",
                str,
                OpenApiParameter.PATH,
                description="The experiment's key.",
                pattern="^[-a-zA-Z0-9_]+$",
            ),
            ReportParamsSerializer,
        ],
        responses={200: ExperimentReportSerializer, **error_responses(400, 401, 403, 404)},
        tags=["experiments"],
    )
    @lag_tolerant  # figures of days past: a replica may answer
    def get(self, request: Request, key: str) -> Response:
        params = ReportParamsSerializer(data=request.query_params.dict())
        params.is_valid(raise_exception=True)
        experiment = lifecycle.experiment_get(key)
        report = experiment_report(experiment, metric=params.validated_data.get("metric"))
        return Response(ExperimentReportSerializer(report).data)
