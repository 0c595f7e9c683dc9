using System.Globalization;
using PbsMarket.Core;
using StackExchange.Redis;

namespace PbsMarket.Relay.Auctions;

/// <summary>
/// The one owner of what builders owe this relay's market for auctions they won that L1 has not yet decided.
/// <list type="bullet">
/// <item><b>Booked</b> from a slot's stored result, once per slot (<c>HSETNX</c> on the slot): every instance that
/// reads the result books it, so a crash between storing a result and booking its debt heals at the next reader.</item>
/// <item><b>Released</b> once per slot, for every slot at or below the L1 inbox's last posted slot, whoever proposed or
/// posted it: L1 keeps one linear chain, so such a slot is final (its winner was charged by the escrow, or it never
/// will be). A booking for a slot already final is refused, so a late reader cannot book it again.</item>
/// </list>
/// Amounts are exact decimal strings (wei up to 2^256): a release subtracts exactly what was booked for that slot, never
/// clamps. Every key carries the hash tag <c>{net}</c>, so each script touches one Redis Cluster hash slot.
/// </summary>
public sealed class DebtLedger(RedisKeys keys, IConnectionMultiplexer redis)
{
    /// <summary>Fields of <see cref="RedisKeys.Owed"/> (not addresses): the slot through which debts are final, and an
    /// L1 block at which the inbox had reached it (balances read at or after it include every settlement up to it).</summary>
    const string ThroughField = "_final_through", BlockField = "_final_block";

    /// <summary>Decimal-string arithmetic shared by both scripts (Lua numbers are doubles).</summary>
    const string BigMath = """
        local function cmp(x, y)
          if #x ~= #y then return #x < #y and -1 or 1 end
          if x == y then return 0 end
          return x < y and -1 or 1
        end
        local function add(x, y)
          local r, carry, i, j = {}, 0, #x, #y
          while i > 0 or j > 0 or carry > 0 do
            local s = carry + (i > 0 and tonumber(string.sub(x, i, i)) or 0) + (j > 0 and tonumber(string.sub(y, j, j)) or 0)
            table.insert(r, 1, s % 10); carry = math.floor(s / 10); i = i - 1; j = j - 1
          end
          return (string.gsub(table.concat(r), '^0+(%d)', '%1'))
        end
        local function sub(x, y)
          local r, borrow, i, j = {}, 0, #x, #y
          while i > 0 do
            local s = tonumber(string.sub(x, i, i)) - borrow - (j > 0 and tonumber(string.sub(y, j, j)) or 0)
            if s < 0 then s = s + 10; borrow = 1 else borrow = 0 end
            table.insert(r, 1, s); i = i - 1; j = j - 1
          end
          return (string.gsub(table.concat(r), '^0+(%d)', '%1'))
        end
        """;

    // KEYS: owed, debts (slot -> builder|price), debt slots (zset by slot). ARGV: slot, builder, price (> 0).
    static readonly string BookScript = BigMath + "\n" + """
        local through = redis.call('HGET', KEYS[1], '_final_through')
        if through and cmp(ARGV[1], through) <= 0 then return 0 end
        if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2] .. '|' .. ARGV[3]) == 0 then return 0 end
        redis.call('ZADD', KEYS[3], ARGV[1], ARGV[1])
        redis.call('HSET', KEYS[1], ARGV[2], add(redis.call('HGET', KEYS[1], ARGV[2]) or '0', ARGV[3]))
        return 1
        """;

    // KEYS as above. ARGV: through (final slot), limit, the L1 block at which the inbox had reached that slot.
    // Returns {more (0|1), builder, builder, ...} of released debts.
    static readonly string ReleaseScript = BigMath + "\n" + """
        local through = redis.call('HGET', KEYS[1], '_final_through')
        if not through or cmp(through, ARGV[1]) < 0 then
          through = ARGV[1]
          redis.call('HSET', KEYS[1], '_final_through', through, '_final_block', ARGV[3])
        end
        local slots = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', through, 'LIMIT', 0, tonumber(ARGV[2]))
        local out = {0}
        for _, s in ipairs(slots) do
          -- scores are doubles: compare the exact slot number before releasing
          if cmp(s, through) <= 0 then
            local entry = redis.call('HGET', KEYS[2], s)
            if entry then
              local sep = string.find(entry, '|', 1, true)
              local builder, price = string.sub(entry, 1, sep - 1), string.sub(entry, sep + 1)
              local owed = redis.call('HGET', KEYS[1], builder) or '0'
              if cmp(owed, price) < 0 then return redis.error_reply('ledger: ' .. builder .. ' owes ' .. owed .. ' < ' .. price .. ' booked for slot ' .. s) end
              local left = sub(owed, price)
              if left == '0' then redis.call('HDEL', KEYS[1], builder) else redis.call('HSET', KEYS[1], builder, left) end
              redis.call('HDEL', KEYS[2], s)
              table.insert(out, builder)
            end
            redis.call('ZREM', KEYS[3], s)
          end
        end
        if #slots == tonumber(ARGV[2]) then out[1] = 1 end
        return out
        """;

    const int ReleaseBatch = 256;

    RedisKey[] Keys => [keys.Owed, keys.Debts, keys.DebtSlots];

    /// <summary>Books the winner's debt for a slot; false when it was booked before or the slot is already final on L1.</summary>
    public async Task<bool> BookAsync(ulong slot, Address builder, BigInteger price)
    {
        if (price <= 0) return false;
        var r = await redis.GetDatabase().ScriptEvaluateAsync(BookScript, Keys,
            [slot.ToString(CultureInfo.InvariantCulture), builder.ToString(), price.ToString(CultureInfo.InvariantCulture)]);
        return (long)r == 1;
    }

    /// <summary>
    /// Releases every debt of a slot at or below <paramref name="finalSlot"/> (the L1 inbox's last posted slot), once;
    /// returns the builders whose debts were released (their escrow balances changed if L1 charged them).
    /// </summary>
    public async Task<IReadOnlyList<Address>> ReleaseThroughAsync(ulong finalSlot, ulong atL1Block)
    {
        var released = new List<Address>();
        for (var more = true; more;)
        {
            var r = (RedisResult[])(await redis.GetDatabase().ScriptEvaluateAsync(ReleaseScript, Keys,
                [finalSlot.ToString(CultureInfo.InvariantCulture), ReleaseBatch, atL1Block.ToString(CultureInfo.InvariantCulture)]))!;
            more = (long)r[0] == 1;
            released.AddRange(r.Skip(1).Select(x => Address.Parse((string)x!)));
        }
        return released;
    }

    /// <summary>What the builder owes; the slot through which L1 has decided; and an L1 block at which it had: a balance
    /// read at an earlier block may not include the settlements whose debts were released.</summary>
    public async Task<(BigInteger Owed, ulong FinalThrough, ulong FinalBlock)> OwedAsync(Address builder)
    {
        var v = await redis.GetDatabase().HashGetAsync(keys.Owed, [builder.ToString(), ThroughField, BlockField]);
        return (v[0].IsNull ? BigInteger.Zero : BigInteger.Parse((string)v[0]!, CultureInfo.InvariantCulture),
            v[1].IsNull ? 0 : ulong.Parse((string)v[1]!, CultureInfo.InvariantCulture),
            v[2].IsNull ? 0 : ulong.Parse((string)v[2]!, CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// What the builder owes, as read once per slot on this instance: the first signed bid of a slot (after
    /// <see cref="ResultService.EnsurePreviousBookedAsync"/> has booked every earlier slot that can still reach L1) reads
    /// the whole ledger once, and the slot's other bids weigh against that snapshot, so the bid path does not read the
    /// market's global shard (<c>{net}</c>) once per bid on a Redis Cluster. The snapshot is never below what a
    /// per-bid read would give: nothing books a slot at or after this one before this one closes, and a release only
    /// lowers debts (a release during the slot shows from the next slot on; until then the builder's free collateral is
    /// understated, never overstated, and its balance is read at or after the snapshot's L1 block).
    /// </summary>
    public async Task<(BigInteger Owed, ulong FinalThrough, ulong FinalBlock)> OwedInSlotAsync(ulong slot, Address builder)
    {
        var entry = _snapshots.GetOrAdd(slot, _ => new Lazy<Task<Snapshot>>(ReadSnapshotAsync));
        Snapshot snapshot;
        try
        {
            snapshot = await entry.Value;
        }
        catch
        {
            _snapshots.TryRemove(KeyValuePair.Create(slot, entry)); // Redis failed: the next bid reads again
            throw;
        }
        if (_snapshots.Count > 4)
            foreach (var old in _snapshots.Keys)
                if (old + 4 <= slot) _snapshots.TryRemove(old, out _);
        return (snapshot.Owed.GetValueOrDefault(builder.ToString(), BigInteger.Zero), snapshot.FinalThrough, snapshot.FinalBlock);
    }

    sealed record Snapshot(Dictionary<string, BigInteger> Owed, ulong FinalThrough, ulong FinalBlock);

    readonly System.Collections.Concurrent.ConcurrentDictionary<ulong, Lazy<Task<Snapshot>>> _snapshots = new();

    async Task<Snapshot> ReadSnapshotAsync()
    {
        var entries = await redis.GetDatabase().HashGetAllAsync(keys.Owed);
        var owed = new Dictionary<string, BigInteger>(StringComparer.Ordinal);
        ulong through = 0, block = 0;
        foreach (var e in entries)
        {
            var name = (string)e.Name!;
            if (name == ThroughField) through = ulong.Parse((string)e.Value!, CultureInfo.InvariantCulture);
            else if (name == BlockField) block = ulong.Parse((string)e.Value!, CultureInfo.InvariantCulture);
            else if (!name.StartsWith('_')) owed[name] = BigInteger.Parse((string)e.Value!, CultureInfo.InvariantCulture);
        }
        return new Snapshot(owed, through, block);
    }

    /// <summary>The slots with an open debt and their winners (for operators and tests).</summary>
    public async Task<IReadOnlyDictionary<ulong, (Address Builder, BigInteger Price)>> OpenDebtsAsync()
    {
        var entries = await redis.GetDatabase().HashGetAllAsync(keys.Debts);
        return entries.ToDictionary(e => ulong.Parse((string)e.Name!, CultureInfo.InvariantCulture), e =>
        {
            var parts = ((string)e.Value!).Split('|');
            return (Address.Parse(parts[0]), BigInteger.Parse(parts[1], CultureInfo.InvariantCulture));
        });
    }
}
