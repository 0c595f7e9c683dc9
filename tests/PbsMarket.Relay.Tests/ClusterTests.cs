using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using PbsMarket.Builder;
using PbsMarket.Core;
using PbsMarket.L1;
using PbsMarket.LocalServers;
using PbsMarket.Testing;
using PbsMarket.Testing.Market;

namespace PbsMarket.Relay.Tests;

/// <summary>
/// The relay on a real Redis Cluster (3 masters, 1 replica each, on loopback): consecutive slots' keys live on different
/// shards (hash tag <c>{net:s:N}</c>), the market's global keys on one (<c>{net}</c>); the whole flow works across them.
/// </summary>
public sealed class ClusterTests(TestServers servers, ITestOutputHelper output) : IAsyncLifetime
{
    TestMarket _market = null!;
    Testing.RedisCluster _cluster = null!;
    RelayInstance _r1 = null!, _r2 = null!;

    public async ValueTask InitializeAsync()
    {
        _cluster = await servers.StartOwnClusterAsync();
        // 3 s slots: bids through two relays, a proposal and the L1 posting per slot, on a loaded machine.
        _market = await TestMarket.StartAsync(servers, slotMs: 3000, redisConnection: _cluster.ConnectionString);
        _r1 = await _market.StartRelayAsync(TestMarket.Unlimited);
        _r2 = await _market.StartRelayAsync(TestMarket.Unlimited);
    }

    public async ValueTask DisposeAsync() => await _market.DisposeAsync();

    [Fact]
    public async Task Slots_on_different_shards_run_from_bids_to_l1_posting_and_archive()
    {
        var inbox = new InboxClient(L1Rpc.Connect(_market.Anvil.RpcUrl), _market.Deployment);
        var fromBlock = (ulong)(await inbox.Web3.Eth.Blocks.GetBlockNumber.SendRequestAsync()).Value;
        var shards = new HashSet<int>();
        var done = new List<(ulong Slot, Hash32 Winner, List<BidReceiptResponse> Receipts)>();
        // Three slots in a row, proposed one after the other: each bids on the head the previous one moved.
        for (var round = 0; round < 3; round++)
        {
            var a = await _market.NextAuctionAsync(_r1.Client, 1500);
            var master = await _cluster.MasterOfAsync($"pbs:{{{_market.Network}:s:{a.Slot}}}:bids");
            shards.Add(master.Port);
            var receipts = new List<BidReceiptResponse>();
            for (var i = 0; i < 6; i++)
            {
                var relay = i % 2 == 0 ? _r1 : _r2;
                var bid = TestMarket.Bid(a, TestMarket.Builders[i % 3], 10_000 + 1_000 * i + round);
                receipts.Add(await relay.Client.SubmitAsync(bid.Header, bid.Signature, bid.Payload));
            }
            await _market.WaitClosedAsync(a.Slot);
            using (var slot = await _r2.Client.GetJsonAsync($"relay/v1/data/slots/{a.Slot}"))
            {
                Assert.Equal("6", slot.RootElement.GetProperty("bid_count").GetString());
                var winner = Hash32.Parse(slot.RootElement.GetProperty("winner").GetProperty("header_hash").GetString()!);
                Assert.Equal(receipts[5].HeaderHash, winner);
                Assert.Equal(BidsMerkle.Root(receipts.Select(r => (r.HeaderHash, r.ReceivedAtMs))).ToString(), slot.RootElement.GetProperty("bids_root").GetString());
                var proposer = _market.ProposerOf(a.Slot);
                var (status, answer) = await _r1.Client.PostRawAsync("relay/v1/proposer/proposals", await _market.ProposalBodyAsync(_r1.Url, a.Slot, winner, proposer));
                Assert.True(status == 200, answer);
                done.Add((a.Slot, winner, receipts));
            }
            // The next auction builds on this header: the head (a global key, another shard) moved.
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (await ParentOfOpenAuctionAsync(_r2) != done[^1].Winner)
            {
                Assert.True(DateTime.UtcNow < deadline, $"the head did not move to slot {a.Slot}'s header on relay 2");
                await Task.Delay(100);
            }
        }
        Assert.True(shards.Count >= 2, $"the three slots' keys all hashed to one shard ({string.Join(',', shards)}): the test proves nothing about sharding");

        // L1 holds every header; the archive holds every bid.
        foreach (var (slot, winner, receipts) in done)
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (await inbox.HeaderOfSlotAsync(slot) == Hash32.Zero && DateTime.UtcNow < deadline) await Task.Delay(200);
            Assert.Equal(winner, await inbox.HeaderOfSlotAsync(slot));
            var archived = await _market.WaitArchivedBidsAsync(slot, receipts.Count);
            Assert.Equal(receipts.Select(r => r.HeaderHash).ToHashSet(), archived.Select(b => b.HeaderHash).ToHashSet());
        }
        var posted = await inbox.GetHeaderPostedAsync(fromBlock);
        foreach (var (slot, _, _) in done) Assert.Single(posted, p => p.Slot == slot);

        // Which shard does the work (docs/relay.md, "Redis Cluster").
        foreach (var master in await _cluster.MastersAsync())
            output.WriteLine($"master {master.Endpoint}: {await master.CommandCallsAsync("evalsha")} evalsha, {await master.CommandCallsAsync("hmget")} hmget, {await master.CommandCallsAsync("hget")} hget");
    }

    /// <summary>
    /// Every bid of a slot works on its slot's shard: the builders' debts are read once per slot and instance, not once
    /// per bid from the market's global shard (<c>{net}</c>, which also holds the head, the ledger, the archive and L1 queues),
    /// which would otherwise take one read per bid of every auction and bound the whole market by one node.
    /// </summary>
    [Fact]
    public async Task A_slots_bids_do_not_load_the_global_shard()
    {
        const int perBuilder = 100;
        var globalShard = await _cluster.MasterOfAsync($"pbs:{{{_market.Network}}}:ledger:owed");
        // A slot whose keys hash to another shard than the global keys (about two slots in three).
        OpenAuction a;
        RedisClusterNode slotShard;
        for (var tries = 0; ; tries++)
        {
            a = await _market.NextAuctionAsync(_r1.Client, 2000);
            slotShard = await _cluster.MasterOfAsync($"pbs:{{{_market.Network}:s:{a.Slot}}}:bids");
            if (slotShard.Port != globalShard.Port || tries == 8) break;
            await _market.WaitClosedAsync(a.Slot);
        }
        Assert.NotEqual(globalShard.Port, slotShard.Port);
        var before = await globalShard.CommandCallsAsync();
        var slotBefore = await slotShard.CommandCallsAsync();
        var accepted = 0;
        await Task.WhenAll(TestMarket.Builders.Select((builder, k) => Task.Run(async () =>
        {
            var relay = k % 2 == 0 ? _r1 : _r2;
            for (var i = 0; i < perBuilder; i++)
            {
                var bid = TestMarket.Bid(a, builder, 10_000 + k * perBuilder + i);
                await relay.Client.SubmitAsync(bid.Header, bid.Signature, bid.Payload);
                Interlocked.Increment(ref accepted);
            }
        })));
        var globalCalls = await globalShard.CommandCallsAsync() - before;
        var slotCalls = await slotShard.CommandCallsAsync() - slotBefore;
        output.WriteLine($"{accepted} bids: {slotCalls} calls on the slot's shard, {globalCalls} on the global shard");
        Assert.Equal(3 * perBuilder, accepted);
        Assert.True(slotCalls >= accepted, $"the slot's shard saw {slotCalls} calls for {accepted} bids: the bids went elsewhere");
        // Background work (auction scheduling, L1 poster lease, archive stream, events) also reaches the global shard;
        // a read per bid would be at least one call per bid on top.
        Assert.True(globalCalls < accepted / 3, $"the global shard saw {globalCalls} calls during {accepted} bids of one slot");
    }


    /// <summary>The open auction's parent, or null between auctions (503 unavailable until the next one opens).</summary>
    static async Task<Hash32?> ParentOfOpenAuctionAsync(RelayInstance relay)
    {
        try { return (await relay.Client.GetAuctionAsync()).ParentHash; }
        catch (RelayRefusedException e) when (e.Code == "unavailable") { return null; }
    }

}

/// <summary>
/// Losing the master that holds an open auction: kill -9 mid-auction, its replica promoted by the cluster. With the
/// relay's durability setting (a replica's confirmation, Redis WAIT, before each 202), every acknowledged bid is in
/// the slot's result; bids the relay could not get confirmed were refused (503), never acknowledged and then lost.
/// </summary>
public sealed class ClusterFailoverTests(TestServers servers, ITestOutputHelper output) : IAsyncLifetime
{
    TestMarket _market = null!;
    Testing.RedisCluster _cluster = null!;
    RelayInstance _r1 = null!, _r2 = null!;

    public async ValueTask InitializeAsync()
    {
        _cluster = await servers.StartOwnClusterAsync(nodeTimeoutMs: 2000);
        // 20 s slots: a failover (node timeout 2 s, election, clients re-reading the slot map) and the lost node's return
        // as a replica fit inside one auction on a loaded machine.
        _market = await TestMarket.StartAsync(servers, slotMs: 20_000, redisConnection: _cluster.ConnectionString);
        static void Durable(Dictionary<string, string?> c)
        {
            TestMarket.Unlimited(c);
            c["Relay:Durability:WaitReplicas"] = "1";
            c["Relay:Durability:WaitTimeoutMs"] = "300";
        }
        _r1 = await _market.StartRelayAsync(Durable);
        _r2 = await _market.StartRelayAsync(Durable);
    }

    public async ValueTask DisposeAsync() => await _market.DisposeAsync();

    static async Task<T> ReadAfterFailoverAsync<T>(RelayInstance relay, Func<Task<T>> read)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try { return await read(); }
            catch (RelayRefusedException e) when (e.Status == 503)
            {
                // Before RedisRouting, a relay whose client still believed the promoted node a replica (MOVED's rebuild does not
                // re-read roles; the role check ran every 60 s) answered 503 here for 30 s and more (1 of 4 runs here, 2
                // clean-clone CI runs); it now re-reads roles and map on the first write refused for a role, and heals in a
                // second or two.
                if (deadline.Elapsed > TimeSpan.FromSeconds(10))
                    throw new Xunit.Sdk.XunitException($"the relay answered 503 for 10 s after the failover; its last warnings:\n{relay.Log.Tail()}");
                await Task.Delay(200);
            }
        }
    }

    /// <summary>
    /// With the replica cut off, the master cannot get a bid confirmed: the bid is answered 503 unavailable with
    /// Retry-After (stored, not acknowledged), never 202; once the replica is back, the same bid resent gets its receipt.
    /// </summary>
    [Fact]
    public async Task A_bid_no_replica_confirms_is_refused_503_and_acknowledged_when_resent_after_the_replica_is_back()
    {
        var a = await _market.NextAuctionAsync(_r1.Client, 10_000);
        var master = await _cluster.MasterOfAsync($"pbs:{{{_market.Network}:s:{a.Slot}}}:bids");
        var replica = await _cluster.ReplicaOfAsync(master);
        var bid = TestMarket.Bid(a, TestMarket.Builders[0], 12_345);
        var body = Wire.ToUtf8(new BidSubmission(bid.Header, bid.Signature, bid.Payload), Wire.WriteBidSubmission);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        async Task<HttpResponseMessage> PostAsync()
        {
            using var content = new ByteArrayContent(body);
            content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
            return await http.PostAsync($"{_r1.Url}/relay/v1/builder/bids", content);
        }

        replica.Freeze();
        await master.CliAsync(CancellationToken.None, "CLIENT", "KILL", "TYPE", "replica");
        try
        {
            using var refused = await PostAsync();
            var text = await refused.Content.ReadAsStringAsync();
            Assert.True((int)refused.StatusCode == 503, $"{(int)refused.StatusCode}: {text}");
            Assert.NotNull(refused.Headers.RetryAfter);
            Assert.Contains("unavailable", text);
            Assert.Contains("did not confirm", text);
            // The same bid through the other instance: stored already (by the first), so the second writes nothing; its
            // connection has no write after the record for WAIT to count, unless it fences first. Still 503.
            using var content = new ByteArrayContent(body);
            content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
            using var viaOther = await http.PostAsync($"{_r2.Url}/relay/v1/builder/bids", content);
            Assert.True((int)viaOther.StatusCode == 503, $"the other instance answered a bid no replica holds {(int)viaOther.StatusCode}: {await viaOther.Content.ReadAsStringAsync()}");
        }
        finally
        {
            replica.Thaw();
        }
        // The replica reconnects and catches up; the resent bid is confirmed and acknowledged, as a duplicate of the stored one.
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            using var again = await PostAsync();
            if ((int)again.StatusCode == 202)
            {
                using var doc = JsonDocument.Parse(await again.Content.ReadAsStringAsync());
                Assert.Equal(Eip712.HashStruct(bid.Header).ToString(), doc.RootElement.GetProperty("header_hash").GetString());
                break;
            }
            Assert.True((int)again.StatusCode == 503, $"resent bid answered {(int)again.StatusCode}");
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(30), "the resent bid was not acknowledged within 30 s of the replica's return");
            await Task.Delay(200);
        }
    }

    [Fact]
    public async Task Killing_the_auctions_master_loses_no_acknowledged_bid()
    {
        var a = await _market.NextAuctionAsync(_r1.Client, 16_000);
        var timeline = Stopwatch.StartNew();
        var marks = new List<string>();
        void Mark(string what) => marks.Add($"{timeline.Elapsed.TotalSeconds:0.0} s {what}");
        var master = await _cluster.MasterOfAsync($"pbs:{{{_market.Network}:s:{a.Slot}}}:bids");
        var replica = await _cluster.ReplicaOfAsync(master);
        var acked = new System.Collections.Concurrent.ConcurrentDictionary<Hash32, string>();
        var refused = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
        var phase = "before";
        var stopAt = (long)a.ClosesAtMs - 400;
        long value = 10_000;

        var bidders = TestMarket.Builders.Select((builder, k) => Task.Run(async () =>
        {
            var relay = k % 2 == 0 ? _r1 : _r2;
            while (DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() < stopAt)
            {
                var p = Volatile.Read(ref phase);
                var bid = TestMarket.Bid(a, builder, Interlocked.Increment(ref value));
                try
                {
                    var r = await relay.Client.SubmitAsync(bid.Header, bid.Signature, bid.Payload);
                    acked[r.HeaderHash] = p;
                }
                catch (RelayRefusedException e)
                {
                    refused.AddOrUpdate($"{e.Status} {e.Code}", 1, (_, n) => n + 1);
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                {
                    refused.AddOrUpdate(e.GetType().Name, 1, (_, n) => n + 1); // not acknowledged: the builder may resend
                }
                await Task.Delay(20);
            }
        })).ToArray();

        async Task WaitAckedAsync(string p)
        {
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (!acked.Values.Contains(p))
            {
                Assert.True(DateTime.UtcNow < deadline, $"no bid acknowledged in phase '{p}' within 30 s ({Refusals()})");
                await Task.Delay(20);
            }
        }
        string Refusals() => string.Join(", ", refused.Select(r => $"{r.Value} x {r.Key}"));

        await WaitAckedAsync("before");
        Mark("acknowledged before");
        // The replica is cut off (frozen, and its replication link closed by the master, as a network partition would:
        // a frozen process alone still receives the stream into its socket buffer), bids keep coming, then the master
        // dies: whatever the master acknowledged since the cut exists nowhere else.
        replica.Freeze();
        await master.CliAsync(CancellationToken.None, "CLIENT", "KILL", "TYPE", "replica");
        Volatile.Write(ref phase, "stalled");
        var sentWhileStalled = acked.Count + refused.Values.Sum();
        var stallDeadline = DateTime.UtcNow.AddSeconds(30);
        while (acked.Count + refused.Values.Sum() < sentWhileStalled + 9 && DateTime.UtcNow < stallDeadline) await Task.Delay(20);
        Mark("replica cut off, bids sent");
        await master.KillAsync();
        replica.Thaw();
        Mark("master killed");
        Volatile.Write(ref phase, "failover");
        // The cluster promotes the replica; the lost node comes back (same folder and port) as the new master's replica.
        await _cluster.WaitPromotedAsync(replica, TimeSpan.FromSeconds(30));
        Mark("replica promoted");
        await master.StartAsync();
        await _cluster.WaitHealthyAsync(TimeSpan.FromSeconds(60));
        Mark("lost node back as a replica");
        Volatile.Write(ref phase, "after");
        await WaitAckedAsync("after");
        Mark("acknowledged after");
        output.WriteLine(string.Join("; ", marks));
        await Task.WhenAll(bidders);

        await _market.WaitClosedAsync(a.Slot, _r2);
        // Right after a failover a read can still meet a node the client has not re-mapped: 503, retried briefly.
        using var slot = await ReadAfterFailoverAsync(_r2, () => _r2.Client.GetJsonAsync($"relay/v1/data/slots/{a.Slot}"));
        var inResult = slot.RootElement.GetProperty("bids").EnumerateArray().Select(b => Hash32.Parse(b.GetProperty("header_hash").GetString()!)).ToHashSet();
        output.WriteLine($"acknowledged {acked.Count} ({string.Join(", ", acked.GroupBy(x => x.Value).Select(g => $"{g.Count()} {g.Key}"))}), refused: {Refusals()}; result holds {inResult.Count}");
        var lost = acked.Where(x => !inResult.Contains(x.Key)).ToList();
        Assert.True(lost.Count == 0, $"{lost.Count} acknowledged bids are not in the result ({string.Join(", ", lost.GroupBy(x => x.Value).Select(g => $"{g.Count()} acknowledged {g.Key}"))})");
        // Refusals say why, with a code: never a 500.
        Assert.All(refused.Keys, k => Assert.DoesNotContain("500", k));
    }
}
