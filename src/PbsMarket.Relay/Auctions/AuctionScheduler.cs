using System.Text.Json;
using PbsMarket.Core;
using PbsMarket.Relay.Chain;
using StackExchange.Redis;

namespace PbsMarket.Relay.Auctions;

/// <summary>
/// Runs on every relay instance: opens each slot's auction when its window starts, closes it at the
/// close time (whichever instance gets there first; the scripts make it happen once), and marks slots
/// that nobody proposed as missed. Sleeps until the next boundary rather than polling hard.
/// </summary>
public sealed class AuctionScheduler(
    AuctionStore store, ResultService results, Market market, IChainView chain, IConnectionMultiplexer redis,
    Infrastructure.EventHub events, Infrastructure.RelayMetrics metrics, Infrastructure.RedisRouting routing, ILogger<AuctionScheduler> log) : BackgroundService
{
    ulong _nextToClose;
    ulong _nextMissCheck;
    ulong _firstOwnSlot = ulong.MaxValue;
    public volatile string? Problem = "starting";
    /// <summary>Set once an auction has been opened (or found open) by this instance: readiness waits for it.</summary>
    public volatile bool AuctionsOpen;

    protected override async Task ExecuteAsync(CancellationToken ct)
    {
        var clock = market.Clock;
        _nextToClose = clock.CurrentSlot > 4 ? clock.CurrentSlot - 4 : 0;
        _nextMissCheck = _nextToClose;
        _firstOwnSlot = clock.CurrentSlot + 1;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await TickAsync();
                Problem = null;
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                // Any failure pauses the scheduler until the next tick; none may escape and stop the relay.
                routing.Observe(e);
                if (Problem is null) log.LogWarning("auction scheduler paused: {Type}: {Error}", e.GetType().Name, e.Message);
                Problem = e.Message;
            }
            var now = clock.NowMs;
            var next = Math.Min(clock.AuctionClosesMs(_nextToClose), clock.StartMs(clock.SlotAt(now) + 1));
            var wait = next > now ? Math.Min(next - now, 250UL) : 20UL;
            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(wait), ct);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>A clean stop finishes what follows the results already stored (their archive records and events).</summary>
    public override async Task StopAsync(CancellationToken ct)
    {
        await base.StopAsync(ct);
        await results.DrainAsync(ct);
    }

    async Task TickAsync()
    {
        var clock = market.Clock;
        var now = clock.NowMs;
        var current = clock.SlotAt(now);

        // Open: the auction whose window is running (or the next one, in the gap after a close).
        var open = clock.OpenAuctionSlot(now) ?? current + 1;

        // Reconcile with L1: a head L1 holds beyond ours (a fresh or emptied Redis, or blocks posted by others) is
        // taken, so that no auction is built on a parent L1 has already moved past.
        if (chain.InboxHead is { } l1 && l1.Number > 0)
        {
            var head = await store.GetHeadAsync();
            if (l1.Number > head.Number && await store.AdvanceHeadAsync(new AuctionStore.Head(l1.Hash, l1.Number, l1.Slot), open))
                log.LogInformation("head reconciled with L1: {Hash} (number {Number}, slot {Slot}); was {Old} (number {OldNumber})", l1.Hash, l1.Number, l1.Slot, head.Hash, head.Number);
        }

        var proposer = market.ProposerOf(open, chain);
        var created = proposer is { } who && await store.EnsureAuctionAsync(open, who, clock.AuctionClosesMs(open), clock.StartMs(open));
        if (proposer is not null) AuctionsOpen = true;
        if (created)
        {
            var p = proposer!.Value;
            var a = await store.GetAuctionAsync(open);
            await events.PublishAsync(JsonSerializer.Serialize(new
            {
                type = "opened", slot = open.ToString(), proposer = p.ToString(), closes_at_ms = clock.AuctionClosesMs(open).ToString(),
                parent_hash = a?.Parent.ToString(), number = a?.Number.ToString(),
            }));
        }

        // Close every slot whose close time has passed.
        while (clock.AuctionClosesMs(_nextToClose) <= now)
        {
            var closed = await results.EnsureClosedAsync(_nextToClose);
            if (closed is null && await store.GetAuctionAsync(_nextToClose) is not null
                && (long)clock.AuctionClosesMs(_nextToClose) + 2000 > (long)now)
                break; // Redis's clock has not reached the close yet: try again shortly
            metrics.ReleaseThrough(_nextToClose);
            _nextToClose++;
        }

        // Missed: no proposal by the time the next slot's auction closed.
        while (_nextMissCheck + 1 <= current && clock.AuctionClosesMs(_nextMissCheck + 1) <= now)
        {
            await CheckMissedAsync(_nextMissCheck);
            _nextMissCheck++;
        }
    }

    async Task CheckMissedAsync(ulong slot)
    {
        string? noAuction = null;
        if (await store.GetAuctionAsync(slot) is null)
        {
            // No instance could open this slot's auction (L1's proposer set was not known in time, or the
            // slot's proposer is slashed). Record it, closed and empty, so that it shows as missed with its reason, not as a gap.
            if (slot < _firstOwnSlot) return; // before this instance was running: not ours to judge
            var proposer = market.ProposerOf(slot, chain) ?? Address.Zero;
            await store.EnsureAuctionAsync(slot, proposer, market.Clock.AuctionClosesMs(slot), market.Clock.StartMs(slot));
            await results.EnsureClosedAsync(slot);
            noAuction = $"no auction opened ({market.NoProposerReason(slot, chain)})";
        }
        if (await store.GetProposalAsync(slot) is not null) return;
        var db = redis.GetDatabase();
        var resultJson = await store.GetResultJsonAsync(slot);
        var view = resultJson is null ? null : JsonSerializer.Deserialize<Api.SlotView>(resultJson, Api.WireJson.Options)!;
        var reason = noAuction ?? (view is null ? "auction never closed" : view.Winner is null ? "no bids" : "no proposal before the next auction closed");
        if (!await db.HashSetAsync(store.Keys.Auction(slot), "missed", reason, When.NotExists)) return;
        // The winner's debt stays booked: a late proposal may still reach L1. The DebtLedger releases it once L1's
        // inbox passes this slot, when it is final either way.
        await events.PublishAsync(JsonSerializer.Serialize(new { type = "missed", slot = slot.ToString(), reason }));
        log.LogInformation("slot {Slot} missed: {Reason}", slot, reason);
    }
}
