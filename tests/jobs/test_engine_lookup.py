"""engine_lookup, which every job create calls: an active engine by id or by name, as the
model has it; nothing for an inactive one, or a name Postgres cannot hold."""

from __future__ import annotations

import pytest

from jobs import services
from jobs.models import Engine
from jobs.selectors import engine_lookup

pytestmark = pytest.mark.django_db


def test_it_finds_an_active_engine_by_name_or_by_id_whole():
    made = services.engine_upsert(name="looked-up", kind="openai", config={"model": "m"}, secret="s3")
    for ref in ("looked-up", str(made.pk)):
        found = engine_lookup(ref)
        assert found is not None and found.pk == made.pk
        assert (found.name, found.kind, found.config, found.secret) == (
            "looked-up",
            "openai",
            {"model": "m"},
            "s3",
        )
        assert found.is_limited is False and found.created_at == made.created_at


@pytest.mark.parametrize("ref", ["nobody", "00000000-0000-0000-0000-000000000000", "a\x00b", "\ud800"])
def test_it_finds_nothing_for_an_unknown_or_unstorable_name(ref):
    assert engine_lookup(ref) is None


def test_it_finds_no_inactive_engine():
    made = services.engine_upsert(name="asleep", kind="openai", config={})
    Engine.objects.filter(pk=made.pk).update(is_active=False)
    assert engine_lookup("asleep") is None and engine_lookup(str(made.pk)) is None
