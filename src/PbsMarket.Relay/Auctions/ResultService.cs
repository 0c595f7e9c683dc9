using System.Text.Json;
using PbsMarket.Core;
using PbsMarket.Relay.Api;
using PbsMarket.Relay.Archive;
using PbsMarket.Relay.Infrastructure;
using StackExchange.Redis;

namespace PbsMarket.Relay.Auctions;

/// <summary>
/// Closes auctions and computes their results. Any instance may close a slot; the close script runs
/// once, the result is a pure function of the frozen bids (and deterministic signatures), and the
/// first instance to store it wins, so every instance serves the same result.
/// </summary>
public sealed class ResultService(
    AuctionStore store, Market market, RelayKey key, DebtLedger ledger, ArchiveQueue archive,
    EventHub events, RelayMetrics metrics, SimulationVerdicts verdicts, ILogger<ResultService> log)
{
    /// <summary>A closed slot: its result as stored (<paramref name="ResultJson"/>; the view without its bid list, which
    /// <see cref="BidListAsync"/> serves), the frozen bids, the winner.</summary>
    public sealed record Closed(SlotView View, IReadOnlyList<StoredBid> Bids, StoredBid? Winner, string ResultJson);

    /// <summary>The slot's result, closing the auction first if its time has come; null if it is still open or absent.</summary>
    public async Task<Closed?> EnsureClosedAsync(ulong slot)
    {
        // A closed slot's result never changes: once this instance has it, it is served from memory, as long as Redis
        // still holds the same result (one small read: a failover that lost it makes this instance close again, not
        // serve a result nobody else can see), and its debt is booked again (idempotent: a booking lost to a crash or a
        // failover heals at the next reader, as DebtLedger promises).
        if (_closed.TryGetValue(slot, out var known))
        {
            if (await store.GetResultJsonAsync(slot) == known.ResultJson) return await BookAsync(known);
            _closed.TryRemove(KeyValuePair.Create(slot, known));
        }
        // One close per slot on this instance however many callers arrive at once (proposers polling every few ms, bids
        // booking the previous slot, the scheduler, the data API), from the freeze on: the frozen bids are assembled once,
        // the close's simulations run once and its budget is spent once, and its result is built, signed and stored once;
        // every caller gets it as soon as it is stored. Not yet closable (or no auction): null, and the next caller tries.
        var closing = _closing.GetOrAdd(slot, _ => new Lazy<Task<Closed?>>(() => Task.Run(() => CloseAsync(slot))));
        try
        {
            return await closing.Value;
        }
        finally
        {
            _closing.TryRemove(KeyValuePair.Create(slot, closing)); // done (or failed): later callers find the stored result
        }
    }

    async Task<Closed?> CloseAsync(ulong slot)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var outcome = await store.CloseAsync(slot);
        if (outcome is not AuctionStore.ClosedAuction closed) return null;
        var read = System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        var existing = await store.GetResultJsonAsync(slot);
        if (existing is not null) return Remember(await BookAsync(Rehydrate(existing, closed)));
        return await CloseAndStoreAsync(slot, closed, started, read);
    }

    async Task<Closed> CloseAndStoreAsync(ulong slot, AuctionStore.ClosedAuction closed, long started, double read)
    {
        var gcBefore = (GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2), GC.GetTotalPauseDuration());
        var cpuBefore = Environment.CpuUsage.TotalTime;
        var (result, bids) = await ResolveExecutedAsync(slot, closed);
        var resolvedMs = System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        closed = closed with { Bids = bids };
        var tree = BidsMerkle.TreeOfLeaves(closed.Bids.Select(b => b.Leaf));
        var root = tree.Length == 0 ? Hash32.Zero : tree[0];
        var rootMs = System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        var winner = result.Winner is { } w ? closed.Bids.First(b => b.HeaderHash == w.HeaderHash) : null;
        var auctionResult = new AuctionResult(slot, winner?.HeaderHash ?? Hash32.Zero, result.Price, root, (uint)closed.Bids.Count);
        var signature = key.Key.Sign(Eip712.Digest(market.Domain, auctionResult));
        // Second price above the reserve: L1 checks the price against the runner-up's own signed header in the root.
        RunnerUpView? runnerUp = null;
        if (result.RunnerUp(market.PriceRule, market.Reserve) is { } r)
        {
            var bid = closed.Bids.First(b => b.HeaderHash == r.HeaderHash);
            var proof = BidsMerkle.ProofFromTree(tree, bid.Leaf)!;
            runnerUp = RunnerUpView.From(new RunnerUpEvidence(bid.Header.GasLimit, bid.Header.GasUsed, bid.Header.PayloadHash, bid.Header.Builder,
                bid.ReceivedAtMs, bid.Signature, proof));
        }

        var view = new SlotView
        {
            Slot = slot,
            Proposer = closed.Proposer,
            Status = "closed",
            ParentHash = closed.Parent,
            Number = closed.Number,
            ClosesAtMs = market.Clock.AuctionClosesMs(slot),
            ClosedAtMs = closed.ClosedAtMs,
            Winner = winner is null ? null : new WinnerView(winner.HeaderHash, winner.Header.Builder, winner.Header.Value),
            Price = result.Price,
            BidsRoot = root,
            BidCount = (uint)closed.Bids.Count,
            RelaySignature = signature.ToString(),
            Relay = key.Address,
            RunnerUp = runnerUp,
        };
        var viewMs = System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        // Stored in two parts: the result itself (all a proposer needs, and all the relay signs; a few KB) first, then the
        // slot's bid list for the data API, so that the header is servable before thousands of bid views are written.
        var json = JsonSerializer.Serialize(view, WireJson.Options);
        var jsonMs = System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        // The debt is booked before the result exists (the result is a pure function of the frozen bids, so every
        // instance books the same winner and price, once per slot): no crash can leave a stored result unbooked.
        await ledger.BookAsync(slot, winner?.Header.Builder ?? Address.Zero, winner is null ? 0 : result.Price);
        var builtMs = System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        if (await store.TryStoreResultAsync(slot, json))
        {
            var storedMs = System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            var done = Remember(new Closed(view, closed.Bids, winner, json));
            // The slot's archive row and its event before any caller has the result: the proposal and posting records
            // that follow (they update the row) always find it, and `closed` comes before `proposed`.
            await archive.EnqueueResultAsync(view, []);
            await events.PublishAsync(JsonSerializer.Serialize(new { type = "closed", slot = slot.ToString(), bid_count = closed.Bids.Count.ToString(), winner = view.Winner?.Builder.ToString(), price = result.Price.ToString() }));
            // What follows needs no caller to wait for it (the result is servable): it runs on, tracked so that a clean
            // stop finishes it (DrainAsync).
            var timings = $"read {read:0}, resolve {resolvedMs - read:0}, root {rootMs - resolvedMs:0}, signature and proof {viewMs - rootMs:0}, JSON {jsonMs - viewMs:0}, debt {builtMs - jsonMs:0}, store {storedMs - builtMs:0}; garbage collections gen0/1/2 {GC.CollectionCount(0) - gcBefore.Item1}/{GC.CollectionCount(1) - gcBefore.Item2}/{GC.CollectionCount(2) - gcBefore.Item3}, paused {(GC.GetTotalPauseDuration() - gcBefore.Item4).TotalMilliseconds:0} ms; process CPU {(Environment.CpuUsage.TotalTime - cpuBefore).TotalMilliseconds:0} ms";
            Track(Task.Run(() => AfterStoreAsync(slot, view, closed, winner, result, root, started, storedMs, timings)));
            return done;
        }
        return Remember(await BookAsync(Rehydrate((await store.GetResultJsonAsync(slot))!, closed)));
    }

    /// <summary>After the result is stored, by the instance that stored it: the bid list, the bids' archive record, the
    /// metrics, the log line. (A data-API reader that comes first waits for the list: BidListAsync.)</summary>
    async Task AfterStoreAsync(ulong slot, SlotView view, AuctionStore.ClosedAuction closed, StoredBid? winner, AuctionOutcome result, Hash32 root,
        long started, double storedMs, string timings)
    {
        var bidViews = BidViews(closed.Bids);
        try
        {
            await store.TryStoreBidListAsync(slot, JsonSerializer.Serialize(bidViews, WireJson.Options));
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            // Not fatal: a reader completes a missing list (BidListAsync); the archive and the event must still go.
            log.LogWarning(e, "slot {Slot}: storing the bid list failed; readers will complete it", slot);
        }
        // Only the instance that stored the result archives it: the row went first, the bids follow (retried: nothing
        // else would write them).
        if (closed.Bids.Count > 0)
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    await archive.EnqueueResultAsync(view, closed.Bids);
                    break;
                }
                catch (Exception e) when (attempt < 5 && e is RedisException or TimeoutException)
                {
                    log.LogWarning("slot {Slot}: queueing its {Count} bids for the archive failed ({Error}); retrying", slot, closed.Bids.Count, e.Message);
                    await Task.Delay(200 * attempt);
                }
            }
        metrics.AuctionBids.Record(closed.Bids.Count);
        metrics.AuctionsClosed.Add(1, RelayMetrics.Tag("outcome", winner is null ? "empty" : "won"));
        var totalMs = System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        var lateMs = (long)closed.ClosedAtMs - (long)market.Clock.AuctionClosesMs(slot);
        log.LogInformation("slot {Slot} closed: {Bids} bids, winner {Winner}, price {Price} wei, root {Root}; frozen {Late} ms after the close time, result stored {Stored:0} ms after the freeze began ({Timings}); bid list, archive and event {Archive:0} more",
            slot, closed.Bids.Count, view.Winner?.Builder.ToString() ?? "none", result.Price, root, lateMs, storedMs, timings, totalMs - storedMs);
    }

    readonly System.Collections.Concurrent.ConcurrentDictionary<Task, byte> _afterStore = new();

    void Track(Task work)
    {
        _afterStore[work] = 0;
        work.ContinueWith(t =>
        {
            _afterStore.TryRemove(t, out _);
            if (t.Exception is { } e) log.LogError(e.GetBaseException(), "a closed slot's bid list, archive record or event failed");
        }, TaskScheduler.Default);
    }

    /// <summary>Waits for the work that follows stored results (on a clean stop: no archive record left behind).</summary>
    public async Task DrainAsync(CancellationToken ct)
    {
        var pending = _afterStore.Keys.ToArray();
        if (pending.Length == 0) return;
        log.LogInformation("finishing the archive records of {Count} closed slot(s) before stopping", pending.Length);
        // Failures were logged where they happened; a stop that runs out of time says so and stops.
        await Task.WhenAll(pending).WaitAsync(ct).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        if (_afterStore.Count > 0) log.LogWarning("stopped with {Count} closed slot(s) whose bids may not be archived", _afterStore.Count);
    }

    /// <summary>Closed results this instance holds, the newest <see cref="ClosedKept"/> slots.</summary>
    readonly System.Collections.Concurrent.ConcurrentDictionary<ulong, Closed> _closed = new();
    const int ClosedKept = 8; // the proposer's slot and those before it that a bid's booking pass reaches (HeadRules.LateSlots)

    Closed Remember(Closed c)
    {
        _closed[c.View.Slot] = c;
        if (_closed.Count > ClosedKept)
            foreach (var old in _closed.Keys.Order().Take(_closed.Count - ClosedKept)) _closed.TryRemove(old, out _);
        return c;
    }

    /// <summary>
    /// The auction rules over the frozen bids, where every bid the result depends on executes: the winner, and under
    /// second price the runner-up whose value sets the price (an invalid runner-up would raise what the winner pays).
    /// Only optimistic bids (accepted before their simulation) need a verdict; it is read from, or simulated into, the
    /// stored verdicts (SimulationVerdicts), ahead of everything else on the node. A failed one drops out with its
    /// builder's bid (the builder demoted) and the rules run again: at most once per builder. A needed bid that cannot be
    /// simulated within the close's budget (node down, busy or slow) is stored <c>unavailable</c> and the auction then
    /// has **no winner**: a lower bid never wins because a better one could not be checked (whoever made the node slow
    /// would gain by it). Every instance resolves alike, since every verdict used is stored first.
    /// The returned bids carry their verdicts (fees, simulation code) for the result and the archive.
    /// </summary>
    async Task<(AuctionOutcome, IReadOnlyList<StoredBid>)> ResolveExecutedAsync(ulong slot, AuctionStore.ClosedAuction closed)
    {
        var accepted = closed.Bids.Select(b => b.ToAccepted()).ToList();
        if (!closed.Bids.Any(b => b.Optimistic)) return (AuctionRules.Resolve(accepted, closed.Parent, market.Reserve, market.PriceRule), await WithStoredVerdictsAsync(slot, closed.Bids));
        var byHash = closed.Bids.ToDictionary(b => b.HeaderHash);
        var failed = new HashSet<Hash32>();
        using var budget = new CancellationTokenSource(verdicts.CloseBudgetMs);
        while (true)
        {
            var result = AuctionRules.Resolve(accepted, closed.Parent, market.Reserve, market.PriceRule, failed);
            StoredBid? invalid = null;
            foreach (var candidate in new[] { result.Winner, result.RunnerUp(market.PriceRule, market.Reserve) })
            {
                if (candidate is null || byHash[candidate.HeaderHash] is not { Optimistic: true } bid) continue;
                var verdict = (await verdicts.EnsureAsync(slot, bid.HeaderHash, bid.Header, null, final: true, budget.Token))!;
                if (verdict.IsValid) continue;
                if (verdict.Code == "unavailable")
                {
                    log.LogWarning("slot {Slot}: no winner: the block of bid {Hash} (builder {Builder}) could not be simulated: {Reason}",
                        slot, bid.HeaderHash, bid.Header.Builder, verdict.Message);
                    return (new AuctionOutcome(null, BigInteger.Zero, []), await WithStoredVerdictsAsync(slot, closed.Bids));
                }
                invalid = bid;
                break;
            }
            if (invalid is null) return (result, await WithStoredVerdictsAsync(slot, closed.Bids));
            failed.Add(invalid.HeaderHash);
        }
    }

    /// <summary>
    /// The bids as the result and the archive show them: each optimistic bid with its stored verdict (fees, simulation
    /// code), every other bid valid if simulated (it carries fees) and unsimulated otherwise. The one rule for the closer
    /// and for a reader that completes a missing bid list (<see cref="BidListAsync"/>), so both write the same list.
    /// </summary>
    async Task<List<StoredBid>> WithStoredVerdictsAsync(ulong slot, IReadOnlyList<StoredBid> bids) =>
        Annotate(bids, bids.Any(b => b.Optimistic) ? await verdicts.AllAsync(slot) : null);

    static List<StoredBid> Annotate(IReadOnlyList<StoredBid> bids, IReadOnlyDictionary<Hash32, StoredVerdict>? stored)
    {
        var annotated = new List<StoredBid>(bids.Count);
        foreach (var b in bids)
        {
            if (stored is not null && stored.TryGetValue(b.HeaderHash, out var v)) { annotated.Add(b with { Fees = v.Fees ?? b.Fees, Simulation = v.Code }); continue; }
            var simulation = b.Fees is null ? null : StoredVerdict.Valid;
            annotated.Add(b.Simulation == simulation ? b : b with { Simulation = simulation }); // unchanged: no copy (a close may annotate 10,000)
        }
        return annotated;
    }

    async Task<Closed> BookAsync(Closed c)
    {
        if (c.View.Winner is { } w && c.View.Price is { } price) await ledger.BookAsync(c.View.Slot, w.Builder, price);
        return c;
    }

    readonly System.Collections.Concurrent.ConcurrentDictionary<ulong, Lazy<Task<Closed?>>> _closing = new();

    ulong _bookedBefore;

    /// <summary>
    /// Before a bid for <paramref name="slot"/> is weighed against the builder's debts, the auctions of the slots before
    /// it that may still reach L1 (back to <see cref="HeadRules.LateSlots"/>) are closed and their winners' debts booked,
    /// once per slot on this instance: otherwise a builder could win the previous slot and, before any closer books it
    /// (or after the instance that stored its result died before booking), bid the same collateral again. False while
    /// Redis still holds the previous auction open.
    /// </summary>
    public async ValueTask<bool> EnsurePreviousBookedAsync(ulong slot)
    {
        if (slot == 0 || slot <= Volatile.Read(ref _bookedBefore)) return true;
        // One pass per slot however many bids arrive at once when its auction opens.
        Task<bool> pass;
        lock (_bookingGate)
        {
            if (_booking is { } b && b.Slot == slot) pass = b.Pass;
            else _booking = (slot, pass = BookBeforeAsync(slot));
        }
        var ok = false;
        try
        {
            ok = await pass;
            return ok;
        }
        finally
        {
            // Still open, or Redis failed: the next bid tries again.
            if (!ok) lock (_bookingGate) if (_booking?.Pass == pass) _booking = null;
        }
    }

    readonly Lock _bookingGate = new();
    (ulong Slot, Task<bool> Pass)? _booking;

    async Task<bool> BookBeforeAsync(ulong slot)
    {
        for (var s = slot > HeadRules.LateSlots + 1 ? slot - HeadRules.LateSlots - 1 : 0; s < slot; s++)
            if (await EnsureClosedAsync(s) is null && s == slot - 1 && await store.GetAuctionAsync(s) is { IsOpen: true }) return false;
        InterlockedMax(ref _bookedBefore, slot);
        return true;
    }

    static void InterlockedMax(ref ulong target, ulong value)
    {
        for (var seen = Volatile.Read(ref target); seen < value;)
        {
            var was = Interlocked.CompareExchange(ref target, value, seen);
            if (was == seen) return;
            seen = was;
        }
    }

    /// <summary>The bid list in sequence order (the frozen bids come in it already: sorted only when they do not).</summary>
    static List<BidView> BidViews(IReadOnlyList<StoredBid> bids)
    {
        var ordered = true;
        for (var i = 1; i < bids.Count && ordered; i++) ordered = bids[i - 1].Sequence < bids[i].Sequence;
        return [.. (ordered ? bids : bids.OrderBy(b => b.Sequence).ToList()).Select(b => new BidView(b.HeaderHash, b.Header.Builder, b.Header.Value, b.Header.GasUsed, b.TxCount, b.ReceivedAtMs, b.Fees, b.Simulation))];
    }

    static Closed Rehydrate(string json, AuctionStore.ClosedAuction closed)
    {
        var view = JsonSerializer.Deserialize<SlotView>(json, WireJson.Options)!;
        var winner = view.Winner is { } w ? closed.Bids.FirstOrDefault(b => b.HeaderHash == w.HeaderHash) : null;
        return new Closed(view, closed.Bids, winner, json);
    }

    /// <summary>How long after a slot's close its bid list may still be on its way from the instance that stored the result.</summary>
    const ulong BidListGraceMs = 2_000;

    /// <summary>
    /// A closed slot's bid list (JSON array of bid views), for the data API. The instance that stored the result writes it
    /// right after; a reader that finds none waits for it until <see cref="BidListGraceMs"/> after the close, then writes it
    /// itself from the frozen bids, each with its stored verdict, as the closer would have (the closer died between the
    /// two writes, or its write failed). Null when the slot has not closed.
    /// </summary>
    public async Task<string?> BidListAsync(ulong slot, ulong closedAtMs, CancellationToken ct)
    {
        while (true)
        {
            if (await store.GetBidListJsonAsync(slot) is { } list) return list;
            if (market.Clock.NowMs >= closedAtMs + BidListGraceMs) break;
            await Task.Delay(10, ct); // the reader gone: stop waiting for it
        }
        if (await store.CloseAsync(slot) is not AuctionStore.ClosedAuction closed) return null;
        var annotated = await WithStoredVerdictsAsync(slot, closed.Bids);
        var mine = JsonSerializer.Serialize(BidViews(annotated), WireJson.Options);
        log.LogWarning("slot {Slot}: its bid list was missing {Ms} ms after the close; written from the frozen bids", slot, market.Clock.NowMs - closedAtMs);
        return await store.TryStoreBidListAsync(slot, mine) ? mine : await store.GetBidListJsonAsync(slot) ?? mine;
    }
}
