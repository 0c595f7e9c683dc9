using System.Diagnostics;
using System.Text.Json;
using PbsMarket.Builder;
using PbsMarket.Core;
using PbsMarket.L1;
using PbsMarket.Testing;
using PbsMarket.Testing.Market;
using StackExchange.Redis;

namespace PbsMarket.Devnet.Tests;

/// <summary>
/// kill -9 of one `pbs relay` process (the one holding the L1 poster lease, while it posts) in the middle of an auction,
/// the other instance serving on: every acknowledged bid is in the result, the lease moves to the survivor, the dead
/// poster's in-flight transaction is resolved, and each proposed slot reaches L1 exactly once.
/// </summary>
[Collection(nameof(RelayProcessTests))]
public sealed class RelayCrashTests(TestServers servers, ITestOutputHelper output) : IAsyncLifetime
{
    TestMarket _market = null!;
    readonly List<PbsProcess> _started = [];
    readonly string _dir = Directory.CreateTempSubdirectory("pbs-test-relay-crash-").FullName;

    // 3 s slots: bids through two relays, a proposal and a kill inside one auction on a loaded machine.
    public async ValueTask InitializeAsync() => _market = await TestMarket.StartAsync(servers, slotMs: 3000);

    public async ValueTask DisposeAsync()
    {
        foreach (var p in _started) await p.DisposeAsync();
        await _market.DisposeAsync();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public async Task Killing_the_posting_relay_mid_auction_loses_no_bid_and_posts_every_slot_once()
    {
        // A short lease, so that the survivor takes over within seconds of the kill.
        static void Settings(Dictionary<string, string?> c) => c["Relay:L1PosterLeaseMs"] = "3000";
        var a = await RelayProcess.StartAsync(_market, _dir, "a", Settings);
        _started.Add(a.Process);
        var b = await RelayProcess.StartAsync(_market, _dir, "b", Settings);
        _started.Add(b.Process);
        using var redis = await ConnectionMultiplexer.ConnectAsync(_market.RedisConnection);
        var db = redis.GetDatabase();
        var lease = $"pbs:{{{_market.Network}}}:l1lease";
        var inbox = new InboxClient(L1Rpc.Connect(_market.Anvil.RpcUrl), _market.Deployment);
        var fromBlock = (ulong)(await inbox.Web3.Eth.Blocks.GetBlockNumber.SendRequestAsync()).Value;

        var holderName = await WaitAsync(async () => (string?)await db.StringGetAsync(lease) is { } id && id is "a" or "b" ? id : null, "a poster lease");
        var (victim, victimUrl) = holderName == "a" ? a : b;
        var survivorUrl = holderName == "a" ? b.Url : a.Url;
        using var victimClient = new BuilderClient(victimUrl);
        using var survivor = new BuilderClient(survivorUrl);
        output.WriteLine($"relay {holderName} holds the lease: it is killed");

        // Slot 1: bids through both, proposed through the survivor; the lease holder posts it.
        var s1 = await _market.NextAuctionAsync(survivor, 1500);
        var r1 = new List<BidReceiptResponse>();
        for (var i = 0; i < 4; i++)
        {
            var bid = TestMarket.Bid(s1, TestMarket.Builders[i % 3], 10_000 + i);
            r1.Add(await (i % 2 == 0 ? victimClient : survivor).SubmitAsync(bid.Header, bid.Signature, bid.Payload));
        }
        await _market.WaitClosedAsync(s1.Slot);
        var w1 = r1[^1].HeaderHash;
        var (status, answer) = await survivor.PostRawAsync("relay/v1/proposer/proposals", await _market.ProposalBodyAsync(survivorUrl, s1.Slot, w1, _market.ProposerOf(s1.Slot)));
        Assert.True(status == 200, answer);

        // Slot 2, on slot 1's header: bids acknowledged by both relays.
        var s2 = await WaitAsync(async () => await _market.NextAuctionAsync(survivor, 1200) is { } x && x.ParentHash == w1 ? x : null, "an auction on slot 1's header");
        var r2 = new List<BidReceiptResponse>();
        for (var i = 0; i < 4; i++)
        {
            var bid = TestMarket.Bid(s2, TestMarket.Builders[i % 3], 20_000 + i);
            r2.Add(await (i % 2 == 0 ? victimClient : survivor).SubmitAsync(bid.Header, bid.Signature, bid.Payload));
        }

        // The kill: as soon as the holder has a posting transaction in flight (its journal is written before the
        // transaction is sent and cleared once it is mined), or at once if slot 1 is on L1 already.
        var journal = lease + ":journal";
        var watch = Stopwatch.StartNew();
        var inFlight = false;
        while (watch.Elapsed < TimeSpan.FromSeconds(20))
        {
            if (await db.KeyExistsAsync(journal)) { inFlight = true; break; }
            if (await inbox.HeaderOfSlotAsync(s1.Slot) != Hash32.Zero) break;
            await Task.Delay(5);
        }
        victim.KillHard();
        await victim.WaitExitAsync(TimeSpan.FromSeconds(30));
        output.WriteLine(inFlight ? "killed with a posting transaction in flight" : "killed after (or before) its posting round");

        // The survivor closes slot 2 with every acknowledged bid, takes the lease, resolves the journal, posts both slots.
        await _market.WaitClosedAsync(s2.Slot);
        using (var slot = await survivor.GetJsonAsync($"relay/v1/data/slots/{s2.Slot}"))
        {
            Assert.NotEqual("open", slot.RootElement.GetProperty("status").GetString());
            var inResult = slot.RootElement.GetProperty("bids").EnumerateArray().Select(x => Hash32.Parse(x.GetProperty("header_hash").GetString()!)).ToHashSet();
            Assert.All(r2, r => Assert.Contains(r.HeaderHash, inResult));
        }
        var w2 = r2[^1].HeaderHash;
        (status, answer) = await survivor.PostRawAsync("relay/v1/proposer/proposals", await _market.ProposalBodyAsync(survivorUrl, s2.Slot, w2, _market.ProposerOf(s2.Slot)));
        Assert.True(status == 200, answer);
        var survivorName = holderName == "a" ? "b" : "a";
        await WaitAsync(async () => (string?)await db.StringGetAsync(lease) == survivorName ? "" : null, "the lease on the survivor", TimeSpan.FromSeconds(60));
        await WaitAsync(async () => await inbox.HeaderOfSlotAsync(s1.Slot) == w1 && await inbox.HeaderOfSlotAsync(s2.Slot) == w2 ? "" : null, "both slots on L1", TimeSpan.FromSeconds(90));
        await WaitAsync(async () => await db.KeyExistsAsync(journal) ? null : "", "the poster journal resolved", TimeSpan.FromSeconds(60));
        var posted = await inbox.GetHeaderPostedAsync(fromBlock);
        Assert.Single(posted, p => p.Slot == s1.Slot);
        Assert.Single(posted, p => p.Slot == s2.Slot);
    }

    static async Task<T> WaitAsync<T>(Func<Task<T?>> probe, string what, TimeSpan? timeout = null) where T : class
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                if (await probe() is { } v) return v;
            }
            catch (Exception e) when (e is RelayRefusedException or HttpRequestException or TimeoutException or JsonException)
            {
                // not yet
            }
            Assert.True(deadline.Elapsed < (timeout ?? TimeSpan.FromSeconds(30)), $"no {what} within {(timeout ?? TimeSpan.FromSeconds(30)).TotalSeconds:0} s");
            await Task.Delay(50);
        }
    }
}
