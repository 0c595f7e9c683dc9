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
    /// <summary>The block failed execution (the builder's fault, which demotes it): neither valid nor unavailable.</summary>
    public bool IsFailure => !IsValid && Code != "unavailable";
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

    /// <summary>Whether this instance simulates bids at all (Relay:L2Rpc).</summary>
    public bool Enabled => simulation.Enabled;

    /// <summary>Whether a bid may skip its simulation before the receipt: optimistic mode, a builder not demoted, and a block
    /// light enough for the close to simulate it in time (<see cref="RelayOptions.OptimisticMaxGasUsed"/>). A late one
    /// (<see cref="IsLate"/>) is still simulated first when the node can answer before the close (<see cref="CheckLateAsync"/>).</summary>
    public bool MayAcceptUnsimulated(Header h) =>
        Optimistic && h.GasUsed <= (ulong)market.Options.OptimisticMaxGasUsed && !IsDemoted(h.Builder, h.Slot);

    /// <summary>Whether the bid arrives with too little time left for the prefetch to simulate it during the auction
    /// (<see cref="RelayOptions.OptimisticCutoffMs"/>).</summary>
    public bool IsLate(Header h) => market.Clock.NowMs + (ulong)market.Options.OptimisticCutoffMs >= market.Clock.AuctionClosesMs(h.Slot);

    /// <summary>
    /// A late optimistic bid: simulated now, before its receipt, so that the close need not simulate it while the proposer
    /// waits. Null when the node cannot answer before the auction closes (busy, slow, down, or loaded by whoever wants this
    /// bid out): the bid is then taken optimistically, exactly as it would have been earlier in the auction, and the close
    /// checks it (or leaves the slot without a winner). Refusing it instead would let anyone who can slow the node keep
    /// better last-moment bids out, and a lower one win.
    /// </summary>
    public async Task<PbsMarket.L2.SimulationVerdict?> CheckLateAsync(Header h, byte[] payload, CancellationToken ct)
    {
        var left = (long)market.Clock.AuctionClosesMs(h.Slot) - (long)market.Clock.NowMs;
        if (left <= 0) return null; // the atomic step refuses it as closed
        using var untilClose = CancellationTokenSource.CreateLinkedTokenSource(ct);
        untilClose.CancelAfter(TimeSpan.FromMilliseconds(left));
        try
        {
            var verdict = await simulation.CheckAsync(h, payload, untilClose.Token);
            return verdict?.Error?.Code == "unavailable" ? null : verdict;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return null;
        }
    }

    /// <summary>The stored verdicts of a slot's bids.</summary>
    public async Task<IReadOnlyDictionary<Hash32, StoredVerdict>> AllAsync(ulong slot)
    {
        var entries = await Db.HashGetAllAsync(keys.Verdicts(slot));
        var all = new Dictionary<Hash32, StoredVerdict>(entries.Length);
        foreach (var e in entries) all[Hash32.Parse((string)e.Name!)] = Parse(e.Value!);
        return all;
    }

    static StoredVerdict Parse(string json) => JsonSerializer.Deserialize<StoredVerdict>(json, Json)!;

    /// <summary>A verdict stored by another instance (or an earlier call): a failure demotes its builder here too at once,
    /// not only at the next refresh of the demotions.</summary>
    StoredVerdict ReadBack(ulong slot, Address builder, string json)
    {
        var v = Parse(json);
        if (v.IsFailure) DemotedThrough(builder, slot + (ulong)market.Options.DemotionSlots);
        return v;
    }

    /// <summary>
    /// The bid's verdict: the stored one, or a simulation of its block stored once (a failure demotes its builder). Null
    /// when the node could not simulate it now and <paramref name="final"/> is false (the bid is tried again later); a
    /// final call (the close) stores <c>unavailable</c> instead (also when this instance does not simulate at all, or the
    /// close's budget <paramref name="ct"/> ran out), so that every instance resolves the slot alike.
    /// </summary>
    /// <param name="payload">The block's payload, or null to read it from the slot's stored payloads (each builder's latest).</param>
    public async Task<StoredVerdict?> EnsureAsync(ulong slot, Hash32 headerHash, Header header, byte[]? payload, bool final, CancellationToken ct)
    {
        var key = keys.Verdicts(slot);
        var field = headerHash.ToString();
        var stored = await Db.HashGetAsync(key, field);
        if (!stored.IsNull) return ReadBack(slot, header.Builder, stored!);
        StoredVerdict? verdict = null;
        if (!simulation.Enabled) verdict = new StoredVerdict("unavailable", "this relay instance does not simulate bids (Relay:L2Rpc is not set)", null);
        else if (final && ct.IsCancellationRequested) verdict = OverBudget();
        var claimed = false;
        if (verdict is null && final)
        {
            // Another instance's close may be simulating this block now: wait for its verdict within the budget, claiming it
            // again on every poll (a claimer that failed lets the claim go, and then it is this close's).
            while (!(claimed = await ClaimCloseAsync(slot, headerHash)))
            {
                if (ct.IsCancellationRequested) { verdict = OverBudget(); break; }
                try { await Task.Delay(ClaimPollMs, ct); } catch (OperationCanceledException) { }
                stored = await Db.HashGetAsync(key, field);
                if (!stored.IsNull) return ReadBack(slot, header.Builder, stored!);
            }
        }
        try
        {
            if (verdict is null)
            {
                payload ??= await store.GetPayloadAsync(slot, headerHash);
                // Only a builder's latest payload is kept, and only a latest bid can win: a missing one is a relay fault, not the builder's.
                if (payload is null) verdict = new StoredVerdict("unavailable", "the bid's payload is no longer stored", null);
            }
            if (verdict is null)
            {
                PbsMarket.L2.SimulationVerdict? simulated;
                try
                {
                    simulated = await simulation.CheckAsync(header, payload!, ct, priority: final);
                }
                catch (OperationCanceledException) when (final && ct.IsCancellationRequested)
                {
                    simulated = null;
                }
                if (simulated is null) verdict = OverBudget();
                else verdict = simulated.Error is { } e ? new StoredVerdict(e.Code, e.Message, null) : new StoredVerdict(StoredVerdict.Valid, "", simulated.CoinbaseGain);
            }
            if (verdict.Code == "unavailable" && !final) return null;
            // A failure demotes before it is stored: a crash in between leaves a demotion and no verdict (the next reader
            // simulates again and finds the same), never a stored failure nobody demoted for.
            if (verdict.IsFailure) await DemoteAsync(slot, headerHash, header.Builder, verdict);
            if (await Db.HashSetAsync(key, field, JsonSerializer.Serialize(verdict, Json), When.NotExists))
            {
                await Db.KeyExpireAsync(key, TimeSpan.FromSeconds(market.Options.SlotTtlSeconds), ExpireWhen.HasNoExpiry);
                return verdict;
            }
            return ReadBack(slot, header.Builder, (await Db.HashGetAsync(key, field))!);
        }
        catch when (claimed)
        {
            // Failed without a verdict (Redis, the node): the claim goes at once, so another close (or this one's retry) may try.
            try { await Db.ScriptEvaluateAsync(DeleteClaimIfOurs, new { key = keys.VerdictClaim(slot, field), value = _instance }); }
            catch (RedisException) { } // it expires by itself
            throw;
        }
    }

    const int ClaimPollMs = 5;

    /// <summary>Claims a close's simulation of a bid's block for this instance (true also when this instance already holds
    /// it). Every instance closes each slot (its scheduler, proposers' requests), and all share the L2 node: without the
    /// claim each would simulate the same block in the priority lane, one after the other, while the proposer waits. The
    /// others read the claimer's stored verdict. (The prefetch needs no claim: a bid is accepted, and so offered to a
    /// prefetcher, by one instance only.) A claim lives as long as a simulation may take (a claimer that fails lets it go at
    /// once; one that dies costs that slot its winner, as any check the close cannot get in time does).</summary>
    async Task<bool> ClaimCloseAsync(ulong slot, Hash32 headerHash)
    {
        var claim = keys.VerdictClaim(slot, headerHash.ToString());
        return await Db.StringSetAsync(claim, _instance, TimeSpan.FromMilliseconds(market.Options.L2SimulationTimeoutMs + 500), When.NotExists)
            || await Db.StringGetAsync(claim) == _instance;
    }

    readonly string _instance = Guid.NewGuid().ToString("N");

    static readonly LuaScript DeleteClaimIfOurs = LuaScript.Prepare("""
        if redis.call('GET', @key) == @value then return redis.call('DEL', @key) end
        return 0
        """);

    StoredVerdict OverBudget() => new("unavailable", $"not simulated within the close's budget of {CloseBudgetMs} ms", null);

    /// <summary>What the close may spend on the simulations it needs: until the slot starts (the proposer's header is due),
    /// at most <see cref="RelayOptions.L2SimulationTimeoutMs"/>, at least 50 ms.</summary>
    public int CloseBudgetMs => (int)Math.Max(50, Math.Min(market.Options.L2SimulationTimeoutMs, market.Options.CloseOffsetMs));

    readonly ConcurrentDictionary<Address, ulong> _demotedUntil = new();

    /// <summary>Whether the builder's bids for <paramref name="slot"/> must be simulated before their receipt (as this instance
    /// last read the demotions, at most <see cref="RefreshMs"/> ago; an instance that demotes sees it at once).</summary>
    public bool IsDemoted(Address builder, ulong slot) => _demotedUntil.TryGetValue(builder, out var until) && slot <= until;

    public const int RefreshMs = 1000;

    /// <summary>This instance's view: the builder is demoted through <paramref name="until"/> (the latest of its demotions).</summary>
    void DemotedThrough(Address builder, ulong until) => _demotedUntil.AddOrUpdate(builder, until, (_, was) => Math.Max(was, until));

    async Task DemoteAsync(ulong slot, Hash32 headerHash, Address builder, StoredVerdict verdict)
    {
        var until = slot + (ulong)market.Options.DemotionSlots;
        var record = new Demotion(builder, slot, headerHash, verdict.Code, verdict.Message, (ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), until);
        DemotedThrough(builder, until);
        // One record per builder and failing slot (a demoted builder cannot fail optimistically again until it expires, so
        // this is bounded by the funded builders); the first record of a slot stays.
        if (await Db.HashSetAsync(keys.Demotions, $"{builder}|{slot}", JsonSerializer.Serialize(record, Json), When.NotExists))
        {
            metrics.WhenClosed(slot, m => m.Demotions.Add(1, RelayMetrics.Tag("code", verdict.Code)));
            // Sealed: the log names no header hash or value (the bid's slot may still be open).
            log.LogWarning("builder {Builder} demoted through slot {Until}: its optimistic bid for slot {Slot} failed execution ({Code})", builder, until, slot, verdict.Code);
        }
    }

    /// <summary>Every demotion on record (expired ones too, until pruned), newest slot first.</summary>
    public async Task<IReadOnlyList<Demotion>> DemotionsAsync()
    {
        var entries = await Db.HashGetAllAsync(keys.Demotions);
        return [.. entries.Select(e => JsonSerializer.Deserialize<Demotion>((string)e.Value!, Json)!).OrderByDescending(d => d.Slot)];
    }

    static readonly LuaScript DeleteIfSame = LuaScript.Prepare("""
        if redis.call('HGET', @key, @field) == @value then return redis.call('HDEL', @key, @field) end
        return 0
        """);

    /// <summary>Reads the demotions of every instance into this one's view; prunes records expired for another
    /// <see cref="RelayOptions.DemotionSlots"/> slots (only the record read: never one written since).</summary>
    public async Task RefreshAsync()
    {
        var now = market.Clock.CurrentSlot;
        foreach (var e in await Db.HashGetAllAsync(keys.Demotions))
        {
            var d = JsonSerializer.Deserialize<Demotion>((string)e.Value!, Json)!;
            if (d.UntilSlot + (ulong)market.Options.DemotionSlots < now)
                await Db.ScriptEvaluateAsync(DeleteIfSame, new { key = keys.Demotions, field = (string)e.Name!, value = (string)e.Value! });
            DemotedThrough(d.Builder, d.UntilSlot);
        }
        foreach (var (builder, until) in _demotedUntil)
            if (until < now) _demotedUntil.TryRemove(KeyValuePair.Create(builder, until));
    }
}

/// <summary>
/// Simulates the optimistic bids of the open auction while it is open, so that the close finds their verdicts stored and
/// serving stays fast: each builder's latest bid only (a replaced bid never wins), the builder simulated least often in
/// the slot first and among those the highest value (one builder re-bidding cannot keep the leaders waiting). A bid the
/// node could not simulate yet (its parent not executed, busy) is tried again while the auction is open.
/// </summary>
public sealed class SimulationPrefetcher(SimulationVerdicts verdicts, Market market, ILogger<SimulationPrefetcher> log) : BackgroundService
{
    sealed record Pending(ulong Slot, Hash32 HeaderHash, Header Header, byte[] Payload, long Sequence)
    {
        public long NotBeforeMs { get; init; }
    }

    readonly Lock _gate = new();
    readonly Dictionary<(ulong Slot, Address Builder), Pending> _pending = [];
    readonly Dictionary<(ulong Slot, Address Builder), int> _runs = [];
    readonly SemaphoreSlim _signal = new(0);
    const int RetryMs = 50;

    /// <summary>Pending bids, for tests and the benchmark.</summary>
    public int Count { get { lock (_gate) return _pending.Count; } }

    /// <summary>An optimistic bid was accepted: it replaces its builder's earlier pending bid of the slot.</summary>
    public void Offer(ulong slot, Hash32 headerHash, Header header, byte[] payload, long sequence)
    {
        lock (_gate)
        {
            var key = (slot, header.Builder);
            if (_pending.TryGetValue(key, out var was) && was.Sequence > sequence) return;
            _pending[key] = new Pending(slot, headerHash, header, payload, sequence);
        }
        Wake();
    }

    // A wake-up, not a count: at most a few wait (a count would grow with every bid the worker did not wait for).
    void Wake()
    {
        if (_signal.CurrentCount == 0) _signal.Release();
    }

    /// <summary>The next bid to simulate, and how long until one is due when none is now.</summary>
    (Pending? Next, int WaitMs) Take()
    {
        var now = market.Clock.NowMs;
        var tick = Environment.TickCount64;
        lock (_gate)
        {
            Pending? best = null;
            var bestRuns = 0;
            var wait = SimulationVerdicts.RefreshMs;
            List<(ulong, Address)>? stale = null;
            foreach (var (key, p) in _pending)
            {
                // A closed auction's bids are the close's to simulate (it goes ahead of everything on the node).
                if (!market.Clock.IsAuctionOpen(p.Slot, now)) { (stale ??= []).Add(key); continue; }
                if (p.NotBeforeMs > tick) { wait = (int)Math.Min(wait, p.NotBeforeMs - tick); continue; }
                var runs = _runs.GetValueOrDefault(key);
                if (best is null || runs < bestRuns || (runs == bestRuns && p.Header.Value > best.Header.Value)) (best, bestRuns) = (p, runs);
            }
            foreach (var key in stale ?? []) _pending.Remove(key);
            foreach (var key in _runs.Keys.Where(k => !market.Clock.IsAuctionOpen(k.Slot, now)).ToList()) _runs.Remove(key);
            if (best is null) return (null, wait);
            var bestKey = (best.Slot, best.Header.Builder);
            _pending.Remove(bestKey);
            _runs[bestKey] = bestRuns + 1;
            return (best, 0);
        }
    }

    void Retry(Pending p)
    {
        lock (_gate)
        {
            var key = (p.Slot, p.Header.Builder);
            if (_pending.ContainsKey(key)) return; // replaced by a later bid meanwhile
            _pending[key] = p with { NotBeforeMs = Environment.TickCount64 + RetryMs };
        }
    }

    protected override Task ExecuteAsync(CancellationToken ct) =>
        !verdicts.Optimistic ? Task.CompletedTask : Task.WhenAll(RefreshLoopAsync(ct), SimulateLoopAsync(ct));

    async Task RefreshLoopAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await verdicts.RefreshAsync();
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                log.LogWarning("reading the demotions failed: {Type}: {Error}", e.GetType().Name, e.Message);
            }
            try { await Task.Delay(SimulationVerdicts.RefreshMs, ct); } catch (OperationCanceledException) { return; }
        }
    }

    async Task SimulateLoopAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                var (p, wait) = Take();
                if (p is null)
                {
                    await _signal.WaitAsync(wait, ct);
                    continue;
                }
                if (await verdicts.EnsureAsync(p.Slot, p.HeaderHash, p.Header, p.Payload, final: false, ct) is null) Retry(p);
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
