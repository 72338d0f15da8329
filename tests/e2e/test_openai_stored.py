"""Stored completions through the openai SDK: store, list with metadata filters and
auto-pagination, retrieve, update, delete, messages; scoped to the key's owner; from both faces."""

from __future__ import annotations

import uuid

import openai
import pytest

from tests.e2e.helpers import Frontend
from tests.e2e.openai_helpers import NO_EOT, OFFLINE, client

pytestmark = pytest.mark.e2e

HI = [{"role": "user", "content": "Sing of the harvest."}]


def tag() -> str:
    return uuid.uuid4().hex[:12]


def store(sdk: openai.OpenAI, metadata: dict[str, str], **extra) -> openai.types.chat.ChatCompletion:
    return sdk.chat.completions.create(
        model=OFFLINE, messages=HI, max_tokens=4, logit_bias=NO_EOT, store=True, metadata=metadata, **extra
    )


def test_a_stored_completion_can_be_retrieved_as_it_was_answered(spool):
    sdk = client(spool)
    run = tag()
    done = store(sdk, {"run": run}, seed=4, logprobs=True)
    got = sdk.chat.completions.retrieve(done.id)
    assert got.model_dump(exclude={"metadata"}) == done.model_dump(exclude={"metadata"})
    assert got.metadata == {"run": run}


def test_a_streamed_completion_is_stored_under_the_id_its_chunks_carried(spool, pg):
    from jobs.models import StoredCompletion

    sdk = client(spool)
    run = tag()
    chunks = list(
        sdk.chat.completions.create(
            model=OFFLINE,
            messages=HI,
            max_tokens=5,
            logit_bias=NO_EOT,
            store=True,
            metadata={"run": run},
            stream=True,
        )
    )
    got = sdk.chat.completions.retrieve(chunks[0].id)
    assert got.choices[0].message.content == "".join(
        c.choices[0].delta.content or "" for c in chunks if c.choices
    )
    row = StoredCompletion.objects.get(id=chunks[0].id)
    assert row.request["messages"] == HI and row.request["params"]["max_tokens"] == 5
    assert row.usage == {"input_tokens": row.usage["input_tokens"], "output_tokens": 5}
    assert row.face == "openai" and row.status == "succeeded" and row.finish_reason == "length"
    assert row.first_token_ms is not None and row.duration_ms >= row.first_token_ms


def test_a_completion_without_store_is_never_retrievable(spool):
    sdk = client(spool)
    run = tag()
    done = sdk.chat.completions.create(model=OFFLINE, messages=HI, max_tokens=2, user=run)
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.retrieve(done.id)


def test_metadata_without_store_is_refused_as_openai_refuses_it(spool):
    with pytest.raises(openai.BadRequestError) as caught:
        client(spool).chat.completions.create(model=OFFLINE, messages=HI, max_tokens=2, metadata={"k": "v"})
    assert (caught.value.param, caught.value.code) == ("metadata", "invalid_value")
    assert caught.value.body["message"] == "The 'metadata' parameter is only allowed when 'store' is enabled."


def test_listing_filters_by_metadata_and_auto_paginates_in_creation_order(spool):
    sdk = client(spool)
    run = tag()
    made = [
        store(sdk, {"run": run, "i": str(i), "parity": "even" if i % 2 == 0 else "odd"}).id for i in range(5)
    ]
    store(sdk, {"run": tag()})  # another run, never in this listing

    first = sdk.chat.completions.list(metadata={"run": run}, limit=2)
    assert [c.id for c in first.data] == made[:2] and first.has_more
    assert [c.id for c in first] == made  # iterating the page fetches the rest by `after`
    newest_first = sdk.chat.completions.list(metadata={"run": run}, limit=2, order="desc")
    assert [c.id for c in newest_first] == made[::-1]
    evens = sdk.chat.completions.list(metadata={"run": run, "parity": "even"})
    assert [c.id for c in evens] == [made[0], made[2], made[4]]
    assert [c.id for c in sdk.chat.completions.list(metadata={"run": run, "parity": "even", "i": "2"})] == [
        made[2]
    ]


def test_the_list_shape_is_openais(spool):
    sdk = client(spool)
    run = tag()
    made = [store(sdk, {"run": run}).id for _ in range(3)]
    page = sdk.get(
        "/chat/completions", cast_to=object, options={"params": {"metadata[run]": run, "limit": 2}}
    )
    assert set(page) == {"object", "data", "first_id", "last_id", "has_more"}
    assert page["object"] == "list" and page["has_more"] is True
    assert (page["first_id"], page["last_id"]) == (made[0], made[1])
    assert page["data"][0]["object"] == "chat.completion" and page["data"][0]["metadata"] == {"run": run}


def test_listing_filters_by_model(spool, pg):
    from tests.e2e.helpers import make_engine

    other = "spool-offline-copy"
    make_engine(other, tokens_per_second=0)
    sdk = client(spool)
    run = tag()
    mine = sdk.chat.completions.create(
        model=other, messages=HI, max_tokens=2, store=True, metadata={"run": run}
    ).id
    store(sdk, {"run": run})
    assert [c.id for c in sdk.chat.completions.list(metadata={"run": run}, model=other)] == [mine]


def test_update_replaces_the_metadata_the_filters_see(spool):
    sdk = client(spool)
    run, moved = tag(), tag()
    done = store(sdk, {"run": run, "stage": "draft"})
    updated = sdk.chat.completions.update(done.id, metadata={"run": moved, "stage": "final"})
    assert updated.id == done.id and updated.metadata == {"run": moved, "stage": "final"}
    assert list(sdk.chat.completions.list(metadata={"run": run})) == []
    assert [c.id for c in sdk.chat.completions.list(metadata={"run": moved, "stage": "final"})] == [done.id]
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.update(done.id, metadata={"k": "v" * 513})
    assert (caught.value.param, caught.value.code) == ("metadata.k", "string_above_max_length")


def test_delete_removes_a_stored_completion(spool):
    sdk = client(spool)
    run = tag()
    done = store(sdk, {"run": run})
    deleted = sdk.chat.completions.delete(done.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (done.id, "chat.completion.deleted", True)
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.retrieve(done.id)
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.delete(done.id)
    assert list(sdk.chat.completions.list(metadata={"run": run})) == []


def test_messages_lists_the_request_messages_with_pagination(spool):
    sdk = client(spool)
    conversation = [
        {"role": "system", "content": "You are a bard."},
        {"role": "user", "content": "Sing."},
        {"role": "assistant", "content": "La."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "Again, "}, {"type": "text", "text": "louder."}],
        },
    ]
    done = sdk.chat.completions.create(
        model=OFFLINE, messages=conversation, max_tokens=2, store=True, metadata={"run": tag()}
    )
    first = sdk.chat.completions.messages.list(done.id, limit=3)
    assert len(first.data) == 3 and first.has_more
    every = list(first)
    assert [m.id for m in every] == [f"{done.id}-{i}" for i in range(4)]
    assert [(m.role, m.content) for m in every] == [
        ("system", "You are a bard."),
        ("user", "Sing."),
        ("assistant", "La."),
        ("user", "Again, louder."),
    ]
    assert [p.text for p in every[3].content_parts] == ["Again, ", "louder."]
    newest = sdk.chat.completions.messages.list(done.id, order="desc", limit=1)
    assert [m.id for m in newest] == [f"{done.id}-{i}" for i in (3, 2, 1, 0)]


def test_another_owner_sees_nothing_of_my_stored_completions(spool):
    alice, bob = client(spool), client(spool, spool.bob)
    run = tag()
    done = store(alice, {"run": run})
    assert list(bob.chat.completions.list(metadata={"run": run})) == []
    for call in (
        lambda: bob.chat.completions.retrieve(done.id),
        lambda: bob.chat.completions.update(done.id, metadata={"run": "stolen"}),
        lambda: bob.chat.completions.delete(done.id),
        lambda: bob.chat.completions.messages.list(done.id),
        lambda: bob.post(f"/chat/completions/{done.id}/cancel", cast_to=object, body={}),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert alice.chat.completions.retrieve(done.id).metadata == {"run": run}


def test_the_semoss_face_stores_into_the_same_store(spool):
    run = tag()
    frontend = Frontend(spool, spool.alice)
    job_id = frontend.submit(
        spool.engine_id,
        "Sing of the harvest.",
        {"max_completion_tokens": 3, "store": True, "metadata": {"run": run}},
    )
    frontend.stream(job_id)
    listed = list(client(spool).chat.completions.list(metadata={"run": run}))
    assert [c.id for c in listed] == ["chatcmpl-" + uuid.UUID(job_id).hex]
    assert listed[0].model == OFFLINE and listed[0].choices[0].message.content

    unstored = frontend.submit(
        spool.engine_id, "Sing.", {"max_completion_tokens": 2, "metadata": {"run": run}}
    )
    frontend.stream(unstored)
    assert len(list(client(spool).chat.completions.list(metadata={"run": run}))) == 1
