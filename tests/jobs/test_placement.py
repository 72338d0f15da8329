"""What a request's placement becomes: its class under the key's cap, its deadlines."""

from __future__ import annotations

import pytest

from jobs.placement import (
    BATCH,
    DEFAULT,
    INTERACTIVE,
    SERVICE_TIERS,
    InvalidPlacement,
    Placement,
    check_seconds,
    priority_class,
    queue_options,
)


@pytest.mark.parametrize("value", ["0", -1, 1e308, float("inf"), float("nan"), "soon", True, 31 * 86400])
def test_a_timeout_that_is_not_a_sane_number_of_seconds_is_refused(value):
    with pytest.raises(InvalidPlacement) as refused:
        check_seconds(value, "queue_timeout")
    assert refused.value.param == "queue_timeout"


def test_a_timeout_as_a_header_carries_it_is_read():
    assert check_seconds("2.5", "X-Spool-Queue-Timeout") == 2.5
    assert check_seconds(None, "queue_timeout") is None


def test_the_class_is_what_was_asked_else_the_faces_default_never_above_the_keys_cap():
    assert priority_class(Placement(waiting=True)) == INTERACTIVE
    assert priority_class(Placement(waiting=False)) == DEFAULT
    assert priority_class(Placement(priority=INTERACTIVE, cap=BATCH)) == BATCH
    assert priority_class(Placement(priority=BATCH, cap=INTERACTIVE)) == BATCH


def test_the_options_keep_the_class_asked_for_when_the_cap_lowered_it_and_the_deadline(spool_env, settings):
    spool_env(SPOOL_QUEUE_TIMEOUT_SECONDS=60)
    options = queue_options(Placement(priority=INTERACTIVE, cap=DEFAULT, run_timeout=10**6), now=1000.0)
    assert options["priority"] == DEFAULT and options["priority_asked"] == INTERACTIVE
    assert options["queue_deadline"] == 1060.0
    assert options["run_timeout"] == settings.SPOOL.worker.job_max_seconds  # never past the global limit


def test_openai_service_tiers_map_onto_classes():
    assert SERVICE_TIERS["priority"] == SERVICE_TIERS["fast"] == INTERACTIVE
    assert SERVICE_TIERS["flex"] == BATCH and SERVICE_TIERS["auto"] is None
