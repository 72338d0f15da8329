"""Full-text search of stored completions: the document Postgres keeps for each row, and the query.

Every row's `search` column holds the tsvector of what was said: the request's message texts and
the response's answers (never keys, roles or parameters). A trigger computes it on every INSERT and
on every UPDATE of `request` or `response`, so any writer (completion_store, the seeding COPY, a
test's create()) gets it, as a generated column would, without the table rewrite under an
exclusive lock that adding a generated column costs (docs/DASHBOARD.md measures it). A GIN index
serves the match; queries use websearch_to_tsquery: words, "quoted phrases", `or`, `-excluded`.

The text search configuration (language) is settings.SPOOL.database.search_config. Postgres
bakes it into the document function; `manage.py spool_search_index --rebuild` applies a change
(new function, then every row's vector again, in batches).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction
from django.db.models import BooleanField, F, FloatField, Func, QuerySet, TextField
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast

from jobs import tsquery

DOCUMENT = "spool_completion_document"
PAIRS = "spool_search_pairs"
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
    name = settings.SPOOL.database.search_config
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


# Adjacent pairs of a vector's lexemes ("daughter lord" where `daughter` stands at position p and
# `lord` at p + 1), read from the vector's own positions: exactly what a phrase's `<->` needs to be
# true, and what the word index cannot tell (it keeps no positions). A GIN index on it
# (storedcmpl_search_pairs, migration 0009) finds the rows where a phrase's words stand together
# and gives the planner a frequency for the pair; without it, the rows holding both words, anywhere
# (146,000 of 1,000,000 for "citizen good", which has no match), each had to be read and checked.
# It costs about 0.5 ms a row (COST says it is dear): paid on each write and by the index build,
# never by a query, which only reads the index (matching_by_pairs).
PAIRS_SQL = f"""
CREATE OR REPLACE FUNCTION {PAIRS}(v tsvector) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE COST 1000 AS $$
  WITH p AS (SELECT w.lexeme, u.pos FROM unnest(v) w, unnest(w.positions) AS u(pos))
  SELECT coalesce(array_agg(DISTINCT a.lexeme || ' ' || b.lexeme), '{{}}')
  FROM p a JOIN p b ON b.pos = a.pos + 1
$$;
"""
PAIRS_DROP_SQL = f"DROP FUNCTION IF EXISTS {PAIRS}(tsvector);"


class Pairs(Func):
    """spool_search_pairs(search): the expression storedcmpl_search_pairs indexes."""

    function = PAIRS
    output_field = ArrayField(TextField())


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


def matching_by_pairs(
    queryset: QuerySet, text: str, pairs: Sequence[str], *, whole: bool = False
) -> QuerySet:
    """`matching`, for the pairs index alone to find: the rows holding every one of `pairs`
    (exact, so the index's rows are not checked again and the costly function never runs at
    query time), each then checked against the query. The check is written as ts_match_vq(),
    which no index serves: with `@@` the planner may AND in the word index, whose phrase rows
    must be rechecked, and a recheck evaluates every condition of the bitmap, the function too.
    `whole`: the query is that one pair, which the index answers alone (no vector is read)."""
    rows = queryset.alias(search_pairs=Pairs(F("search"))).filter(search_pairs__contains=list(pairs))
    if whole:
        return rows
    return rows.filter(Func(F("search"), query(text), function="ts_match_vq", output_field=BooleanField()))


def phrase_pairs(text: str, using: str = "default") -> tuple[list[str], bool]:
    """The adjacent lexeme pairs every match of `text` holds (jobs/tsquery.py), as Postgres
    reads the query (stemming, stop words) in the configured language, and whether the query is
    just one such pair (a two-word phrase: its matches are exactly the rows holding the pair)."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT websearch_to_tsquery(%s::regconfig, %s)::text", [config(), text])
        printed = cursor.fetchone()[0]
    try:
        tree = tsquery.parse(printed)
    except ValueError:
        return [], False  # a shape this reader does not know: the word index alone, as before
    return sorted(tsquery.required_pairs(tree)), tsquery.is_one_pair(tree)


# -- a page of matches in date order, with no slow shape --------------------------------------------
#
# Postgres reads a page of matches newest (or oldest) first in one of two ways: walk the date index
# and check each row's vector until the page is full (cheap when matches are common: 'lord' fills
# 101 rows after ~330), or let the GIN index find every match and sort them (cheap when they are
# few). It chooses by its estimate of the matches, and for a phrase that estimate is the AND of
# its words: "daughter lord" is guessed at thousands of rows (each word is common) while it has
# none, so the walk never fills its page and reads all 1,000,000 rows (3.1-4.9 s; EXPLAIN: "Rows
# Removed by Filter: 1000000", 3 million buffers). An exclusion (`lord -lord`) or words that never
# share a row go wrong the same way. The word index keeps no positions, so neither the estimate nor
# the index can tell a phrase from its words anywhere in the row.
#
# So the estimate is checked: walk the first rows in the page's own order (filters and `after`
# included) and count matches among them, stopping at `wanted`. If they are there, the walk is known
# to fill the page within that window and is kept. If not, matches are rare where the page is
# read, and the indexes find all of them first (only bitmap scans allowed, whatever the estimate),
# for the page to be picked from their ids. For a phrase that is the pairs index (above): the rows
# where its words stand side by side, not every row holding both ("citizen good": 145,865 rows to
# read and check, 2-3 s, for no match). docs/DASHBOARD.md has the figures.

# The walk is trusted when it fills the page within this many rows of the table (in the page's
# order, whatever else filters them): 40-80 ms of walking at 1M rows, all the check costs when it
# fails. A page deeper than one match in a hundred rows of it goes the index's way.
WINDOW = 10_000
# More matches than this, rare near the page but plentiful further on (old words): their ids are
# not carried about; the walk reads on to them (cost proportional to the page's depth).
IDS_LIMIT = 50_000


def _window_edge(queryset: QuerySet, start: Any, walked: QuerySet | None) -> tuple[str, Any] | None:
    """The created_at lookup that keeps the first WINDOW rows of `walked` (the rows the date
    index the walk takes holds: the table's, or one owner's) in `queryset`'s order (date either
    way), from `start` (a cursor's created_at) on: counted on that index alone, whatever else
    `queryset` filters, so that the check's walk is bounded by rows passed, not by rows that pass
    its filters (10,100 rows with team=legal walked 397,000: 600 ms). None when the order is not
    by date, or fewer rows remain."""
    order = [str(f) for f in queryset.query.order_by] or list(queryset.model._meta.ordering)
    if not order or order[0].lstrip("-") != "created_at":
        return None
    descending = order[0].startswith("-")
    every = queryset.model._base_manager.using(queryset.db) if walked is None else walked
    rows = every.order_by(order[0])
    if start is not None:
        rows = rows.filter(**{"created_at__lte" if descending else "created_at__gte": start})
    edge = rows.values_list("created_at", flat=True)[WINDOW : WINDOW + 1].first()
    return None if edge is None else ("created_at__gte" if descending else "created_at__lte", edge)


def _walked_ids(queryset: QuerySet, text: str, wanted: int, start: Any, walked: QuerySet | None) -> list[str]:
    """The ids of the first `wanted` matches among the first WINDOW rows of `walked` in
    `queryset`'s order, in that order: fewer when the window holds fewer."""
    edge = _window_edge(queryset, start, walked)
    within = queryset.filter(**{edge[0]: edge[1]}) if edge else queryset
    return list(matching(within, text).values_list("pk", flat=True)[:wanted])


def _ids_by_index(queryset: QuerySet, text: str) -> list[str] | None:
    """The ids of every match, found through the GIN indexes; None past IDS_LIMIT."""
    pairs, whole = phrase_pairs(text, queryset.db)
    found = matching_by_pairs(queryset, text, pairs, whole=whole) if pairs else matching(queryset, text)
    hits = found.order_by().values_list("pk", flat=True)[: IDS_LIMIT + 1]
    sql, params = hits.query.sql_with_params()
    with transaction.atomic(using=queryset.db), connections[queryset.db].cursor() as cursor:
        # The planner's estimate is what is wrong here: it would scan the table expecting to
        # stop early. Bitmap scans only (the GIN index, ANDed with others) for this statement.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        # Bitmaps that stay exact: a lossy page is rechecked row by row, and the recheck runs the
        # pairs function (0.5 ms a row). ANDed with one owner's 227,000 rows, the default 4 MB
        # went lossy: 1.9 s for '"come shall"', 119 ms with this.
        cursor.execute("SET LOCAL work_mem = '32MB'")
        try:
            cursor.execute(sql, params)
            ids = [row[0] for row in cursor.fetchall()]
        finally:
            # Inside a caller's transaction SET LOCAL would outlive this block.
            cursor.execute("SET LOCAL enable_seqscan TO DEFAULT")
            cursor.execute("SET LOCAL enable_indexscan TO DEFAULT")
            cursor.execute("SET LOCAL work_mem TO DEFAULT")
    return ids if len(ids) <= IDS_LIMIT else None


def in_date_order(
    queryset: QuerySet, text: str, *, wanted: int, start: Any = None, walked: QuerySet | None = None
) -> QuerySet:
    """`matching`, for reading `wanted` rows in `queryset`'s order (a page and the row past it,
    or a bounded count), in a form whose plan stays fast when the planner misjudges how many
    rows match (above): the rows of ids found first. `start`: the created_at of the cursor
    `queryset` continues after, if any; `walked`: the rows the date index a walk takes holds
    (default: the table's). Runs two to four queries to find them."""
    ids: list[str] | None = _walked_ids(queryset, text, wanted, start, walked)
    if ids is not None and len(ids) < wanted:
        # The walk did not fill the page within its window: the index's way.
        ids = _ids_by_index(queryset, text)
    if ids is None:
        return matching(queryset, text)
    # The walk's ids are the first `wanted` matches in order; the index's are every match. Either
    # way the page is read from them by primary key. One array parameter, however many ids (an
    # IN list takes one parameter each, 65,535 at most).
    pk = queryset.model._meta.pk
    table = connections[queryset.db].ops.quote_name(queryset.model._meta.db_table)
    column = connections[queryset.db].ops.quote_name(pk.column)
    return queryset.filter(RawSQL(f"{table}.{column} = ANY(%s::text[])", [ids], output_field=BooleanField()))


def ranked(queryset: QuerySet, text: str) -> QuerySet:
    """`matching`, with each row's ts_rank_cd as `rank`: a float8, so that a rank read back (to
    continue a page after it) compares equal to itself; a float4 read as 0.1 would not."""
    rank = SearchRank(F("search"), query(text), cover_density=True)
    return matching(queryset, text).annotate(rank=Cast(rank, FloatField()))
