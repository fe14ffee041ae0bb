"""``manage.py load_mind``: import MIND-format news and behaviors files."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml_app.services.mind import MindSummary, load_mind


class Command(BaseCommand):
    """Import MIND-format files (Microsoft News Dataset) idempotently.

    Each category becomes a top-level category and each subcategory a child of it (slug
    ``<category>-<subcategory>``); one provider per subcategory
    (``mind:provider:<category>:<subcategory>``); each news row an item
    (``mind:news:<id>``); ids referenced by behaviors without a news row become unavailable
    items of the provider ``mind:provider:unknown``; each user a Django user
    ``mind_<UserId>`` with an unusable password. Events (source ``mind``): one
    ``impression`` per shown candidate and one ``click`` per clicked one, at the impression
    time; history entries become ``click`` events one second before the user's first
    impression in the file. Running it again creates nothing new.
    """

    help = (
        "Import MIND-format files: news.tsv (news_id, category, subcategory, title, abstract, "
        "url, title_entities, abstract_entities) and behaviors.tsv (impression_id, user_id, "
        "time, history, impressions), tab-separated, no header. Creates categories, one "
        "provider per subcategory, items, users mind_<UserId> and impression/click events "
        "(source 'mind'). MIND has no publication times: an item's published_at is the "
        "earliest time an event refers to it (its earliest impression; for ids seen only in "
        "a history, the history click one second before that user's first impression), and "
        "news never referenced gets the earliest impression time of the file. Malformed "
        "lines are skipped and reported on stderr with file and line number. Idempotent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--news", required=True, type=Path, help="Path to news.tsv.")
        parser.add_argument("--behaviors", required=True, type=Path, help="Path to behaviors.tsv.")
        parser.add_argument(
            "--limit",
            type=int,
            default=None,
            help="Read at most this many lines of each file (for a quick try).",
        )

    def handle(
        self, *args: object, news: Path, behaviors: Path, limit: int | None, **options: object
    ) -> None:
        for label, path in (("news", news), ("behaviors", behaviors)):
            if not path.is_file():
                raise CommandError(f"The {label} file does not exist or is not a file: {path}")
        if limit is not None and limit < 1:
            raise CommandError("--limit must be a positive number of lines.")
        try:
            summary = load_mind(
                news_path=news,
                behaviors_path=behaviors,
                limit=limit,
                report=lambda line: self.stderr.write(line, style_func=self.style.WARNING),
                progress=sys.stderr,
            )
        except OSError as error:  # unreadable file (permissions, I/O error)
            raise CommandError(f"Cannot read the MIND files: {error}") from error
        for line in render(summary):
            self.stdout.write(line)


def render(summary: MindSummary) -> list[str]:
    """The summary the command prints, one line per kind of thing."""
    s = summary
    return [
        f"MIND import finished in {s.seconds:.1f}s",
        f"  news rows:      {s.news_read} read, {s.news_imported} imported, "
        f"{s.news_skipped} skipped",
        f"  behaviors:      {s.behavior_lines} lines read, {s.impressions} impressions, "
        f"{s.behaviors_skipped} skipped",
        f"  categories:     {s.categories} ({s.categories_created} created)",
        f"  providers:      {s.providers} ({s.providers_created} created)",
        f"  items:          {s.items_text + s.items_id_only} ({s.items_text} with text, "
        f"{s.items_id_only} id-only); created {s.items_created} ({s.items_text_created} with "
        f"text, {s.items_id_only_created} id-only)",
        f"  users:          {s.users} ({s.users_created} created)",
        f"  events:         {s.impression_events} impression, {s.click_events} click, "
        f"{s.history_click_events} history click",
        f"  events written: {s.events_created} created, {s.events_existing} already present",
        f"  lines skipped:  {s.lines_skipped}",
    ]
