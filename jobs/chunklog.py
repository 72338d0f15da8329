"""The per-job chunk log in Redis: a list of JSON chunks, a wake-up channel, handout cursors.

Keys (prefix from settings.SPOOL.redis.prefix). The {<id>} hash tag puts every key and the
channel of one job in one hash slot, so on a Redis Cluster a job lives on one shard and its
scripts touch one node (no CROSSSLOT):
  <p>:job:{<id>}:chunks       list of canonical chunks; a chunk's sequence number is its index
  <p>:job:{<id>}:text         choice 0's content so far (the SEMOSS /engine/partial poll reads it)
  <p>:job:{<id>}:handed:<who> how many chunks (or text bytes) a stateful poll has handed out
  <p>:job:{<id>}:cancel       set when someone asked to cancel; the writer sees it on its next append
  <p>:job:{<id>}:alive        the running worker's heartbeat; expires when the worker is gone
  <p>:job:{<id>}:meta         what a read of a live job needs (below)
  <p>:wake:{<id>}             sharded pub/sub channel (SPUBLISH) published after every append
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from django.conf import settings
from redis.exceptions import NoScriptError

from engine.types import CONTENT, TERMINAL_TYPES, ChunkDict
from jobs.redis_clients import async_redis, is_cluster, sync_redis
from jobs.types import LiveMeta

if TYPE_CHECKING:
    from jobs.limits import RequestCount


def _prefix() -> str:
    return settings.SPOOL.redis.prefix


def _ttl() -> int:
    return settings.SPOOL.redis.chunk_log_ttl_seconds


def chunks_key(job_id: str) -> str:
    return f"{_prefix()}:job:{{{job_id}}}:chunks"


def text_key(job_id: str) -> str:
    return f"{_prefix()}:job:{{{job_id}}}:text"


def handed_key(job_id: str, reader: str) -> str:
    return f"{_prefix()}:job:{{{job_id}}}:handed:{reader}"


def cancel_key(job_id: str) -> str:
    return f"{_prefix()}:job:{{{job_id}}}:cancel"


def alive_key(job_id: str) -> str:
    return f"{_prefix()}:job:{{{job_id}}}:alive"


def wake_channel(job_id: str) -> str:
    return f"{_prefix()}:wake:{{{job_id}}}"


def is_terminal(chunk: ChunkDict) -> bool:
    return chunk["type"] in TERMINAL_TYPES


def encode(chunk: ChunkDict | LiveMeta) -> bytes:
    # orjson: compact UTF-8 like json.dumps(ensure_ascii=False, separators=(",", ":")), keys in
    # insertion order ("type" first, which the text-claim script relies on), at a fraction of the
    # CPU: encoding was 7% of a busy worker's samples with the json module.
    return orjson.dumps(chunk)


class Lua:
    """A script sent by its SHA1 (EVALSHA), not its text, on every call, and loaded again when
    Redis has forgotten it (after a restart). One command instead of a pipeline of several: the
    client packs and parses one, which is most of a round trip's CPU in Python."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def run(self, client: Any, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            client.script_load(self.source)
            return client.evalsha(self.sha, len(keys), *keys, *args)

    async def arun(self, client: Any, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await client.script_load(self.source)
            return await client.evalsha(self.sha, len(keys), *keys, *args)


# ---- writing (worker side) ---------------------------------------------------------------


# The runner refreshes its heartbeat at least this often; the key lives for
# settings.SPOOL.worker.heartbeat_ttl_seconds, so a key that expired means the worker is gone.
HEARTBEAT_SECONDS = 1.0


class Appended(NamedTuple):
    cancelled: bool  # someone asked to cancel: the worker learns it without a round trip of its own
    length: int  # the log's length after the append (-1 when nothing was appended)


# Appends to the logs of one or many jobs, each with its heartbeat, and returns each job's log
# length and cancel flag: the worker's whole batch is one command on a single Redis (per job
# entry, a pipeline cost the worker ~16-19 µs of CPU more in redis-py: bench/append_calls.py).
# On a cluster the jobs' keys lie in different slots, so there each call carries one job.
# KEYS, five per job: chunks, text, alive, cancel, and the wake-up channel (not a key, but
# declared with them so that on a cluster the call is routed by, and may SPUBLISH to, the job's
# slot). ARGV: log TTL, heartbeat TTL, then per job: its new text of choice 0, the length its log
# must have (-1: any), whether to wake its readers ('1', or '0' for a job nobody streams: a
# Batch API line), the number of chunks, the chunks. A log of another length lost chunks
# (Redis restarted empty): nothing is appended and its length comes back, so the writer puts
# the whole log back instead. Appended there, the chunks would sit at the wrong sequence numbers
# until then, and a reader woken by this append would read them there. RPUSH in slices: Lua's
# unpack() has a stack limit, and a batch held back while Redis was away can be long.
# The wake-up carries the chunks it announces (see carried_chunks): `<start>:[<chunk>,...]`,
# or only '1' past CARRIED_MAX_BYTES, where a page is large enough that one read of the log per
# page costs little per chunk.
CARRIED_MAX_BYTES = 8192
_APPEND = Lua(
    f"local MAX = {CARRIED_MAX_BYTES}\n"
    + """
local function carried(start, first, last)
  local size = 0
  for i = first, last do
    size = size + #ARGV[i]
    if size > MAX then
      return '1'
    end
  end
  return start .. ':[' .. table.concat(ARGV, ',', first, last) .. ']'
end
local ttl, beat = ARGV[1], ARGV[2]
local replies = {}
local at = 3
for k = 1, #KEYS, 5 do
  local text, expected, wake = ARGV[at], tonumber(ARGV[at + 1]), ARGV[at + 2]
  local count = tonumber(ARGV[at + 3])
  local first, last = at + 4, at + 3 + count
  at = last + 1
  local length = -1
  if count > 0 then
    local found = redis.call('LLEN', KEYS[k])
    if expected >= 0 and found ~= expected then
      length = found
    else
      for slice = first, last, 1000 do
        length = redis.call('RPUSH', KEYS[k], unpack(ARGV, slice, math.min(slice + 999, last)))
      end
      redis.call('EXPIRE', KEYS[k], ttl)
      if #text > 0 then
        redis.call('APPEND', KEYS[k + 1], text)
        redis.call('EXPIRE', KEYS[k + 1], ttl)
      end
      if wake == '1' then
        redis.call('SPUBLISH', KEYS[k + 4], carried(length - count, first, last))
      end
    end
  end
  redis.call('SET', KEYS[k + 2], '1', 'EX', beat)
  replies[#replies + 1] = length
  replies[#replies + 1] = redis.call('EXISTS', KEYS[k + 3])
end
return replies
"""
)

# Replaces a job's log (and its text when ARGV[2] is not empty) and wakes its readers, in one
# step on the job's one node: the worker's rewrite after Redis lost a log, and the web side's
# end of a job that never reached a worker (ARGV[3] = "append": keep what is there).
# KEYS: chunks, text, wake-up channel. ARGV: log TTL, text, mode, then the chunks.
_PUT = Lua("""
if ARGV[3] ~= 'append' then
  redis.call('DEL', KEYS[1], KEYS[2])
end
for first = 4, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[1], unpack(ARGV, first, math.min(first + 999, #ARGV)))
end
if #ARGV > 3 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
if #ARGV[2] > 0 then
  redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[1])
end
redis.call('SPUBLISH', KEYS[3], '1')
return 1
""")


def _content_text(chunks: Sequence[ChunkDict]) -> str:
    return "".join(c["data"]["content"] for c in chunks if c["type"] == CONTENT and not c.get("choice"))


@functools.lru_cache(maxsize=4096)
def _append_keys(prefix: str, job_id: str) -> tuple[str, ...]:
    # Built once per job and prefix (the prefix is part of the cache key, so a changed setting
    # is seen): the worker appends for each job many times a second, and each key built afresh
    # read Django's settings again, which was half of the arguments' cost.
    return chunks_key(job_id), text_key(job_id), alive_key(job_id), cancel_key(job_id), wake_channel(job_id)


Batch = Sequence[tuple[str, Sequence[ChunkDict]]]


def _append_keys_args(
    batch: Batch, lengths: Sequence[int], quiet: Collection[str] = ()
) -> tuple[list[Any], list[Any]]:
    """The append script's keys and arguments for appending each job's chunks to its log of the
    given length; the readers of jobs in `quiet` are not woken."""
    prefix = _prefix()
    keys: list[Any] = []
    args: list[Any] = [_ttl(), settings.SPOOL.worker.heartbeat_ttl_seconds]
    for (job_id, chunks), length in zip(batch, lengths, strict=True):
        keys.extend(_append_keys(prefix, job_id))
        wake = b"0" if job_id in quiet else b"1"
        args.extend((_content_text(chunks).encode(), length, wake, len(chunks)))
        args.extend([encode(c) for c in chunks])
    return keys, args


def _append_command(batch: Batch, lengths: Sequence[int], quiet: Collection[str] = ()) -> list[Any]:
    keys, args = _append_keys_args(batch, lengths, quiet)
    return ["EVALSHA", _APPEND.sha, len(keys), *keys, *args]


def _appended(reply: list[int]) -> list[Appended]:
    return [Appended(bool(reply[i + 1]), reply[i]) for i in range(0, len(reply), 2)]


def append(job_id: str, chunks: Sequence[ChunkDict]) -> Appended:
    """Append chunks (possibly none), refresh the heartbeat and wake readers, in one command:
    the sweeper's and a cancel's single writes, outside the worker's event loop."""
    keys, args = _append_keys_args([(job_id, chunks)], [-1])
    return _appended(_APPEND.run(sync_redis(), keys, args))[0]


async def append_in_one_call(
    client: Any, batch: Batch, lengths: Sequence[int], quiet: Collection[str] = ()
) -> list[Appended]:
    """Every job's append in one call of the script: one Redis holds all their keys."""
    return _appended(await client.execute_command(*_append_command(batch, lengths, quiet)))


async def append_per_job(
    client: Any, batch: Batch, lengths: Sequence[int], quiet: Collection[str] = ()
) -> list[Appended]:
    """One call per job in a pipeline: on a cluster the jobs' keys lie in different slots, and
    redis-py splits the pipeline by node and sends the parts at once."""
    pipe = client.pipeline(transaction=False)
    for entry, length in zip(batch, lengths, strict=True):
        pipe.execute_command(*_append_command([entry], [length], quiet))
    replies = await pipe.execute(raise_on_error=False)
    if any(isinstance(r, NoScriptError) for r in replies):
        raise NoScriptError("NOSCRIPT from a node")
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return [found for reply in replies for found in _appended(reply)]


async def append_many(
    batch: Batch, *, lengths: Sequence[int] | None = None, quiet: Collection[str] = ()
) -> list[Appended]:
    """The worker's write: the appends (and heartbeats, for empty ones) of many jobs in one round
    trip; each job's cancel flag comes back in the reply. `lengths`: the length each job's log
    must have for its chunks to be appended (the writer's confirmed count); a log of another
    length is left alone and its length comes back. `quiet`: jobs whose appends wake no reader
    (nobody streams a Batch API line; a reader of one finds its chunks at its next poll).

    EVALSHA by hand rather than redis-py's register_script: its pipeline path sends SCRIPT
    EXISTS before every execute, a second round trip per batch. A NOSCRIPT reply (a Redis, or one
    cluster node, restarted) loads the script (on every primary of a cluster) and sends the batch
    again; nothing was appended by it."""
    client = async_redis()
    lengths = lengths or [-1] * len(batch)
    send = append_per_job if is_cluster(client) else append_in_one_call
    try:
        return await send(client, batch, lengths, quiet)
    except NoScriptError:
        await client.script_load(_APPEND.source)
        return await send(client, batch, lengths, quiet)


async def _put(job_id: str, chunks: Sequence[ChunkDict], *, text: str, mode: str) -> None:
    keys = (chunks_key(job_id), text_key(job_id), wake_channel(job_id))
    await _PUT.arun(async_redis(), keys, (_ttl(), text.encode(), mode, *[encode(c) for c in chunks]))


async def rewrite(job_id: str, chunks: Sequence[ChunkDict]) -> None:
    """Put back a whole log that Redis lost (it restarted without persistence), with the same
    sequence numbers, so readers with cursors go on where they were."""
    await _put(job_id, chunks, text=_content_text(chunks), mode="replace")


def read_all(job_id: str) -> list[ChunkDict]:
    """The whole live log (worker side): what a dead worker left behind."""
    return [orjson.loads(raw) for raw in sync_redis().lrange(chunks_key(job_id), 0, -1)]


def alive(job_ids: Sequence[str]) -> list[bool]:
    pipe = sync_redis().pipeline(transaction=False)
    for job_id in job_ids:
        pipe.exists(alive_key(job_id))
    return [bool(found) for found in pipe.execute()]


def request_cancel(job_id: str) -> None:
    sync_redis().set(cancel_key(job_id), b"1", ex=_ttl())


# ---- reading (web side, async) ---------------------------------------------------------------

Page = tuple[int, list[ChunkDict]]  # (the first chunk's sequence number, the chunks)
Text = tuple[str, str, ChunkDict | None]  # (new text, all text so far, the log's last chunk)

# Hand out the chunks after a reader's cursor and move the cursor, atomically, so two
# concurrent polls of one job never get the same chunk twice. `cursor` '' is the reader's own
# (claimed); a number pages from there and claims nothing.
_CLAIM_PAGE = """
local function claim_page(chunks, handed, cursor, ttl)
  local stateful = cursor == ''
  local start = tonumber(cursor)
  if stateful then
    start = tonumber(redis.call('GET', handed) or '0')
  end
  local items = redis.call('LRANGE', chunks, start, -1)
  if stateful and #items > 0 then
    redis.call('SET', handed, start + #items, 'EX', ttl)
  end
  return start, items
end
"""

_CLAIM_CHUNKS = Lua(
    _CLAIM_PAGE
    + """
local start, items = claim_page(KEYS[1], KEYS[2], '', ARGV[1])
return {start, items}
"""
)

# Whether an encoded chunk ends its log: chunks are encoded with "type" first (see encode), so
# the prefix tells a terminal chunk.
_ENDS = """
local function ends(chunk)
  return string.find(chunk, '^{"type":"finish"') ~= nil or string.find(chunk, '^{"type":"error"') ~= nil
end
"""

# The same for text: the bytes handed out before, and all text (only up to what is handed out
# when nothing is claimed). New text that is only whitespace is held back until more arrives or
# the log has ended: ai-server-sdk's stream_ask drops a poll's text when it is blank, which
# would lose a newline for good.
_CLAIM_TEXT_UPTO = """
local function claim_text(text, handed_key, ended, ttl)
  local handed = tonumber(redis.call('GET', handed_key) or '0')
  local total = redis.call('GET', text) or ''
  if #total > handed and (ended or string.find(total, '%S', handed + 1)) then
    redis.call('SET', handed_key, #total, 'EX', ttl)
  else
    total = string.sub(total, 1, handed)
  end
  return handed, total
end
"""

# KEYS: text, the reader's cursor, chunks. Returns {handed before, total, the log's last chunk}.
_CLAIM_TEXT = Lua(
    _ENDS
    + _CLAIM_TEXT_UPTO
    + """
local last = redis.call('LINDEX', KEYS[3], -1) or ''
local handed, total = claim_text(KEYS[1], KEYS[2], ends(last), ARGV[1])
return {handed, total, last}
"""
)

# Used once a job is finished and read from the Postgres archive: move the cursor to the end.
_CLAIM_TO = Lua("""
local start = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > start then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return start
""")


def _decode_all(items: Sequence[bytes]) -> list[ChunkDict]:
    return [orjson.loads(item) for item in items]


async def read_since(job_id: str, cursor: int) -> list[ChunkDict]:
    return _decode_all(await async_redis().lrange(chunks_key(job_id), cursor, -1))


def carried_chunks(carried: list[bytes], cursor: int) -> list[ChunkDict] | None:
    """The chunks from `cursor` on that the wake-ups in `carried` brought (each the append
    script's `<start>:[<chunk>,...]`), when they reach back to `cursor` with no gap: none when
    they announced only chunks the reader has (each later append's wake-up is still to come).
    None when the log must be read instead: a wake-up that carried no chunks ('1', a reconnected
    listener's b''), or one that was never heard (a gap). Empties `carried`."""
    chunks: list[ChunkDict] = []
    at = cursor
    try:
        for data in carried:
            start, carries, items = data.partition(b":")
            if not carries or not start.isdigit() or int(start) > at:
                return None
            first, decoded = int(start), orjson.loads(items)
            if first + len(decoded) > at:
                chunks += decoded[at - first :]
                at = first + len(decoded)
        return chunks
    finally:
        carried.clear()


async def claim_chunks(job_id: str, reader: str) -> tuple[int, list[ChunkDict]]:
    start, items = await _CLAIM_CHUNKS.arun(
        async_redis(), (chunks_key(job_id), handed_key(job_id, reader)), (_ttl(),)
    )
    return int(start), _decode_all(items)


async def claim_up_to(job_id: str, reader: str, end: int) -> int:
    """Move a reader's cursor to `end`; returns where it was."""
    return int(await _CLAIM_TO.arun(async_redis(), (handed_key(job_id, reader),), (end, _ttl())))


async def claim_text(job_id: str, reader: str) -> Text:
    """(new text since this reader's last claim, all text so far, the log's last chunk)."""
    handed, total, last = await _CLAIM_TEXT.arun(
        async_redis(), (text_key(job_id), handed_key(job_id, reader), chunks_key(job_id)), (_ttl(),)
    )
    return _text_claimed(handed, total, orjson.loads(last) if last else None)


def text_ready(got: Text | None) -> bool:
    """Whether a text poll has its answer: new text, or the log's end."""
    if got is None:
        return False
    new, _, last = got
    return bool(new) or (last is not None and is_terminal(last))


def _text_claimed(handed: Any, total: bytes | None, last: ChunkDict | None) -> Text:
    total_bytes = total or b""
    return total_bytes[int(handed) :].decode(errors="replace"), total_bytes.decode(errors="replace"), last


async def claim_text_up_to(job_id: str, reader: str, total: str) -> str:
    """The archive variant of claim_text: returns the text not yet handed out."""
    data = total.encode()
    handed = await claim_up_to(job_id, reader, len(data))
    return data[handed:].decode(errors="replace")


async def last_chunk(job_id: str) -> ChunkDict | None:
    raw = await async_redis().lindex(chunks_key(job_id), -1)
    return orjson.loads(raw) if raw else None


# ---- what a read of a live job needs (web side) ----------------------------------------------
#   <p>:job:{<id>}:meta JSON: owner, engine, face, room, created, the request without its
#                       messages, the options. Written once by job_create, so polling or
#                       streaming a live job reads Redis only; it lives as long as the log can
#                       outlive it from creation, and Postgres answers once it is gone.


def meta_key(job_id: str) -> str:
    return f"{_prefix()}:job:{{{job_id}}}:meta"


def write_meta(job_id: str, meta: LiveMeta) -> None:
    sync_redis().set(meta_key(job_id), encode(meta), ex=_ttl())


class LiveState(NamedTuple):
    meta: LiveMeta | None  # None: never written, or expired
    last: ChunkDict | None  # the log's last chunk
    alive: bool  # a worker's heartbeat is fresh


# The names stateful polls hand chunks out under (the faces' `reader` arguments and READER
# constants). A job's keys are deleted by name: finding them by pattern would scan the whole
# keyspace (every node of a cluster) once per job.
READERS = ("semoss-stream", "semoss-partial", "status", "native", "openai", "responses")


def job_keys(job_id: str) -> list[str]:
    """Every key of a job: all in its hash slot, so one DEL takes them, on a cluster too."""
    return [
        chunks_key(job_id),
        text_key(job_id),
        cancel_key(job_id),
        alive_key(job_id),
        meta_key(job_id),
        *(handed_key(job_id, reader) for reader in READERS),
    ]


def delete_jobs(job_ids: Sequence[str]) -> int:
    """Delete these jobs' keys (one DEL per job, in one pipeline); how many keys there were."""
    if not job_ids:
        return 0
    pipe = sync_redis().pipeline(transaction=False)
    for job_id in job_ids:
        pipe.delete(*job_keys(job_id))
    return sum(pipe.execute())


async def read_live(job_id: str, counted: RequestCount | None = None) -> LiveState:
    """The meta, the log's last chunk and the heartbeat, in one round trip; with `counted`, a
    request's count in the same round trip, checked (LimitExceeded) before anything is read."""
    pipe = async_redis().pipeline(transaction=False)
    if counted is not None:
        counted.queue(pipe)
    pipe.get(meta_key(job_id)).lindex(chunks_key(job_id), -1).exists(alive_key(job_id))
    replies = await pipe.execute()
    if counted is not None:
        counted.check(replies[0])
    meta, last, alive = replies[-3:]
    return LiveState(orjson.loads(meta) if meta else None, orjson.loads(last) if last else None, bool(alive))


# A poll's whole read of a live job, in one step on the job's node: read_live's three reads and,
# for the job's owner while its log has not ended, what the poll reads of it: the page after
# its cursor (_POLL) or the text not yet handed out (_POLL_TEXT), claimed for a stateful reader
# as _CLAIM_CHUNKS and _CLAIM_TEXT do. Nothing is read for another caller (a poll of another's
# job claims nothing), nor from an ended log (a finished job is read from Postgres, as before).
# With the request's count (a single Redis; on a cluster its key lies in another slot), nothing
# is read over the limit.
# KEYS: meta, chunks, alive, the reader's cursor, text [, the request count].
# ARGV: the meta's opening for this owner, log TTL, the limit, the count's TTL, the cursor
#       ('' = the reader's own; _POLL only).
# Returns {count, meta, last chunk, alive [, what the poll read]}; {count} alone over the limit.
_POLL_LIVE = (
    _ENDS
    + """
local used = 0
if KEYS[6] then
  used = redis.call('INCR', KEYS[6])
  redis.call('EXPIRE', KEYS[6], ARGV[4])
  if used > tonumber(ARGV[3]) then
    return {used}
  end
end
local meta = redis.call('GET', KEYS[1])
local last = redis.call('LINDEX', KEYS[2], -1)
local alive = redis.call('EXISTS', KEYS[3])
if not meta or (last and ends(last)) or string.sub(meta, 1, #ARGV[1]) ~= ARGV[1] then
  return {used, meta, last, alive}
end
"""
)

_POLL = Lua(
    _CLAIM_PAGE
    + _POLL_LIVE
    + """
local start, items = claim_page(KEYS[2], KEYS[4], ARGV[5], ARGV[2])
return {used, meta, last, alive, start, items}
"""
)

_POLL_TEXT = Lua(
    _CLAIM_TEXT_UPTO
    + _POLL_LIVE
    + """
local handed, total = claim_text(KEYS[5], KEYS[4], false, ARGV[2])
return {used, meta, last, alive, handed, total}
"""
)


async def _poll_live(
    script: Lua, job_id: str, owner_id: int, reader: str, cursor: bytes | int, counted: RequestCount | None
) -> tuple[LiveState, list[Any] | None]:
    """The live state, and what the script read for the owner (None: nothing was read)."""
    client = async_redis()
    keys = [
        meta_key(job_id),
        chunks_key(job_id),
        alive_key(job_id),
        handed_key(job_id, reader),
        text_key(job_id),
    ]
    # The meta is encoded with "owner" first (jobview.live_meta), so its opening tells the owner.
    args: list[Any] = [b'{"owner":%d,' % owner_id, _ttl(), 0, 0, cursor]
    if counted is not None and is_cluster(client):
        await counted.send()
        counted = None
    if counted is not None:
        keys.append(counted.key)
        args[2:4] = [counted.limit, counted.ttl_seconds]
    reply = await script.arun(client, keys, args)
    if counted is not None:
        counted.check(reply[0])
    meta, last, alive = reply[1:4]
    state = LiveState(orjson.loads(meta) if meta else None, orjson.loads(last) if last else None, bool(alive))
    return state, (reply[4:] if len(reply) > 4 else None)


async def poll_live(
    job_id: str, owner_id: int, cursor: int | None, reader: str, counted: RequestCount | None = None
) -> tuple[LiveState, Page | None]:
    """read_live, and the owner's page of a live job after `cursor` (None: claimed for `reader`),
    in one round trip; with `counted`, the request's count checked (LimitExceeded) first."""
    state, read = await _poll_live(
        _POLL, job_id, owner_id, reader, b"" if cursor is None else cursor, counted
    )
    return state, None if read is None else (int(read[0]), _decode_all(read[1]))


async def poll_live_text(
    job_id: str, owner_id: int, reader: str, counted: RequestCount | None = None
) -> tuple[LiveState, Text | None]:
    """read_live, and the owner's text of a live job not yet handed to `reader` (claim_text's
    answer), in one round trip; with `counted`, the request's count checked first."""
    state, read = await _poll_live(_POLL_TEXT, job_id, owner_id, reader, b"", counted)
    return state, None if read is None else _text_claimed(read[0], read[1], state.last)
