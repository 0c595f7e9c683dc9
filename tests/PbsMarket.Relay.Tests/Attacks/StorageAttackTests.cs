using PbsMarket.Builder.Demo;
using PbsMarket.Core;
using PbsMarket.Testing;
using PbsMarket.Testing.Market;

namespace PbsMarket.Relay.Tests.Attacks;

/// <summary>Skin in the game: no collateral, no bid; a builder's storage per slot is bounded; a payload L1 could never take is refused.</summary>
public sealed class StorageAttackTests(TestServers servers) : MarketTest(servers)
{
    static byte[] Encode((Header Header, Signature Signature, byte[] Payload) bid) =>
        Wire.ToUtf8(new BidSubmission(bid.Header, bid.Signature, bid.Payload), Wire.WriteBidSubmission);

    [Fact]
    public async Task Bids_from_an_unfunded_key_are_refused_even_at_the_reserve_and_store_nothing()
    {
        // The reserve is an L1 market parameter (protocol v2), so the relay runs at the market's; the smallest bid the market
        // takes (the reserve) from a key with no collateral is refused all the same.
        await using var relay = await Market.StartRelayAsync();
        using var http = AttackHelpers.ClientFrom(relay.Url, "127.0.0.61");
        var a = await Market.NextAuctionAsync(relay.Client, 400);
        var before = await AttackHelpers.SnapshotAsync(Market, k => !EdgeAttackTests.StateKey(k));
        for (var i = 0; i < 5; i++)
        {
            var stranger = ProtocolKey.Generate();
            var (status, code, text) = await AttackHelpers.SendAsync(http, HttpMethod.Post, "relay/v1/builder/bids", Encode(TestMarket.Bid(a, stranger, TestMarket.ReservePrice)));
            Assert.True((status, code) == (402, "collateral_required"), $"{status} {code} {text}");
        }
        Assert.Equal(before, await AttackHelpers.SnapshotAsync(Market, k => !EdgeAttackTests.StateKey(k)));
        // A funded builder bidding the reserve is fine.
        var ok = TestMarket.Bid(a, TestMarket.Builders[0], TestMarket.ReservePrice);
        await relay.Client.SubmitAsync(ok.Header, ok.Signature, ok.Payload);
    }

    [Fact]
    public async Task Three_hundred_fresh_unfunded_keys_cost_the_relay_a_few_L1_reads_not_one_each()
    {
        var a = await Market.NextAuctionAsync(Relay.Client, 600);
        var before = await UnknownKeyReadsAsync();
        var started = DateTime.UtcNow;
        var bodies = Enumerable.Range(0, 300).Select(_ => Encode(TestMarket.Bid(a, ProtocolKey.Generate(), TestMarket.ReservePrice))).ToList();
        // From 30 addresses, 10 bids each: no per-address limit is what stops them.
        var answers = await Task.WhenAll(Enumerable.Range(0, 30).Select(async i =>
        {
            using var http = AttackHelpers.ClientFrom(Relay.Url, $"127.0.1.{i + 10}");
            var codes = new List<string>();
            for (var j = 0; j < 10; j++) codes.Add((await AttackHelpers.SendAsync(http, HttpMethod.Post, "relay/v1/builder/bids", bodies[i * 10 + j])).Code);
            return codes;
        }));
        var seconds = (DateTime.UtcNow - started).TotalSeconds;
        Assert.All(answers.SelectMany(c => c), c => Assert.True(c is "collateral_required" or "auction_closed", c));
        var reads = await UnknownKeyReadsAsync() - before;
        // 10 a second at most, against one per key before (300).
        Assert.True(reads <= 10 * Math.Ceiling(seconds + 1), $"{reads} L1 reads for 300 fresh keys in {seconds:0.0} s");
        // A funded builder is not one of them: its bid goes through.
        var next = await Market.NextAuctionAsync(Relay.Client, 400);
        var ok = TestMarket.Bid(next, TestMarket.Builders[0], TestMarket.ReservePrice);
        await Relay.Client.SubmitAsync(ok.Header, ok.Signature, ok.Payload);
    }

    async Task<long> UnknownKeyReadsAsync()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var text = await http.GetStringAsync($"{Relay.Url}/metrics");
        var line = text.Split('\n').FirstOrDefault(l => l.StartsWith("pbs_l1_balance_reads_total{key=\"unknown\"}", StringComparison.Ordinal));
        return line is null ? 0 : long.Parse(line.Split(' ')[^1], System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task Only_each_builders_latest_payload_is_kept_and_its_bytes_per_slot_are_bounded()
    {
        var a = await Market.NextAuctionAsync(Relay.Client, 600);
        var keys = new Auctions.RedisKeys(Market.Network);
        for (var i = 0; i < 10; i++)
        {
            var bid = TestMarket.Bid(a, TestMarket.Builders[0], 2_000 + i);
            await Relay.Client.SubmitAsync(bid.Header, bid.Signature, bid.Payload);
        }
        var other = TestMarket.Bid(a, TestMarket.Builders[1], 3_000);
        await Relay.Client.SubmitAsync(other.Header, other.Signature, other.Payload);
        Assert.Equal(2, await AttackHelpers.HashLengthAsync(Market, keys.Payloads(a.Slot)));
        Assert.Equal(11, await AttackHelpers.HashLengthAsync(Market, keys.Bids(a.Slot)));

        // A byte budget of 1 KiB per builder per slot: one bid record fits, a second would pass it.
        await using var tight = await Market.StartRelayAsync(s => s["Relay:MaxStoredBytesPerBuilderPerSlot"] = "1024");
        var b = await Market.NextAuctionAsync(tight.Client, 500);
        var codes = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            var (status, text) = await tight.Client.PostRawAsync("relay/v1/builder/bids", Encode(TestMarket.Bid(b, TestMarket.Builders[2], 5_000 + i)));
            codes.Add(status == 202 ? "accepted" : text.Contains("storage_budget") && status == 413 ? "storage_budget" : $"{status} {text}");
        }
        Assert.Equal(["accepted", "storage_budget", "storage_budget", "storage_budget"], codes);
    }

    [Fact]
    public async Task A_payload_no_L1_transaction_can_carry_is_refused_at_bid_time()
    {
        await using var relay = await Market.StartRelayAsync(s => s["Relay:MaxPayloadBytes"] = "400000");
        var wallet = new L2Wallet("unpostable", accounts: 8, randomSeed: 7);
        var a = await Market.NextAuctionAsync(relay.Client, 300);
        var block = wallet.BlockFor(a.Slot, TestMarket.L2ChainId, 1400, 1400);
        Assert.True(block.Payload.Length > 128 * 1024, $"payload of {block.Payload.Length} bytes");
        a = await Market.NextAuctionAsync(relay.Client, 400);
        var bid = TestMarket.Bid(a, TestMarket.Builders[0], 5_000, payload: block.Payload, gasUsed: block.GasUsed);
        var (status, text) = await relay.Client.PostRawAsync("relay/v1/builder/bids", Encode(bid));
        Assert.True(status == 413 && text.Contains("unpostable"), $"{status} {text}");
    }
}
