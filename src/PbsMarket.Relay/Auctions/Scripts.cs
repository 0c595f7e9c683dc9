using StackExchange.Redis;

namespace PbsMarket.Relay.Auctions;

/// <summary>
/// The Lua scripts that make each state change one atomic step. Time comes from Redis TIME, so every
/// relay instance agrees on when an auction closes and stamps receipts from the same clock.
/// </summary>
internal static class Scripts
{
    /// <summary>Creates a slot's auction if absent (status open, on the given head).</summary>
    public static readonly LuaScript Create = LuaScript.Prepare("""
        if redis.call('EXISTS', @auction) == 1 then return 0 end
        redis.call('HSET', @auction, 'status', 'open', 'parent', @parent, 'number', @number, 'proposer', @proposer,
          'closes_at', @closesAt, 'timestamp_ms', @timestampMs, 'seq', 0)
        redis.call('EXPIRE', @auction, @ttl)
        return 1
        """);

    /// <summary>
    /// Moves an open auction onto a newer head (bids on the old head then drop out of it).
    /// Monotonic: only a higher block number replaces the stored one; a closed auction never changes.
    /// </summary>
    public static readonly LuaScript MoveHead = LuaScript.Prepare("""
        local a = redis.call('HMGET', @auction, 'status', 'number')
        if a[1] ~= 'open' then return 0 end
        if tonumber(a[2]) >= tonumber(@number) then return 0 end
        redis.call('HSET', @auction, 'parent', @parent, 'number', @number)
        return 1
        """);

    /// <summary>
    /// Accepts one bid whose signature and payload were already checked. Returns
    /// {'ok', received_ms, seq} | {'dup', stored_record} | {'err', code, detail}.
    /// The per-builder count is bumped only once every other check passed, so refused bids use no quota.
    /// `counts` also holds, per builder, the bytes it stores in the slot (`b:builder`) and its latest payload (`p:builder`).
    /// </summary>
    public static readonly LuaScript Accept = LuaScript.Prepare("""
        local existing = redis.call('HGET', @bids, @hash)
        if existing then return {'dup', existing} end
        local a = redis.call('HMGET', @auction, 'status', 'parent', 'number', 'proposer', 'closes_at')
        if not a[1] then return {'err', 'wrong_slot', 'no auction'} end
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        if a[1] ~= 'open' or now >= tonumber(a[5]) then return {'err', 'auction_closed', a[5]} end
        if a[4] ~= @proposer then return {'err', 'wrong_proposer', a[4]} end
        if a[2] ~= @parent then return {'err', 'stale_parent', a[2]} end
        if a[3] ~= @number then return {'err', 'stale_parent_number', a[3]} end
        local c = redis.call('HINCRBY', @counts, @builder, 1)
        if c > tonumber(@maxBids) then
          redis.call('HINCRBY', @counts, @builder, -1)
          return {'err', 'rate_limited', @maxBids}
        end
        -- Storage per builder per slot: every record, plus only the latest payload (earlier bids of the
        -- builder no longer compete, so their payloads go). Over the budget, nothing is stored.
        local latest = redis.call('HGET', @counts, 'p:' .. @builder)
        local prevHash, prevLen = nil, 0
        if latest then
          local sep = string.find(latest, '|', 1, true)
          prevHash = string.sub(latest, 1, sep - 1)
          prevLen = tonumber(string.sub(latest, sep + 1))
        end
        local used = tonumber(redis.call('HGET', @counts, 'b:' .. @builder) or '0')
        local seqLen = string.len(tostring(now)) + 24 + string.len(@hash) -- the receipt prefix, and the order list's entry
        local after = used - prevLen + string.len(@record) + seqLen + string.len(@payload)
        if after > tonumber(@maxBytes) then
          redis.call('HINCRBY', @counts, @builder, -1)
          return {'err', 'storage_budget', used .. '|' .. @maxBytes}
        end
        local seq = redis.call('HINCRBY', @auction, 'seq', 1)
        local record = now .. '|' .. seq .. '|' .. @record
        redis.call('HSET', @bids, @hash, record)
        redis.call('RPUSH', @order, @hash)
        -- A checksum over (sequence, hash, receipt time, flags): the close checks an instance's own copy of its bids against it.
        redis.call('HINCRBY', @auction, 'check', (tonumber(string.sub(@hash, 3, 8), 16) + now % 16777216 + tonumber(@flags)) * (seq % 4096 + 1))
        redis.call('EXPIRE', @order, @ttl, 'NX')
        if prevHash then redis.call('HDEL', @payloads, prevHash) end
        redis.call('HSET', @payloads, @hash, @payload)
        redis.call('HSET', @counts, 'b:' .. @builder, after, 'p:' .. @builder, @hash .. '|' .. string.len(@payload))
        redis.call('EXPIRE', @bids, @ttl, 'NX')
        redis.call('EXPIRE', @payloads, @payloadTtl, 'NX')
        redis.call('EXPIRE', @counts, @ttl, 'NX')
        return {'ok', now, seq}
        """);

    /// <summary>
    /// Closes an auction once its close time has passed on Redis's clock, and returns the frozen auction and how many
    /// bids it accepted: {'early', ms_left} | {'none'} | {'closed', parent, number, proposer, closed_at, bid_count, checksum}.
    /// After this runs no bid can be accepted, so the count is final: the bids are those of sequence numbers 1 to
    /// bid_count, which the caller reads (AuctionStore.CloseAsync) only where its own copy lacks them.
    /// </summary>
    public static readonly LuaScript Close = LuaScript.Prepare("""
        local a = redis.call('HMGET', @auction, 'status', 'parent', 'number', 'proposer', 'closes_at', 'closed_at')
        if not a[1] then return {'none'} end
        local closedAt = a[6]
        if a[1] == 'open' then
          local t = redis.call('TIME')
          local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
          if now < tonumber(a[5]) then return {'early', tonumber(a[5]) - now} end
          redis.call('HSET', @auction, 'status', 'closed', 'closed_at', now)
          closedAt = tostring(now)
        end
        local c = redis.call('HMGET', @auction, 'seq', 'check')
        return {'closed', a[2], a[3], a[4], closedAt, c[1] or '0', c[2] or '0'}
        """);

    /// <summary>
    /// Records the proposer's signed choice for a slot, once. Returns {'new'} | {'same'} | {'conflict', hash, signature}.
    /// </summary>
    public static readonly LuaScript Propose = LuaScript.Prepare("""
        local prev = redis.call('HMGET', @proposal, 'proposal_hash', 'signature', 'header_hash', 'price', 'bids_root', 'relay')
        if prev[1] then
          if prev[1] == @phash then return {'same'} end
          redis.call('RPUSH', @evidence, @hash .. '|' .. @signature)
          redis.call('EXPIRE', @evidence, @ttl)
          return {'conflict', prev[3], prev[2], prev[4], prev[5], prev[6]}
        end
        redis.call('HSET', @proposal, 'proposal_hash', @phash, 'header_hash', @hash, 'price', @price, 'bids_root', @root, 'relay', @relay,
          'signature', @signature, 'received_ms', @now, 'source', @source)
        redis.call('EXPIRE', @proposal, @ttl)
        return {'new'}
        """);

    /// <summary>Moves the global head forward only (by block number). KEYS: head. Returns 1 if moved.</summary>
    public static readonly LuaScript AdvanceHead = LuaScript.Prepare("""
        local n = redis.call('HGET', @head, 'number')
        if n and tonumber(n) >= tonumber(@number) then return 0 end
        redis.call('HSET', @head, 'hash', @hash, 'number', @number, 'slot', @slot)
        return 1
        """);
}
