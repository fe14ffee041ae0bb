"""List the model registry's versions with their status and gate."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from experience_app import public as experience


class Command(BaseCommand):
    help = "List model versions (newest first): status, training window, gate, size."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--kind", choices=experience.ModelVersion.Kind.values)
        parser.add_argument("--limit", type=int, default=20)

    def handle(self, *args, **options) -> None:
        versions = experience.model_versions(options["kind"], limit=options["limit"])
        if not versions:
            self.stdout.write("No model versions yet (train_reranker, train_als).")
            return
        for v in versions:
            gate = v.gate or {}
            verdict = "passed" if gate.get("passed") else "failed" if gate else "-"
            self.stdout.write(
                f"{v.id:>5}  {v.label:<14} {v.status:<9} "
                f"{v.trained_from:%Y-%m-%d}..{v.trained_to:%Y-%m-%d}  "
                f"gate {verdict}: {gate.get('metric', '')} {gate.get('candidate', '')} vs "
                f"{gate.get('baseline', '')} ({gate.get('baseline_name', '')})  "
                f"{v.artifact_bytes} B  sha256 {v.artifact_sha256[:12]}"
            )
