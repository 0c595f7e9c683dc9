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
    AuctionStore store, Market market, RelayKey key, IConnectionMultiplexer redis, ArchiveQueue archive,
    EventHub events, RelayMetrics metrics, ILogger<ResultService> log)
{
    public sealed record Closed(SlotView View, IReadOnlyList<StoredBid> Bids, StoredBid? Winner);

    /// <summary>The slot's result, closing the auction first if its time has come; null if it is still open or absent.</summary>
    public async Task<Closed?> EnsureClosedAsync(ulong slot)
    {
        var outcome = await store.CloseAsync(slot);
        if (outcome is not AuctionStore.ClosedAuction closed) return null;

        var existing = await store.GetResultJsonAsync(slot);
        if (existing is not null) return Rehydrate(existing, closed.Bids);

        var accepted = closed.Bids.Select(b => b.ToAccepted()).ToList();
        var result = AuctionRules.Resolve(accepted, closed.Parent, market.Reserve, market.PriceRule);
        var root = BidsMerkle.Root(closed.Bids.Select(b => (b.HeaderHash, b.ReceivedAtMs)));
        var winner = result.Winner is { } w ? closed.Bids.First(b => b.HeaderHash == w.HeaderHash) : null;
        var auctionResult = new AuctionResult(slot, winner?.HeaderHash ?? Hash32.Zero, result.Price, root, (uint)closed.Bids.Count);
        var signature = key.Key.Sign(Eip712.Digest(market.Domain, auctionResult));
        // Second price above the reserve: L1 checks the price against the runner-up's own signed header in the root.
        RunnerUpView? runnerUp = null;
        if (result.RunnerUp(market.PriceRule, market.Reserve) is { } r)
        {
            var bid = closed.Bids.First(b => b.HeaderHash == r.HeaderHash);
            var proof = BidsMerkle.Proof(closed.Bids.Select(b => (b.HeaderHash, b.ReceivedAtMs)), bid.HeaderHash, bid.ReceivedAtMs)!;
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
            Bids = closed.Bids.OrderBy(b => b.Sequence)
                .Select(b => new BidView(b.HeaderHash, b.Header.Builder, b.Header.Value, b.Header.GasUsed, b.TxCount, b.ReceivedAtMs)).ToList(),
            Winner = winner is null ? null : new WinnerView(winner.HeaderHash, winner.Header.Builder, winner.Header.Value),
            Price = result.Price,
            BidsRoot = root,
            BidCount = (uint)closed.Bids.Count,
            RelaySignature = signature.ToString(),
            Relay = key.Address,
            RunnerUp = runnerUp,
        };
        var json = JsonSerializer.Serialize(view, WireJson.Options);
        if (await store.TryStoreResultAsync(slot, json))
        {
            // Only the instance that stored the result books the debt, archives and announces it.
            if (winner is not null && result.Price > 0)
                await AddOwedAsync(winner.Header.Builder, result.Price);
            await archive.EnqueueResultAsync(view, closed.Bids);
            metrics.Observe("pbs_auction_bids", closed.Bids.Count, RelayMetrics.SizeBuckets);
            metrics.Count("pbs_auctions_closed_total", winner is null ? "outcome=\"empty\"" : "outcome=\"won\"");
            await events.PublishAsync(JsonSerializer.Serialize(new { type = "closed", slot = slot.ToString(), bid_count = closed.Bids.Count.ToString(), winner = view.Winner?.Builder.ToString(), price = result.Price.ToString() }));
            log.LogInformation("slot {Slot} closed: {Bids} bids, winner {Winner}, price {Price} wei, root {Root}",
                slot, closed.Bids.Count, view.Winner?.Builder.ToString() ?? "none", result.Price, root);
            return new Closed(view, closed.Bids, winner);
        }
        return Rehydrate((await store.GetResultJsonAsync(slot))!, closed.Bids);
    }

    /// <summary>Books (or, with a negative amount, releases) what a builder owes until L1 settles it.</summary>
    public Task AddOwedAsync(Address builder, BigInteger price) =>
        redis.GetDatabase().ScriptEvaluateAsync(AddBig, [store.Keys.Owed], [builder.ToString(), price.ToString()]);

    /// <summary>Adds a (possibly huge) decimal integer to a hash field, as strings, exactly.</summary>
    internal static readonly string AddBig = """
        local cur = redis.call('HGET', KEYS[1], ARGV[1]) or '0'
        local a, b = cur, ARGV[2]
        local neg = false
        if string.sub(b, 1, 1) == '-' then neg = true; b = string.sub(b, 2) end
        local function add(x, y)
          local r, carry, i, j = {}, 0, #x, #y
          while i > 0 or j > 0 or carry > 0 do
            local s = carry + (i > 0 and tonumber(string.sub(x, i, i)) or 0) + (j > 0 and tonumber(string.sub(y, j, j)) or 0)
            table.insert(r, 1, s % 10); carry = math.floor(s / 10); i = i - 1; j = j - 1
          end
          return (string.gsub(table.concat(r), '^0+(%d)', '%1'))
        end
        local function cmp(x, y)
          if #x ~= #y then return #x < #y and -1 or 1 end
          if x == y then return 0 end
          return x < y and -1 or 1
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
        local out
        if not neg then out = add(a, b) elseif cmp(a, b) <= 0 then out = '0' else out = sub(a, b) end
        redis.call('HSET', KEYS[1], ARGV[1], out)
        return out
        """;

    static Closed Rehydrate(string json, IReadOnlyList<StoredBid> bids)
    {
        var view = JsonSerializer.Deserialize<SlotView>(json, WireJson.Options)!;
        var winner = view.Winner is { } w ? bids.FirstOrDefault(b => b.HeaderHash == w.HeaderHash) : null;
        return new Closed(view, bids, winner);
    }
}
