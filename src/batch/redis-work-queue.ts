import type { RedisBatchDb } from './redis-db.ts';
import { int, list, text } from './redis-db.ts';
import type { ClaimedItem, ItemData, JoinOutcome, RunInfo, WorkQueue } from './store.ts';

/**
 * Scripts of the work queue: each one atomic operation on one batch's keys (see redis-db.ts), time
 * from Redis TIME. The rules of rules.ts are mirrored in Lua (the conformance suite holds them to
 * the functions): `claimable` is "in FREE, or in LEASED scored below now", `leaseLive` "in LEASED
 * scored at or above now", `fenceAdmits` the prelude's fence_admits, `runConflicts` below.
 * Walking LEASED is O(leases held in the batch), which is bounded by the items in flight of all
 * runs (a few dozen per process), not by the batch's size.
 */
const scripts = {
  // Leases up to `limit` claimable items in input order after the cursor, else from the top; each
  // claim adds one to the item's token. ARGV: time, cursor, limit, owner, leaseMs.
  // Returns idx, token and data of each item claimed.
  fcBatchClaim: `
    local now = now_ms()
    local after, limit, owner = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
    local lease_until = now + tonumber(ARGV[5])
    if limit <= 0 then return {} end
    local function claimable_after(from)
      local picked = {}
      for _, m in ipairs(redis.call('ZRANGEBYSCORE', FREE, '(' .. from, '+inf', 'LIMIT', 0, limit)) do
        picked[#picked + 1] = tonumber(m)
      end
      -- Lapsed leases, whatever their position: few, and merged into input order below.
      for _, m in ipairs(redis.call('ZRANGEBYSCORE', LEASED, '-inf', '(' .. now)) do
        local idx = tonumber(m)
        if idx > from then picked[#picked + 1] = idx end
      end
      table.sort(picked)
      return picked
    end
    local picked = claimable_after(after)
    if #picked == 0 and after >= 0 then picked = claimable_after(-1) end
    local out = {}
    for n = 1, math.min(limit, #picked) do
      local idx = picked[n]
      redis.call('ZREM', FREE, idx)
      redis.call('ZADD', LEASED, lease_until, idx)
      redis.call('HSET', OWNER, idx, owner)
      out[#out + 1] = idx
      out[#out + 1] = redis.call('HINCRBY', TOKEN, idx, 1)
      out[#out + 1] = redis.call('HGET', DATA, idx)
    end
    return out`,
  // Renews the owner's run registration and its leases not released (a lapsed one nobody claimed
  // since is still the owner's, as in SQLite). ARGV: time, owner, leaseMs.
  fcBatchHeartbeat: `
    local owner = ARGV[2]
    local lease_until = now_ms() + tonumber(ARGV[3])
    local run = redis.call('HGET', RUNS, owner)
    if run then
      local r = cjson.decode(run)
      r.alive_until = lease_until
      redis.call('HSET', RUNS, owner, cjson.encode(r))
    end
    for _, idx in ipairs(redis.call('ZRANGE', LEASED, 0, -1)) do
      if redis.call('HGET', OWNER, idx) == owner then redis.call('ZADD', LEASED, lease_until, idx) end
    end
    return 1`,
  // ARGV: time, idx, token.
  fcBatchReleaseItem: `
    if not fence_admits(ARGV[2], ARGV[3]) then return 0 end
    release(ARGV[2])
    return 1`,
  // Hands back the owner's pending items, and with ARGV[3] == '1' drops its run too (leaveRun).
  // ARGV: time, owner, leave.
  fcBatchReleaseOwner: `
    local owner, n = ARGV[2], 0
    for _, idx in ipairs(redis.call('ZRANGE', LEASED, 0, -1)) do
      if redis.call('HGET', OWNER, idx) == owner then
        release(idx)
        n = n + 1
      end
    end
    if ARGV[3] == '1' then redis.call('HDEL', RUNS, owner) end
    return n`,
  fcBatchLeaseOwners: `
    local seen, out = {}, {}
    for _, idx in ipairs(redis.call('ZRANGEBYSCORE', LEASED, now_ms(), '+inf')) do
      local owner = redis.call('HGET', OWNER, idx)
      if owner and not seen[owner] then
        seen[owner] = true
        out[#out + 1] = owner
      end
    end
    return out`,
  // rules.ts runConflicts, with lapsed registrations dropped on the way (kept dropped even when
  // the join is refused, as the SQLite transaction commits them). ARGV: time, owner, exclusive
  // ('1' or '0'), aliveMs. Returns {1} once joined, else {0, conflicting owners...}.
  fcBatchJoinRun: `
    if redis.call('EXISTS', META) == 0 then return redis.error_reply('no batch to join') end
    local now = now_ms()
    local owner, exclusive = ARGV[2], ARGV[3] == '1'
    local conflicts = { 0 }
    local runs = redis.call('HGETALL', RUNS)
    for i = 1, #runs, 2 do
      local other, r = runs[i], cjson.decode(runs[i + 1])
      if r.alive_until < now then
        redis.call('HDEL', RUNS, other)
      elseif other ~= owner and (exclusive or r.exclusive == 1) then
        conflicts[#conflicts + 1] = other
      end
    end
    if #conflicts > 1 then return conflicts end
    redis.call('HSET', RUNS, owner, cjson.encode({
      exclusive = exclusive and 1 or 0, started_at = now, alive_until = now + tonumber(ARGV[4]) }))
    return { 1 }`,
  // The live registrations (alive_until at or after now), read only: lapsed ones stay for
  // fcBatchJoinRun to drop. Returns owner, exclusive, started_at, alive_until of each.
  fcBatchRuns: `
    local now = now_ms()
    local out = {}
    local runs = redis.call('HGETALL', RUNS)
    for i = 1, #runs, 2 do
      local r = cjson.decode(runs[i + 1])
      if r.alive_until >= now then
        out[#out + 1] = runs[i]
        out[#out + 1] = r.exclusive
        out[#out + 1] = r.started_at
        out[#out + 1] = r.alive_until
      end
    end
    return out`,
} as const;

/**
 * The work queue on Redis: claim, heartbeat, join and leave are each one script, fenced where the
 * interface says so; a per-batch claim cursor is kept in this process, as SQLite's is. Writes that
 * change leases wait for this process's job outcomes first (an outcome sent before a release
 * lands before it), as SQLite's `afterQueued` does.
 */
export class RedisWorkQueue implements WorkQueue {
  readonly #r: RedisBatchDb;
  /** Where the next claim starts looking, per batch: claims walk the input once, not from the top each time. */
  readonly #cursor = new Map<string, number>();

  constructor(shared: RedisBatchDb) {
    this.#r = shared;
    for (const [name, body] of Object.entries(scripts)) shared.define(name, body);
  }

  async claim(batchId: string, owner: string, leaseMs: number, limit: number): Promise<ClaimedItem[]> {
    const after = this.#cursor.get(batchId) ?? -1;
    const reply = list(await this.#r.run('fcBatchClaim', batchId, [after, limit, owner, leaseMs]));
    const claimed: ClaimedItem[] = [];
    for (let i = 0; i + 2 < reply.length; i += 3) {
      const token = int(reply[i + 1]);
      claimed.push({
        idx: int(reply[i]),
        attempts: token,
        token,
        ...(JSON.parse(text(reply[i + 2])) as ItemData),
      });
    }
    if (claimed.length > 0) this.#cursor.set(batchId, claimed[claimed.length - 1]!.idx);
    return claimed;
  }

  async heartbeat(batchId: string, owner: string, leaseMs: number): Promise<void> {
    await this.#r.run('fcBatchHeartbeat', batchId, [owner, leaseMs]);
  }

  async releaseItem(batchId: string, idx: number, token: number): Promise<void> {
    await this.#r.settled();
    await this.#r.run('fcBatchReleaseItem', batchId, [idx, token]);
  }

  async releaseLeases(batchId: string, owner: string): Promise<void> {
    await this.#r.settled();
    await this.#r.run('fcBatchReleaseOwner', batchId, [owner, '0']);
  }

  async leaseOwners(batchId: string): Promise<string[]> {
    await this.#r.settled();
    return list(await this.#r.run('fcBatchLeaseOwners', batchId)).map(text);
  }

  async joinRun(
    batchId: string,
    owner: string,
    run: { exclusive: boolean; aliveMs: number },
  ): Promise<JoinOutcome> {
    const reply = list(
      await this.#r.run('fcBatchJoinRun', batchId, [owner, run.exclusive ? '1' : '0', run.aliveMs]),
    );
    if (int(reply[0]) === 1) return { joined: true };
    return { joined: false, conflicts: reply.slice(1).map(text) };
  }

  /**
   * One script: the leases and the registration go together. Unlike SQLite's, the work is not
   * done when the promise is returned (the server's reply is awaited), but the command is written
   * to the socket at once, so a process exiting right after (a second Ctrl-C) has sent it. It does
   * not wait for this process's outcomes in flight: they went first on the same connection, and
   * one arriving after the release still lands (a release keeps the token).
   */
  async leaveRun(batchId: string, owner: string): Promise<void> {
    await this.#r.run('fcBatchReleaseOwner', batchId, [owner, '1']);
  }

  async runs(batchId: string): Promise<RunInfo[]> {
    const reply = list(await this.#r.run('fcBatchRuns', batchId));
    const runs: RunInfo[] = [];
    for (let i = 0; i + 3 < reply.length; i += 4) {
      runs.push({
        owner: text(reply[i]),
        exclusive: int(reply[i + 1]) === 1,
        startedAt: int(reply[i + 2]),
        aliveUntil: int(reply[i + 3]),
      });
    }
    // Hash order is arbitrary: the same order as SQLite's.
    return runs.sort(
      (a, b) => a.startedAt - b.startedAt || (a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0),
    );
  }
}
