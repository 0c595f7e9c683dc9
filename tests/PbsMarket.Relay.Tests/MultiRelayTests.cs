using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using Npgsql;
using PbsMarket.Builder;
using PbsMarket.Core;
using PbsMarket.Testing;
using PbsMarket.Testing.Market;

namespace PbsMarket.Relay.Tests;

/// <summary>Two relay instances sharing one Redis: one auction, one result, nothing acknowledged lost.</summary>
public sealed class MultiRelayTests(TestServers servers) : IAsyncLifetime
{
    TestMarket _market = null!;
    RelayInstance _r1 = null!, _r2 = null!;

    public async ValueTask InitializeAsync()
    {
        // 3 s slots: 30 bids through two instances must fit one open auction on a loaded machine.
        _market = await TestMarket.StartAsync(servers, slotMs: 3000);
        _r1 = await _market.StartRelayAsync(TestMarket.Unlimited);
        _r2 = await _market.StartRelayAsync(TestMarket.Unlimited);
    }

    public async ValueTask DisposeAsync() => await _market.DisposeAsync();

    [Fact]
    public async Task Bids_spread_over_two_instances_give_one_result_equal_to_the_rules_over_the_archive()
    {
        var a = await _market.NextAuctionAsync(_r1.Client, 2000);
        var receipts = new ConcurrentBag<BidReceiptResponse>();
        var rng = new Random(7);
        var tasks = new List<Task>();
        for (var i = 0; i < 30; i++)
        {
            var builder = TestMarket.Builders[i % 3];
            var value = 1_000 + rng.Next(100_000);
            var client = i % 2 == 0 ? _r1.Client : _r2.Client;
            tasks.Add(Task.Run(async () =>
            {
                var bid = TestMarket.Bid(a, builder, value);
                receipts.Add(await client.SubmitAsync(bid.Header, bid.Signature, bid.Payload));
            }));
        }
        await Task.WhenAll(tasks);
        await _market.WaitClosedAsync(a.Slot);

        var s1 = await SlotJsonAsync(_r1, a.Slot);
        var s2 = await SlotJsonAsync(_r2, a.Slot);
        Assert.Equal(s1, s2);
        using var doc = JsonDocument.Parse(s1);
        Assert.Equal(receipts.Count.ToString(CultureInfo.InvariantCulture), doc.RootElement.GetProperty("bid_count").GetString());

        // The archive (PostgreSQL) holds every acknowledged bid; the core rules over it give the same result.
        var archived = await _market.WaitArchivedBidsAsync(a.Slot, receipts.Count);
        Assert.Equal(receipts.Select(r => r.HeaderHash).ToHashSet(), archived.Select(b => b.HeaderHash).ToHashSet());
        var outcome = AuctionRules.Resolve(archived, a.ParentHash, 1000, PriceRule.SecondPrice);
        Assert.Equal(outcome.Winner!.HeaderHash.ToString(), doc.RootElement.GetProperty("winner").GetProperty("header_hash").GetString());
        Assert.Equal(outcome.Price.ToString(CultureInfo.InvariantCulture), doc.RootElement.GetProperty("price").GetString());
        Assert.Equal(BidsMerkle.Root(archived.Select(b => (b.HeaderHash, b.ReceivedAtMs))).ToString(), doc.RootElement.GetProperty("bids_root").GetString());
    }

    [Fact]
    public async Task A_bid_racing_the_close_is_in_the_result_or_refused_never_lost()
    {
        var a = await _market.NextAuctionAsync(_r1.Client, 300);
        var acknowledged = new ConcurrentBag<Hash32>();
        var refused = new ConcurrentBag<string>();
        var stopAt = DateTimeOffset.FromUnixTimeMilliseconds((long)a.ClosesAtMs + 150);
        var value = 1_000L;
        async Task Fire(RelayInstance relay, ProtocolKey builder)
        {
            while (DateTimeOffset.UtcNow < stopAt)
            {
                var bid = TestMarket.Bid(a, builder, Interlocked.Increment(ref value));
                try
                {
                    var r = await relay.Client.SubmitAsync(bid.Header, bid.Signature, bid.Payload);
                    acknowledged.Add(r.HeaderHash);
                }
                catch (RelayRefusedException e)
                {
                    refused.Add(e.Code);
                }
            }
        }
        await Task.WhenAll(Fire(_r1, TestMarket.Builders[0]), Fire(_r2, TestMarket.Builders[1]), Fire(_r1, TestMarket.Builders[2]));
        await _market.WaitClosedAsync(a.Slot, _r2);
        using var doc = JsonDocument.Parse(await SlotJsonAsync(_r2, a.Slot));
        var inResult = doc.RootElement.GetProperty("bids").EnumerateArray().Select(b => Hash32.Parse(b.GetProperty("header_hash").GetString()!)).ToHashSet();
        Assert.NotEmpty(acknowledged);
        Assert.NotEmpty(refused);
        Assert.All(acknowledged, h => Assert.Contains(h, inResult));
        Assert.Equal(acknowledged.Count, inResult.Count);
        Assert.All(refused, code => Assert.Equal("auction_closed", code));
    }

    static async Task<string> SlotJsonAsync(RelayInstance relay, ulong slot)
    {
        using var doc = await relay.Client.GetJsonAsync($"relay/v1/data/slots/{slot}");
        // Status may differ by a few ms between reads; compare everything about the auction itself.
        var copy = new Dictionary<string, JsonElement>();
        foreach (var p in doc.RootElement.EnumerateObject()) if (p.Name is not ("status" or "missed_reason")) copy[p.Name] = p.Value.Clone();
        return JsonSerializer.Serialize(copy);
    }
}
