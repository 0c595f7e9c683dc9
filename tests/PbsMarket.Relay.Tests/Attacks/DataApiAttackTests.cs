using System.Text.Json;
using PbsMarket.Core;
using PbsMarket.Testing;
using PbsMarket.Testing.Market;
using StackExchange.Redis;

namespace PbsMarket.Relay.Tests.Attacks;

/// <summary>
/// The data API as an amplifier (found by the flood benchmark: a few list reads a second of slots with thousands of bids
/// stalled the relay): reads of closed slots cost no close script and no bid fetch, pages are bounded by bids, and the
/// data API as a whole runs a bounded number of reads at once, whatever the number of source addresses.
/// </summary>
public sealed class DataApiAttackTests(TestServers servers) : MarketTest(servers, slotMs: 2000)
{
    static async Task<Dictionary<string, long>> CommandCallsAsync(IServer server)
    {
        var info = await server.InfoAsync("commandstats");
        return info.SelectMany(g => g).Where(kv => kv.Key.StartsWith("cmdstat_", StringComparison.Ordinal)).ToDictionary(
            kv => kv.Key["cmdstat_".Length..],
            kv => long.Parse(kv.Value.Split(',')[0].Split('=')[1], System.Globalization.CultureInfo.InvariantCulture));
    }

    async Task<List<ulong>> SlotsWithBidsAsync(RelayInstance relay, int slots, int bidsPerBuilder)
    {
        var filled = new List<ulong>();
        while (filled.Count < slots)
        {
            var a = await Market.NextAuctionAsync(relay.Client, 1200);
            foreach (var builder in TestMarket.Builders)
                for (var i = 0; i < bidsPerBuilder; i++)
                {
                    var bid = TestMarket.Bid(a, builder, TestMarket.ReservePrice + i);
                    await relay.Client.SubmitAsync(bid.Header, bid.Signature, bid.Payload);
                }
            await Market.WaitClosedAsync(a.Slot, relay);
            filled.Add(a.Slot);
        }
        return filled;
    }

    [Fact]
    public async Task Re_reading_pages_of_closed_slots_runs_no_close_script_and_fetches_no_bids_again()
    {
        var filled = await SlotsWithBidsAsync(Relay, 2, 5);
        using var http = AttackHelpers.ClientFrom(Relay.Url, "127.0.2.10");
        var cursor = filled[^1] + 1;
        // Warm: the first read of each slot may read its stored result once.
        await AttackHelpers.SendAsync(http, HttpMethod.Get, $"relay/v1/data/slots?cursor={cursor}&limit=20");
        using var redis = await ConnectionMultiplexer.ConnectAsync(Market.Redis.ConnectionString + ",allowAdmin=true");
        var server = redis.GetServers()[0];
        var before = await CommandCallsAsync(server);
        for (var i = 0; i < 30; i++)
        {
            var (status, code, text) = await AttackHelpers.SendAsync(http, HttpMethod.Get, $"relay/v1/data/slots?cursor={cursor}&limit=20");
            Assert.True(status == 200, $"{status} {code} {text}");
        }
        var after = await CommandCallsAsync(server);
        long Delta(string cmd) => after.GetValueOrDefault(cmd) - before.GetValueOrDefault(cmd);
        // 30 pages of 20 slots. Reading them through the close script cost 600 script calls and 600 fetches of every bid
        // (HGETALL); what remains is the relay's own scheduler, a few per slot.
        Assert.True(Delta("evalsha") + Delta("eval") < 60, $"{Delta("evalsha") + Delta("eval")} script calls for 30 pages");
        Assert.True(Delta("hgetall") < 60, $"{Delta("hgetall")} HGETALLs for 30 pages");
    }

    [Fact]
    public async Task Pages_stop_at_the_bid_budget_and_the_next_cursor_continues_without_gap()
    {
        await using var relay = await Market.StartRelayAsync(c => c["Relay:MaxBidsPerDataPage"] = "20");
        var filled = await SlotsWithBidsAsync(relay, 3, 5); // 15 bids a slot
        using var http = AttackHelpers.ClientFrom(relay.Url, "127.0.2.11");
        var seen = new List<ulong>();
        var cursor = (filled[^1] + 1).ToString();
        for (var page = 0; page < 6 && cursor is not null && !filled.All(seen.Contains); page++)
        {
            var (status, code, text) = await AttackHelpers.SendAsync(http, HttpMethod.Get, $"relay/v1/data/slots?cursor={cursor}&limit=20");
            Assert.True(status == 200, $"{status} {code} {text}");
            using var doc = JsonDocument.Parse(text);
            var slots = doc.RootElement.GetProperty("slots").EnumerateArray().ToList();
            var bids = slots.Sum(s => s.TryGetProperty("bids", out var b) && b.ValueKind == JsonValueKind.Array ? b.GetArrayLength() : 0);
            // At most one slot past the budget: 2 slots of 15 bids.
            Assert.True(bids <= 20 + 15, $"page {page} holds {bids} bids");
            seen.AddRange(slots.Select(s => ulong.Parse(s.GetProperty("slot").GetString()!)));
            cursor = doc.RootElement.TryGetProperty("next_cursor", out var next) && next.ValueKind == JsonValueKind.String ? next.GetString() : null;
        }
        Assert.Equal(seen.Count, seen.Distinct().Count());
        Assert.All(filled, s => Assert.Contains(s, seen));
        Assert.Equal(seen.OrderByDescending(s => s), seen);
    }

    [Fact]
    public async Task Many_addresses_reading_at_once_are_held_to_the_data_limit_while_bids_go_through()
    {
        await using var relay = await Market.StartRelayAsync(c => c["Relay:MaxConcurrentDataRequests"] = "1");
        await SlotsWithBidsAsync(relay, 1, 5);
        var a = await Market.NextAuctionAsync(relay.Client, 1200);
        // 60 list reads at once from 60 addresses, each far under its own rate limit.
        var reads = Enumerable.Range(0, 60).Select(async i =>
        {
            using var http = AttackHelpers.ClientFrom(relay.Url, $"127.0.3.{i + 10}");
            var (status, code, _) = await AttackHelpers.SendAsync(http, HttpMethod.Get, "relay/v1/data/slots?limit=200");
            return (status, code);
        }).ToList();
        var bid = TestMarket.Bid(a, TestMarket.Builders[0], TestMarket.ReservePrice);
        var receipt = await relay.Client.SubmitAsync(bid.Header, bid.Signature, bid.Payload);
        Assert.False(receipt.HeaderHash.IsZero);
        var answers = await Task.WhenAll(reads);
        Assert.All(answers, x => Assert.True(x is (200, _) or (429, "rate_limited"), $"{x.status} {x.code}"));
        Assert.Contains(answers, x => x.status == 429);
        Assert.Contains(answers, x => x.status == 200);
    }

    [Fact]
    public async Task A_large_closed_slot_read_again_and_again_answers_the_same_bytes_with_every_bid()
    {
        await using var relay = await Market.StartRelayAsync(c =>
        {
            c["Relay:MaxBidsPerBuilderPerSlot"] = "100";
            c["Relay:BidsPerSecondPerBuilder"] = "10000";
        });
        var a = await Market.NextAuctionAsync(relay.Client, 1500);
        // 270 bids (above the size from which answers are kept serialized), three builders in parallel.
        await Task.WhenAll(TestMarket.Builders.Select(async builder =>
        {
            for (var i = 0; i < 90; i++)
            {
                var bid = TestMarket.Bid(a, builder, TestMarket.ReservePrice + i);
                await relay.Client.SubmitAsync(bid.Header, bid.Signature, bid.Payload);
            }
        }));
        await Market.WaitClosedAsync(a.Slot, relay);
        using var http = AttackHelpers.ClientFrom(relay.Url, "127.0.2.12");
        var first = await http.GetByteArrayAsync($"relay/v1/data/slots/{a.Slot}");
        for (var i = 0; i < 5; i++) Assert.Equal(first, await http.GetByteArrayAsync($"relay/v1/data/slots/{a.Slot}"));
        using var doc = JsonDocument.Parse(first);
        Assert.Equal(270, doc.RootElement.GetProperty("bids").GetArrayLength());
        Assert.Equal("270", doc.RootElement.GetProperty("bid_count").GetString());
        Assert.Equal(a.Slot.ToString(), doc.RootElement.GetProperty("slot").GetString());
    }
}
