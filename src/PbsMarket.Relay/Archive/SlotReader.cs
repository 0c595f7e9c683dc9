using System.Globalization;
using System.Text.Json;
using Npgsql;
using PbsMarket.Core;
using PbsMarket.Relay.Api;
using PbsMarket.Relay.Auctions;
using StackExchange.Redis;

namespace PbsMarket.Relay.Archive;

/// <summary>
/// Reads slots for the data API: recent ones from Redis, older ones from PostgreSQL. An auction that
/// is still open is shown only as open (proposer, close time, head): never anything about its bids.
/// </summary>
public sealed class SlotReader(AuctionStore store, ResultService results, Market market, NpgsqlDataSource db, IConnectionMultiplexer redis)
{
    /// <summary>Serialized answers of large closed slots, by slot and the fields that still change (status, proposal, L1
    /// transaction): a slot with thousands of bids read again and again is serialized once per state, not per read.</summary>
    readonly System.Collections.Concurrent.ConcurrentDictionary<(ulong Slot, string? Status, Hash32? Proposed, string? L1Tx), byte[]> _json = new();
    const int JsonCacheEntries = 16, JsonCacheMinBids = 256;

    /// <summary>The slot as the data API answers it (UTF-8 JSON), or null when this relay never had it.</summary>
    public async Task<byte[]?> GetJsonAsync(ulong slot, CancellationToken ct) =>
        await GetAsync(slot, ct) is { } view ? Serialized(view) : null;

    /// <summary>A slot's JSON; a large closed slot's from the cache (list pages and single reads share it).</summary>
    public byte[] Serialized(object view)
    {
        if (view is not SlotView { Bids.Count: >= JsonCacheMinBids } big) return JsonSerializer.SerializeToUtf8Bytes(view, view.GetType(), WireJson.Options);
        var key = (big.Slot, big.Status, big.ProposedHeaderHash, big.L1TxHash);
        if (_json.TryGetValue(key, out var bytes)) return bytes;
        bytes = JsonSerializer.SerializeToUtf8Bytes(big, WireJson.Options);
        if (_json.Count >= JsonCacheEntries) _json.Clear(); // small and rebuilt on demand: no LRU bookkeeping needed
        _json[key] = bytes;
        return bytes;
    }

    public async Task<object?> GetAsync(ulong slot, CancellationToken ct)
    {
        if (IsRecent(slot) && await FromRedisAsync(slot, ct) is { } recent) return recent;
        return await FromPostgresAsync(slot, ct);
    }

    bool IsRecent(ulong slot) => slot + (ulong)market.Options.RecentSlots >= market.Clock.CurrentSlot;

    async Task<object?> FromRedisAsync(ulong slot, CancellationToken ct)
    {
        var auction = await store.GetAuctionAsync(slot);
        if (auction is null) return null;
        if (market.Clock.NowMs < auction.ClosesAtMs)
            return new OpenSlotView(slot, auction.Proposer, "open", auction.Parent, auction.Number, auction.ClosesAtMs);
        var view = await ClosedViewAsync(slot, ct);
        if (view is null)
            return new OpenSlotView(slot, auction.Proposer, "open", auction.Parent, auction.Number, auction.ClosesAtMs);
        var proposal = await store.GetProposalAsync(slot);
        var missed = await redis.GetDatabase().HashGetAsync(store.Keys.Auction(slot), "missed");
        var status = proposal?.L1TxHash is not null ? "posted" : proposal is not null ? "proposed" : !missed.IsNull ? "missed" : "closed";
        return view with
        {
            Status = status,
            ProposedHeaderHash = proposal?.HeaderHash,
            L1TxHash = proposal?.L1TxHash,
            MissedReason = status == "missed" ? (string?)missed : null,
        };
    }

    /// <summary>How many of the newest closed slots are kept parsed in memory.</summary>
    const int CachedSlots = 64;
    readonly System.Collections.Concurrent.ConcurrentDictionary<ulong, SlotView> _closed = new();

    /// <summary>
    /// A closed slot's result (with its bids). A stored result never changes, so the newest are kept parsed: a page of
    /// recent slots costs a few small Redis reads per slot, not the close script and every bid of each slot again
    /// (which let a few list requests a second stall the relay). Only a slot nobody has closed yet is closed here.
    /// </summary>
    async Task<SlotView?> ClosedViewAsync(ulong slot, CancellationToken ct)
    {
        if (_closed.TryGetValue(slot, out var cached)) return cached;
        // The result and its bid list are stored apart (ResultService): the result first, so that proposers have it sooner.
        var json = await store.GetResultJsonAsync(slot) ?? (await results.EnsureClosedAsync(slot))?.ResultJson;
        if (json is null) return null;
        var view = JsonSerializer.Deserialize<SlotView>(json, WireJson.Options)!;
        if (await results.BidListAsync(slot, view.ClosedAtMs ?? 0, ct) is not { } list) return null;
        view = view with { Bids = JsonSerializer.Deserialize<List<BidView>>(list, WireJson.Options) };
        var current = market.Clock.CurrentSlot;
        if (slot + CachedSlots >= current)
        {
            _closed[slot] = view;
            foreach (var old in _closed.Keys) if (old + CachedSlots < current) _closed.TryRemove(old, out _);
        }
        return view;
    }

    /// <summary>A list page stops adding slots once it holds this many bids (a page may be short and still have a next
    /// cursor): one request's work and answer stay bounded however large the slots are.</summary>
    int MaxBidsPerPage => market.Options.MaxBidsPerDataPage;

    const string SlotColumns = """
        s.slot, s.proposer, s.parent_hash, s.number, s.closes_at_ms, s.closed_at_ms, s.winner_hash, s.winner_builder,
        s.winner_value::text, s.price::text, s.bids_root, s.bid_count, s.relay_signature, s.proposed_header_hash, s.l1_tx_hash
        """;

    async Task<SlotView?> FromPostgresAsync(ulong slot, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var cmd = new NpgsqlCommand($"SELECT {SlotColumns} FROM slots s WHERE s.slot = $1", conn) { Parameters = { new() { Value = (long)slot } } };
        SlotView? view;
        await using (var r = await cmd.ExecuteReaderAsync(ct))
        {
            if (!await r.ReadAsync(ct)) return null;
            view = ReadSlot(r);
        }
        var bids = await ReadBidsAsync(conn, [slot], ct);
        return view with { Bids = bids.GetValueOrDefault(slot, []) };
    }

    static SlotView ReadSlot(NpgsqlDataReader r)
    {
        var proposed = r.IsDBNull(13) ? (Hash32?)null : Hash32.Parse(r.GetString(13));
        var l1 = r.IsDBNull(14) ? null : r.GetString(14);
        return new SlotView
        {
            Slot = (ulong)r.GetInt64(0),
            Proposer = Address.Parse(r.GetString(1)),
            Status = l1 is not null ? "posted" : proposed is not null ? "proposed" : "missed",
            ParentHash = Hash32.Parse(r.GetString(2)),
            Number = (ulong)r.GetInt64(3),
            ClosesAtMs = (ulong)r.GetInt64(4),
            ClosedAtMs = (ulong)r.GetInt64(5),
            Winner = r.IsDBNull(6) ? null : new WinnerView(Hash32.Parse(r.GetString(6)), Address.Parse(r.GetString(7)), BigInteger.Parse(r.GetString(8), CultureInfo.InvariantCulture)),
            Price = BigInteger.Parse(r.GetString(9), CultureInfo.InvariantCulture),
            BidsRoot = Hash32.Parse(r.GetString(10)),
            BidCount = (uint)r.GetInt32(11),
            RelaySignature = r.GetString(12),
            ProposedHeaderHash = proposed,
            L1TxHash = l1,
        };
    }

    static async Task<Dictionary<ulong, List<BidView>>> ReadBidsAsync(NpgsqlConnection conn, ulong[] slots, CancellationToken ct)
    {
        var result = new Dictionary<ulong, List<BidView>>();
        await using var cmd = new NpgsqlCommand("""
            SELECT slot, header_hash, builder, value::text, gas_used, tx_count, received_at_ms, record->>'fees', record->>'simulation'
            FROM bids WHERE slot = ANY($1) ORDER BY slot, sequence
            """, conn) { Parameters = { new() { Value = slots.Select(s => (long)s).ToArray() } } };
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
        {
            var slot = (ulong)r.GetInt64(0);
            if (!result.TryGetValue(slot, out var list)) result[slot] = list = [];
            list.Add(new BidView(Hash32.Parse(r.GetString(1)), Address.Parse(r.GetString(2)), BigInteger.Parse(r.GetString(3), CultureInfo.InvariantCulture),
                (ulong)r.GetInt64(4), r.GetInt32(5), (ulong)r.GetInt64(6), r.IsDBNull(7) ? null : BigInteger.Parse(r.GetString(7), CultureInfo.InvariantCulture),
                r.IsDBNull(8) ? null : r.GetString(8)));
        }
        return result;
    }

    /// <summary>
    /// Slots below <paramref name="before"/>, newest first. Bounded work: at most <paramref name="limit"/> slot
    /// numbers are looked up in Redis (a slot with no auction there still counts, so a page may be short and still
    /// have a next cursor) and one PostgreSQL query; cancelled when the client leaves.
    /// </summary>
    public async Task<(List<object> Slots, ulong? Next)> ListAsync(ulong before, int limit, CancellationToken ct)
    {
        var slots = new List<object>();
        var cursor = before;
        var budget = limit;
        var bids = 0;
        // Recent slots from Redis, one by one (each is a few small reads).
        while (budget > 0 && cursor > 0 && IsRecent(cursor - 1))
        {
            ct.ThrowIfCancellationRequested();
            cursor--;
            budget--;
            var view = await FromRedisAsync(cursor, ct);
            if (view is null) continue;
            slots.Add(view);
            bids += view is SlotView { Bids: { } b } ? b.Count : 0;
            if (bids >= MaxBidsPerPage) return (slots, cursor > 0 ? cursor : null);
        }
        if (budget == 0) return (slots, cursor > 0 ? cursor : null);
        if (cursor > 0)
        {
            await using var conn = await db.OpenConnectionAsync(ct);
            var older = new List<SlotView>();
            await using (var cmd = new NpgsqlCommand($"SELECT {SlotColumns} FROM slots s WHERE s.slot < $1 ORDER BY s.slot DESC LIMIT $2", conn)
                         { Parameters = { new() { Value = (long)cursor }, new() { Value = limit - slots.Count } } })
            await using (var r = await cmd.ExecuteReaderAsync(ct))
                while (await r.ReadAsync(ct)) older.Add(ReadSlot(r));
            // The same bid budget, from the archived counts before any bid is read.
            var full = older.Count == limit - slots.Count;
            var kept = 0;
            while (kept < older.Count && (slots.Count + kept == 0 || bids + (int)(older[kept].BidCount ?? 0) <= MaxBidsPerPage))
                bids += (int)(older[kept++].BidCount ?? 0);
            if (kept < older.Count)
            {
                older.RemoveRange(kept, older.Count - kept);
                full = true;
            }
            if (older.Count == 0) return (slots, full ? cursor : null); // the next archived slot alone passes the budget: next page
            var archived = await ReadBidsAsync(conn, older.Select(s => s.Slot).ToArray(), ct);
            slots.AddRange(older.Select(s => s with { Bids = archived.GetValueOrDefault(s.Slot, []) }));
            cursor = older.Count > 0 ? older[^1].Slot : 0;
            if (!full) cursor = 0;
            return (slots, cursor > 0 ? cursor : null);
        }
        return (slots, slots.Count == limit && cursor > 0 ? cursor : null);
    }

    public async Task<List<BuilderStanding>> BuildersAsync(CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var cmd = new NpgsqlCommand("""
            WITH b AS (SELECT builder, count(*) AS bids, count(DISTINCT slot) AS slots_bid, avg(value) AS avg_bid, max(value) AS max_bid FROM bids GROUP BY builder),
                 w AS (SELECT winner_builder AS builder, count(*) AS wins, sum(price) AS paid FROM slots WHERE winner_builder IS NOT NULL GROUP BY winner_builder)
            SELECT b.builder, b.bids, b.slots_bid, coalesce(w.wins, 0), coalesce(w.paid, 0)::text, round(b.avg_bid)::text, b.max_bid::text
            FROM b LEFT JOIN w ON w.builder = b.builder ORDER BY coalesce(w.wins, 0) DESC, b.builder
            """, conn);
        var list = new List<BuilderStanding>();
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
        {
            var slotsBid = r.GetInt64(2);
            var wins = r.GetInt64(3);
            list.Add(new BuilderStanding(Address.Parse(r.GetString(0)), (ulong)r.GetInt64(1), (ulong)slotsBid, (ulong)wins,
                slotsBid == 0 ? "0" : (wins / (double)slotsBid).ToString("0.####", CultureInfo.InvariantCulture),
                BigInteger.Parse(r.GetString(4), CultureInfo.InvariantCulture), BigInteger.Parse(r.GetString(5), CultureInfo.InvariantCulture),
                BigInteger.Parse(r.GetString(6), CultureInfo.InvariantCulture)));
        }
        return list;
    }

    public async Task<Dictionary<Address, ProposerRecord>> ProposerRecordsAsync(CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var cmd = new NpgsqlCommand("""
            SELECT proposer, count(*), count(proposed_header_hash), count(l1_tx_hash), coalesce(sum(price) FILTER (WHERE proposed_header_hash IS NOT NULL), 0)::text
            FROM slots GROUP BY proposer
            """, conn);
        var map = new Dictionary<Address, ProposerRecord>();
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
            map[Address.Parse(r.GetString(0))] = new ProposerRecord((ulong)r.GetInt64(1), (ulong)r.GetInt64(2), (ulong)r.GetInt64(3),
                (ulong)(r.GetInt64(1) - r.GetInt64(2)), BigInteger.Parse(r.GetString(4), CultureInfo.InvariantCulture));
        return map;
    }
}

public sealed record BuilderStanding(Address Builder, ulong Bids, ulong SlotsBid, ulong Wins, string WinRate, BigInteger TotalPaid, BigInteger AverageBid, BigInteger MaxBid);
public sealed record ProposerRecord(ulong SlotsLed, ulong Proposed, ulong Posted, ulong Missed, BigInteger Earned);
