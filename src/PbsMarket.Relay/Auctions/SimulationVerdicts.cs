using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using PbsMarket.Core;
using PbsMarket.Relay.Api;
using PbsMarket.Relay.Infrastructure;
using StackExchange.Redis;

namespace PbsMarket.Relay.Auctions;

/// <summary>What one simulation of an optimistically accepted bid showed, as stored once in Redis.</summary>
/// <param name="Code"><c>valid</c>, a refusal code of <see cref="PbsMarket.L2.BlockSimulator"/>, or <c>unavailable</c>
/// (stored only by a close that could not simulate the bid in time: the bid then drops out, its builder not demoted).</param>
public sealed record StoredVerdict(string Code, string Message, BigInteger? Fees)
{
    public const string Valid = "valid";
    public bool IsValid => Code == Valid;
}

/// <summary>A builder demoted after a failed optimistic bid: the failure, and the slot through which the demotion holds.</summary>
public sealed record Demotion(Address Builder, ulong Slot, Hash32 HeaderHash, string Code, string Message, ulong AtMs, ulong UntilSlot);

/// <summary>
/// Optimistic simulation (docs/l2.md, "Optimistic simulation"): verdicts of bids accepted before their simulation, and
/// the builders demoted because one of their blocks failed. Both live in Redis, each verdict stored once (the first
/// stored wins and every instance reads it back), so the result of a close stays a pure function of the frozen bids and
/// their stored verdicts, whichever instance closes.
/// </summary>
public sealed class SimulationVerdicts(IConnectionMultiplexer redis, RedisKeys keys, AuctionStore store, BidSimulation simulation, Market market,
    RelayMetrics metrics, ILogger<SimulationVerdicts> log)
{
    static readonly JsonSerializerOptions Json = new(WireJson.Options) { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };
    IDatabase Db => redis.GetDatabase();

    /// <summary>Bids of builders in good standing are accepted before their simulation.</summary>
    public bool Optimistic => simulation.Enabled && market.Options.Simulation == "optimistic";

    /// <summary>Whether the close must check verdicts: every bid is simulated, some perhaps only after their receipt.</summary>
    public bool Enabled => simulation.Enabled;

    /// <summary>The stored verdicts of a slot's bids.</summary>
    public async Task<IReadOnlyDictionary<Hash32, StoredVerdict>> AllAsync(ulong slot)
    {
        var entries = await Db.HashGetAllAsync(keys.Verdicts(slot));
        var all = new Dictionary<Hash32, StoredVerdict>(entries.Length);
        foreach (var e in entries) all[Hash32.Parse((string)e.Name!)] = Parse(e.Value!);
        return all;
    }

    static StoredVerdict Parse(string json) => JsonSerializer.Deserialize<StoredVerdict>(json, Json)!;

    /// <summary>
    /// The bid's verdict: the stored one, or a simulation of its block stored once (a failure demotes its builder). Null
    /// when the node could not simulate it now and <paramref name="final"/> is false (the bid is tried again later); a
    /// final call (the close) stores <c>unavailable</c> instead, so that every instance resolves the slot alike.
    /// </summary>
    /// <param name="payload">The block's payload, or null to read it from the slot's stored payloads (each builder's latest).</param>
    public async Task<StoredVerdict?> EnsureAsync(ulong slot, Hash32 headerHash, Header header, byte[]? payload, bool final, CancellationToken ct)
    {
        var stored = await Db.HashGetAsync(keys.Verdicts(slot), headerHash.ToString());
        if (!stored.IsNull) return Parse(stored!);
        StoredVerdict verdict;
        payload ??= await store.GetPayloadAsync(slot, headerHash);
        if (payload is null)
        {
            // Only a builder's latest payload is kept, and only a latest bid can win: a missing one is a relay fault, not the builder's.
            verdict = new StoredVerdict("unavailable", "the bid's payload is no longer stored", null);
            if (!final) return null;
        }
        else if (final && ct.IsCancellationRequested)
        {
            verdict = new StoredVerdict("unavailable", $"not simulated within the close's budget of {market.Options.L2SimulationTimeoutMs} ms", null);
        }
        else
        {
            PbsMarket.L2.SimulationVerdict? simulated;
            try
            {
                simulated = await simulation.CheckAsync(header, payload, ct);
            }
            catch (OperationCanceledException) when (final && ct.IsCancellationRequested)
            {
                simulated = new(new ProtocolError("unavailable", $"not simulated within the close's budget of {market.Options.L2SimulationTimeoutMs} ms"), 0, 0, 0);
            }
            if (simulated is null) return new StoredVerdict(StoredVerdict.Valid, "", null); // not simulating at all
            if (simulated.Error is { Code: "unavailable" } && !final) return null;
            verdict = simulated.Error is { } e ? new StoredVerdict(e.Code, e.Message, null) : new StoredVerdict(StoredVerdict.Valid, "", simulated.CoinbaseGain);
        }
        var json = JsonSerializer.Serialize(verdict, Json);
        var key = keys.Verdicts(slot);
        if (await Db.HashSetAsync(key, headerHash.ToString(), json, When.NotExists))
        {
            await Db.KeyExpireAsync(key, TimeSpan.FromSeconds(market.Options.SlotTtlSeconds), ExpireWhen.HasNoExpiry);
            if (!verdict.IsValid && verdict.Code != "unavailable") await DemoteAsync(slot, headerHash, header.Builder, verdict);
            return verdict;
        }
        return Parse((await Db.HashGetAsync(key, headerHash.ToString()))!);
    }

    readonly ConcurrentDictionary<Address, ulong> _demotedUntil = new();

    /// <summary>Whether the builder's bids for <paramref name="slot"/> must be simulated before their receipt (as this instance
    /// last read the demotions, at most <see cref="RefreshMs"/> ago; an instance that demotes sees it at once).</summary>
    public bool IsDemoted(Address builder, ulong slot) => _demotedUntil.TryGetValue(builder, out var until) && slot <= until;

    public const int RefreshMs = 1000;

    async Task DemoteAsync(ulong slot, Hash32 headerHash, Address builder, StoredVerdict verdict)
    {
        var until = slot + (ulong)market.Options.DemotionSlots;
        var record = new Demotion(builder, slot, headerHash, verdict.Code, verdict.Message, (ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), until);
        _demotedUntil.AddOrUpdate(builder, until, (_, was) => Math.Max(was, until));
        // The latest failure is kept (one record per builder, so the hash is bounded by the builders with collateral).
        await Db.HashSetAsync(keys.Demotions, builder.ToString(), JsonSerializer.Serialize(record, Json));
        metrics.WhenClosed(slot, m => m.Demotions.Add(1, RelayMetrics.Tag("code", verdict.Code)));
        // Sealed: the log names no header hash or value (the bid's slot may still be open).
        log.LogWarning("builder {Builder} demoted through slot {Until}: its optimistic bid for slot {Slot} failed execution ({Code})", builder, until, slot, verdict.Code);
    }

    /// <summary>Every demotion on record (expired ones included, with their <c>until_slot</c>).</summary>
    public async Task<IReadOnlyList<Demotion>> DemotionsAsync()
    {
        var entries = await Db.HashGetAllAsync(keys.Demotions);
        return [.. entries.Select(e => JsonSerializer.Deserialize<Demotion>((string)e.Value!, Json)!).OrderByDescending(d => d.Slot)];
    }

    /// <summary>Reads the demotions of every instance into this one's view; drops records long expired.</summary>
    public async Task RefreshAsync()
    {
        var now = market.Clock.CurrentSlot;
        foreach (var d in await DemotionsAsync())
        {
            if (d.UntilSlot + (ulong)market.Options.DemotionSlots < now) await Db.HashDeleteAsync(keys.Demotions, d.Builder.ToString());
            _demotedUntil.AddOrUpdate(d.Builder, d.UntilSlot, (_, was) => Math.Max(was, d.UntilSlot));
        }
        foreach (var (builder, until) in _demotedUntil)
            if (until < now) _demotedUntil.TryRemove(KeyValuePair.Create(builder, until));
    }
}

/// <summary>
/// Simulates the leading optimistic bids while their auction is open, best value first, so that the close finds their
/// verdicts stored and serving stays fast. Holds only each builder's latest bid of the open auctions this instance accepted.
/// </summary>
public sealed class SimulationPrefetcher(SimulationVerdicts verdicts, Market market, ILogger<SimulationPrefetcher> log) : BackgroundService
{
    sealed record Pending(ulong Slot, Hash32 HeaderHash, Header Header, byte[] Payload, long Sequence);

    readonly Lock _gate = new();
    readonly Dictionary<(ulong Slot, Address Builder), Pending> _pending = [];
    readonly SemaphoreSlim _signal = new(0);

    /// <summary>Pending bids, for tests and the benchmark.</summary>
    public int Count { get { lock (_gate) return _pending.Count; } }

    /// <summary>An optimistic bid was accepted: it replaces its builder's earlier pending bid of the slot (a replaced bid never wins).</summary>
    public void Offer(ulong slot, Hash32 headerHash, Header header, byte[] payload, long sequence)
    {
        lock (_gate)
        {
            var key = (slot, header.Builder);
            if (_pending.TryGetValue(key, out var was) && was.Sequence > sequence) return;
            _pending[key] = new Pending(slot, headerHash, header, payload, sequence);
        }
        _signal.Release();
    }

    Pending? Next()
    {
        var open = market.Clock.OpenAuctionSlot(market.Clock.NowMs) ?? market.Clock.CurrentSlot + 1;
        lock (_gate)
        {
            Pending? best = null;
            List<(ulong, Address)>? stale = null;
            foreach (var (key, p) in _pending)
            {
                // A closed auction's bids are the close's to simulate.
                if (p.Slot < open) { (stale ??= []).Add(key); continue; }
                if (best is null || p.Slot < best.Slot || (p.Slot == best.Slot && p.Header.Value > best.Header.Value)) best = p;
            }
            foreach (var key in stale ?? []) _pending.Remove(key);
            if (best is not null) _pending.Remove((best.Slot, best.Header.Builder));
            return best;
        }
    }

    protected override async Task ExecuteAsync(CancellationToken ct)
    {
        if (!verdicts.Optimistic) return;
        var lastRefresh = 0L;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                if (Environment.TickCount64 - lastRefresh >= SimulationVerdicts.RefreshMs)
                {
                    await verdicts.RefreshAsync();
                    lastRefresh = Environment.TickCount64;
                }
                while (Next() is { } p && !ct.IsCancellationRequested)
                    await verdicts.EnsureAsync(p.Slot, p.HeaderHash, p.Header, p.Payload, final: false, ct);
                await _signal.WaitAsync(SimulationVerdicts.RefreshMs, ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // A failure (Redis, the node) skips that bid: the close simulates whatever has no verdict.
                log.LogWarning("simulation prefetch paused: {Type}: {Error}", e.GetType().Name, e.Message);
                try { await Task.Delay(200, ct); } catch (OperationCanceledException) { return; }
            }
        }
    }
}
