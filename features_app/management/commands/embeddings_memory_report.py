"""``manage.py embeddings_memory_report``: bytes per 100k vectors, and encoding speed."""

from __future__ import annotations

import os

from django.core.management.base import BaseCommand, CommandError, CommandParser

from features_app import embeddings


def _mb(n: float) -> str:
    return f"{n / 1_000_000:,.1f} MB"


class Command(BaseCommand):
    """Measure what content embeddings cost in memory, in PostgreSQL and in CPU time."""

    help = (
        "Print the bytes of --items vectors held in a process (a float32 and a float16 "
        "matrix, measured on real arrays), the PostgreSQL bytes per ItemEmbedding row "
        "(pg_column_size, pg_total_relation_size over the rows that exist) and, with "
        "--throughput N, the items/s of encoding N synthetic title+summary texts at batch "
        "--batch-size with 1 torch thread and with every core."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--items", type=int, default=100_000)
        parser.add_argument("--throughput", type=int, default=0, help="Texts to encode (0).")
        parser.add_argument("--batch-size", type=int, default=64)

    def handle(self, *args, items: int, throughput: int, batch_size: int, **options) -> None:
        if items < 1 or throughput < 0 or batch_size < 1:
            raise CommandError("--items and --batch-size must be positive")
        out = self.stdout.write
        f = embeddings.memory_figures(items)
        out(f"Embeddings: {embeddings.MODEL_VERSION}, {f['dimensions']} dimensions")
        out(
            f"  in process, {items:,} items: float32 {_mb(f['float32_matrix_bytes'])} "
            f"({f['float32_matrix_bytes'] / items:,.0f} B/item), float16 "
            f"{_mb(f['float16_matrix_bytes'])} ({f['float16_matrix_bytes'] / items:,.0f} B/item)"
        )
        if f["pg_rows"]:
            per_row = f["pg_total_bytes_per_row"]
            out(
                f"  PostgreSQL, {f['pg_rows']:,} ItemEmbedding rows: row "
                f"{f['pg_avg_row_bytes']:,.0f} B (vector {f['pg_avg_vector_bytes']:,.0f} B), "
                f"table+indexes+TOAST {f['pg_total_relation_bytes']:,} B = {per_row:,.0f} B/row"
                f" -> {_mb(per_row * items)} per {items:,} items"
            )
        else:
            out("  PostgreSQL: no ItemEmbedding rows yet (run manage.py embed_items first)")
        if throughput:
            texts = embeddings.sample_texts(throughput)
            cores = os.cpu_count() or 1
            for threads in dict.fromkeys((1, cores)):
                rate, cpu_ms = embeddings.throughput(texts, threads=threads, batch_size=batch_size)
                out(
                    f"  encoding {throughput:,} title+summary texts, batch {batch_size}, "
                    f"{threads} thread(s): {rate:,.1f} items/s, {cpu_ms:,.1f} CPU ms/item"
                )
