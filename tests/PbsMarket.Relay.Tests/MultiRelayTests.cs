using Microsoft.Extensions.DependencyInjection;
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

    /// <summary>
    /// The close takes an instance's own bids from its memory and reads only the others' (issue 17). An instance that
    /// holds none of them, with the bid order list gone too (bids stored by a relay that keeps no such list), reads every
    /// record instead; one that finds a result without its bid list (the closer died between the two writes) writes the
    /// list itself. Every way gives the same slot, byte for byte, and a close reads every record at most once.
    /// </summary>
    [Fact]
    public async Task An_instance_without_the_bids_in_memory_closes_to_the_same_slot_and_completes_a_half_written_result()
    {
        var a = await _market.NextAuctionAsync(_r1.Client, 2000);
        var rng = new Random(11);
        var values = Enumerable.Range(0, 12).Select(i => 1_000 + rng.Next(100_000)).ToArray();
        var receipts = new ConcurrentBag<BidReceiptResponse>();
        await Task.WhenAll(Enumerable.Range(0, 12).Select(i => Task.Run(async () =>
        {
            var bid = TestMarket.Bid(a, TestMarket.Builders[i % 3], values[i]);
            receipts.Add(await (i % 2 == 0 ? _r1 : _r2).Client.SubmitAsync(bid.Header, bid.Signature, bid.Payload));
        })));
        await _market.WaitClosedAsync(a.Slot);
        var original = await SlotJsonAsync(_r1, a.Slot);
        Assert.Equal(original, await SlotJsonAsync(_r2, a.Slot));
        // Each instance took its own bids from memory and read only the other's: neither read every record.
        static long FullReads(RelayInstance r) => r.App.Services.GetRequiredService<Auctions.AuctionStore>().FullReads;
        Assert.Equal(0, FullReads(_r1) + FullReads(_r2));
        using (var doc = JsonDocument.Parse(original))
            Assert.Equal(receipts.Select(r => r.HeaderHash.ToString()).Order(), doc.RootElement.GetProperty("bids").EnumerateArray().Select(b => b.GetProperty("header_hash").GetString()!).Order());

        var keys = new Auctions.RedisKeys(_market.Network);
        using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(_market.Redis.ConnectionString);
        var db = redis.GetDatabase();

        // The closer died after storing the result, before its bid list: a fresh instance completes it.
        Assert.True(await db.KeyDeleteAsync(keys.ResultBids(a.Slot)));
        await using (var r3 = await _market.StartRelayAsync(TestMarket.Unlimited))
        {
            Assert.Equal(original, await SlotJsonAsync(r3, a.Slot));
            Assert.Equal(0, FullReads(r3)); // through the order list
        }
        Assert.True(await db.KeyExistsAsync(keys.ResultBids(a.Slot)));

        // No result, no list and no order list: a fresh instance closes from every stored record, to the same slot.
        Assert.Equal(3, await db.KeyDeleteAsync([keys.Result(a.Slot), keys.ResultBids(a.Slot), keys.BidOrder(a.Slot)]));
        await using (var r4 = await _market.StartRelayAsync(TestMarket.Unlimited))
        {
            Assert.Equal(original, await SlotJsonAsync(r4, a.Slot));
            // the close without an order list read every record (a data-API reader that finds no bid list yet may close
            // once more: the list is written right after the result, off the path)
            Assert.True(FullReads(r4) >= 1, "the close without an order list read every record");
        }
        Assert.True(await db.KeyExistsAsync(keys.Result(a.Slot)));

        // The same, and the auction keeps no checksum (bids stored by an older relay, during a rolling upgrade): the
        // records are read once, not again because the absent checksum disagrees with them.
        Assert.Equal(2, await db.KeyDeleteAsync([keys.Result(a.Slot), keys.ResultBids(a.Slot)]));
        Assert.False(await db.KeyExistsAsync(keys.BidOrder(a.Slot)));
        Assert.True(await db.HashDeleteAsync(keys.Auction(a.Slot), "check"));
        await using (var r5 = await _market.StartRelayAsync(TestMarket.Unlimited))
        {
            Assert.Equal(original, await SlotJsonAsync(r5, a.Slot));
            // Once the slot is closed and stored, nothing else closes it again: one more close of the store, measured
            // alone, reads every record exactly once (it read them twice before the fix).
            var before = FullReads(r5);
            var closed = Assert.IsType<Auctions.AuctionStore.ClosedAuction>(await r5.App.Services.GetRequiredService<Auctions.AuctionStore>().CloseAsync(a.Slot));
            Assert.Equal(1, FullReads(r5) - before);
            Assert.Equal(12, closed.Bids.Count);
        }
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
