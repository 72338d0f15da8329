"""Full-text search of stored completions: the document Postgres keeps for each row, and the query.

Every row's `search` column holds the tsvector of what was said: the request's message texts and
the response's answers (never keys, roles or parameters). A trigger computes it on every INSERT and
on every UPDATE of `request` or `response`, so any writer (completion_store, the seeding COPY, a
test's create()) gets it, as a generated column would, without the table rewrite under an
exclusive lock that adding a generated column costs (docs/DASHBOARD.md measures it). A GIN index
serves the match; queries use websearch_to_tsquery: words, "quoted phrases", `or`, `-excluded`.

The text search configuration (language) is SPOOL["SEARCH_CONFIG"]. Postgres bakes it into the
document function; `manage.py spool_search_index --rebuild` applies a change (new function, then
every row's vector again, in batches).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.models import F, FloatField, QuerySet
from django.db.models.functions import Cast

DOCUMENT = "spool_completion_document"
TRIGGER_FUNCTION = "spool_completion_search"
TRIGGER = "storedcmpl_search"
TABLE = "jobs_storedcompletion"
# Rows per backfill UPDATE: each batch is its own short transaction, locking only its rows.
BATCH = 2000

# What was said: message contents given as strings, the text parts of contents given as parts,
# and every choice's answer. jsonb_to_tsvector leaves a gap between two strings, so a phrase never
# matches across two messages.
_STRINGS = '$.messages[*].content ? (@.type() == "string")'
_PARTS = '$.messages[*].content[*] ? (@.type == "text").text'
_ANSWERS = "$.choices[*].message.content"
_NAME = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$")


def config() -> str:
    """The text search configuration (pg_ts_config name) searches and documents use."""
    name = settings.SPOOL["SEARCH_CONFIG"]
    if not _NAME.match(name):
        raise ImproperlyConfigured(f"SPOOL_SEARCH_CONFIG must name a text search configuration, got {name!r}")
    return name


def document_sql(name: str) -> str:
    """The IMMUTABLE function from (request, response) to the row's tsvector, in `name`'s language."""
    return f"""
CREATE OR REPLACE FUNCTION {DOCUMENT}(request jsonb, response jsonb) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT jsonb_to_tsvector(
    '{name}'::regconfig,
    jsonb_path_query_array(request, '{_STRINGS}')
      || jsonb_path_query_array(request, '{_PARTS}')
      || jsonb_path_query_array(response, '{_ANSWERS}'),
    '"string"')
$$;
"""


TRIGGER_SQL = f"""
CREATE OR REPLACE FUNCTION {TRIGGER_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.search := {DOCUMENT}(NEW.request, NEW.response);
  RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS {TRIGGER} ON {TABLE};
CREATE TRIGGER {TRIGGER} BEFORE INSERT OR UPDATE OF request, response ON {TABLE}
  FOR EACH ROW EXECUTE FUNCTION {TRIGGER_FUNCTION}();
"""

DROP_SQL = f"""
DROP TRIGGER IF EXISTS {TRIGGER} ON {TABLE};
DROP FUNCTION IF EXISTS {TRIGGER_FUNCTION}();
DROP FUNCTION IF EXISTS {DOCUMENT}(jsonb, jsonb);
"""


def install(using: str = "default") -> None:
    """(Re)create the document function in the configured language, and the trigger."""
    with connections[using].cursor() as cursor:
        cursor.execute(document_sql(config()))
        cursor.execute(TRIGGER_SQL)


def backfill(
    *,
    rebuild: bool = False,
    batch: int | None = None,
    using: str = "default",
    progress: Callable[[int], None] | None = None,
) -> int:
    """Compute the vector of rows that have none (every row with `rebuild`), walking the primary
    key in batches, each committed on its own: writers wait at most one batch for a row lock.
    Returns the number of rows updated."""
    done, last = 0, ""
    only_missing = "" if rebuild else "AND search IS NULL"
    while True:
        # In autocommit (a non-atomic migration, the command) each batch commits on its own.
        with connections[using].cursor() as cursor:
            # Keyset walk on the primary key; the UPDATE itself only touches the batch's rows.
            cursor.execute(
                f"""
                WITH batch AS (SELECT id FROM {TABLE} WHERE id > %s ORDER BY id LIMIT %s),
                updated AS (
                    UPDATE {TABLE} t SET search = {DOCUMENT}(t.request, t.response)
                    FROM batch WHERE t.id = batch.id {only_missing} RETURNING 1
                )
                SELECT (SELECT max(id) FROM batch), (SELECT count(*) FROM updated)
                """,
                [last, batch or BATCH],
            )
            last, updated = cursor.fetchone()
        if last is None:
            return done
        done += updated
        if progress is not None:
            progress(done)


def query(text: str) -> SearchQuery:
    """websearch_to_tsquery in the configured language: words, "phrases", or, -exclusion."""
    return SearchQuery(text, search_type="websearch", config=config())


def matching(queryset: QuerySet, text: str) -> QuerySet:
    """The rows of `queryset` whose messages or answers match `text` (`search @@ query`, which
    the GIN index serves)."""
    return queryset.filter(search=query(text))


def ranked(queryset: QuerySet, text: str) -> QuerySet:
    """`matching`, with each row's ts_rank_cd as `rank`: a float8, so that a rank read back (to
    continue a page after it) compares equal to itself; a float4 read as 0.1 would not."""
    rank = SearchRank(F("search"), query(text), cover_density=True)
    return matching(queryset, text).annotate(rank=Cast(rank, FloatField()))
