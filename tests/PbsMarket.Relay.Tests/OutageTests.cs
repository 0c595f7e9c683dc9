using System.Diagnostics;
using Npgsql;
using PbsMarket.Builder;
using PbsMarket.Core;
using PbsMarket.Testing;
using PbsMarket.Testing.Market;

namespace PbsMarket.Relay.Tests;

/// <summary>PostgreSQL or Redis going away: bids keep flowing (or fail fast), nothing acknowledged is lost.</summary>
public sealed class OutageTests(TestServers servers)
{
    [Fact]
    public async Task Bids_accepted_while_postgres_is_down_are_archived_once_it_is_back()
    {
        var pg = await servers.StartOwnAsync(new PostgresServer());
        await using var market = await TestMarket.StartAsync(servers, ownPostgres: pg);
        var relay = await market.StartRelayAsync();

        var acknowledged = new List<(ulong Slot, Hash32 Hash)>();
        await pg.StopAsync();
        using (var http = new HttpClient())
        {
            var ready = await http.GetAsync($"{relay.Url}/readyz");
            Assert.Equal(503, (int)ready.StatusCode);
            Assert.Contains("postgres", await ready.Content.ReadAsStringAsync());
        }
        for (var round = 0; round < 2; round++)
        {
            var a = await market.NextAuctionAsync(relay.Client, 600);
            for (var i = 0; i < 3; i++)
            {
                var bid = TestMarket.Bid(a, TestMarket.Builders[i], 5_000 + i);
                acknowledged.Add((a.Slot, (await relay.Client.SubmitAsync(bid.Header, bid.Signature, bid.Payload)).HeaderHash));
            }
            await market.WaitClosedAsync(a.Slot);
        }
        // Archive attempts fail meanwhile: wait until the relay has counted one, then bring PostgreSQL back.
        await WaitArchiveFailedAsync(relay);
        await pg.StartAsync();

        var deadline = Stopwatch.StartNew();
        var archived = new HashSet<(ulong, Hash32)>();
        while (deadline.Elapsed < TimeSpan.FromSeconds(60))
        {
            archived.Clear();
            await using var conn = new NpgsqlConnection(market.PostgresConnection);
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand("SELECT slot, header_hash FROM bids", conn);
            await using var r = await cmd.ExecuteReaderAsync();
            while (await r.ReadAsync()) archived.Add(((ulong)r.GetInt64(0), Hash32.Parse(r.GetString(1))));
            if (acknowledged.All(archived.Contains)) break;
            await Task.Delay(200);
        }
        Assert.All(acknowledged, x => Assert.Contains(x, archived));
        await relay.WaitReadyAsync();
    }

    /// <summary>
    /// kill -9 of PostgreSQL while bids arrive (no shutdown, no checkpoint), then a restart: the archive ends complete:
    /// every acknowledged bid, every closed slot's result, every proposal and the equivocation evidence.
    /// </summary>
    [Fact]
    public async Task Postgres_killed_while_bids_arrive_ends_with_a_complete_archive()
    {
        var pg = await servers.StartOwnAsync(new PostgresServer());
        // 3 s slots: three bids and a proposal (a second, conflicting one in the last slot) per slot on a loaded machine.
        await using var market = await TestMarket.StartAsync(servers, ownPostgres: pg, slotMs: 3000);
        var relay = await market.StartRelayAsync();
        var slots = new List<(ulong Slot, List<Hash32> Bids, Hash32 Proposed)>();
        ulong equivocated = 0;
        for (var round = 0; round < 3; round++)
        {
            var a = await market.NextAuctionAsync(relay.Client, 1500);
            var bids = new List<Hash32>();
            for (var i = 0; i < 3; i++)
            {
                var bid = TestMarket.Bid(a, TestMarket.Builders[i], 5_000 + 100 * round + i);
                bids.Add((await relay.Client.SubmitAsync(bid.Header, bid.Signature, bid.Payload)).HeaderHash);
                if (round == 0 && i == 0) await pg.KillAsync(); // mid-auction, between two acknowledged bids
            }
            await market.WaitClosedAsync(a.Slot);
            var proposer = market.ProposerOf(a.Slot);
            var (status, answer) = await relay.Client.PostRawAsync("relay/v1/proposer/proposals", await market.ProposalBodyAsync(relay.Url, a.Slot, bids[2], proposer));
            Assert.True(status == 200, answer);
            if (round == 2)
            {
                // Last round, so the slashed proposer's later slots do not matter: a second header for the same slot.
                var (eq, eqAnswer) = await relay.Client.PostRawAsync("relay/v1/proposer/proposals", await market.ProposalBodyAsync(relay.Url, a.Slot, bids[0], proposer));
                Assert.True(eq == 409, eqAnswer);
                equivocated = a.Slot;
            }
            slots.Add((a.Slot, bids, bids[2]));
        }
        // Archive attempts fail meanwhile: wait until the relay has counted one, then bring PostgreSQL back.
        await WaitArchiveFailedAsync(relay);
        await pg.StartAsync();

        var deadline = Stopwatch.StartNew();
        string missing;
        while (true)
        {
            missing = await MissingFromArchiveAsync(market.PostgresConnection, slots, equivocated);
            if (missing.Length == 0) break;
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(60), $"the archive is still incomplete after 60 s: {missing}");
            await Task.Delay(200);
        }
        await relay.WaitReadyAsync();
    }

    /// <summary>
    /// The L1 node stops answering for 30 s (frozen: connections hang, as with a stalled or partitioned node), from early
    /// in an epoch (before the next epoch's seed is final) into the next epoch. Promised: no auction opens on a proposer
    /// set the relay could not read (the next epoch's slots stay closed until L1 is back), every answer meanwhile is
    /// prompt and is either a normal one or 503 unavailable with Retry-After (never a 500), and once L1 answers again
    /// the posting resumes: the header proposed during the outage reaches L1 once, the one posted before is not posted again.
    /// </summary>
    [Fact]
    public async Task L1_down_for_30_s_opens_no_auction_on_an_unread_epoch_and_posting_resumes_without_duplicates()
    {
        await using var market = await TestMarket.StartAsync(servers);
        var relay = await market.StartRelayAsync();
        var inbox = new PbsMarket.L1.InboxClient(PbsMarket.L1.L1Rpc.Connect(market.Anvil.RpcUrl), market.Deployment);
        var fromBlock = (ulong)(await inbox.Web3.Eth.Blocks.GetBlockNumber.SendRequestAsync()).Value;
        const ulong epochSlots = 32;

        async Task<Hash32> ProposeAsync(PbsMarket.Builder.OpenAuction a)
        {
            var bid = TestMarket.Bid(a, TestMarket.Builders[0], 7_000);
            var receipt = await relay.Client.SubmitAsync(bid.Header, bid.Signature, bid.Payload);
            await market.WaitClosedAsync(a.Slot);
            var (status, answer) = await relay.Client.PostRawAsync("relay/v1/proposer/proposals", await market.ProposalBodyAsync(relay.Url, a.Slot, receipt.HeaderHash, market.ProposerOf(a.Slot)));
            Assert.True(status == 200, answer);
            return receipt.HeaderHash;
        }

        // A slot proposed and posted before the outage.
        var before = await market.NextAuctionAsync(relay.Client, 400);
        var beforeHash = await ProposeAsync(before);
        var posted = Stopwatch.StartNew();
        while (await inbox.HeaderOfSlotAsync(before.Slot) != beforeHash)
        {
            Assert.True(posted.Elapsed < TimeSpan.FromSeconds(60), $"slot {before.Slot} was not posted before the outage");
            await Task.Delay(200);
        }
        // Start early in an epoch (slot 4-10 of it): the next epoch's seed becomes final at slot 16, during the outage.
        var phaseWait = Stopwatch.StartNew();
        while (market.Clock.CurrentSlot % epochSlots is < 4 or > 10)
        {
            Assert.True(phaseWait.Elapsed < TimeSpan.FromSeconds(60), "no early slot of an epoch within 60 s");
            await Task.Delay(100);
        }
        var during = await market.NextAuctionAsync(relay.Client, 400);
        var epoch = during.Slot / epochSlots;
        market.Anvil.Freeze();
        var thawAt = DateTime.UtcNow.AddSeconds(30);
        Hash32 duringHash;
        try
        {
            // The open epoch's auctions go on from what the relay read before: a proposal is taken, to post later.
            duringHash = await ProposeAsync(during);

            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            var answers = new List<string>();
            var nextEpochAuctions = new List<ulong>();
            while (DateTime.UtcNow < thawAt)
            {
                var t = Stopwatch.StartNew();
                using var r = await http.GetAsync($"{relay.Url}/relay/v1/builder/auction");
                var body = await r.Content.ReadAsStringAsync();
                Assert.True(t.Elapsed < TimeSpan.FromSeconds(15), $"the relay took {t.Elapsed.TotalSeconds:0.0} s to answer while L1 was down");
                var status = (int)r.StatusCode;
                Assert.True(status is 200 or 503, $"GET auction answered {status} while L1 was down: {body}");
                if (status == 503)
                {
                    Assert.True(r.Headers.RetryAfter is not null, "a 503 without Retry-After");
                    Assert.Contains("unavailable", body);
                }
                else
                {
                    using var doc = System.Text.Json.JsonDocument.Parse(body);
                    var slot = ulong.Parse(doc.RootElement.GetProperty("slot").GetString()!, System.Globalization.CultureInfo.InvariantCulture);
                    if (slot / epochSlots > epoch) nextEpochAuctions.Add(slot);
                }
                answers.Add(status.ToString(System.Globalization.CultureInfo.InvariantCulture));
                await Task.Delay(250);
            }
            Assert.True(market.Clock.CurrentSlot / epochSlots > epoch, "the outage did not reach the next epoch: the test proves nothing about it");
            Assert.True(nextEpochAuctions.Count == 0, $"auctions of epoch {epoch + 1} opened while L1 was down (slots {string.Join(", ", nextEpochAuctions.Distinct())}): their proposer set and seed were never read final");
            Assert.Contains("503", answers);
        }
        finally
        {
            market.Anvil.Thaw();
        }

        // Back: the outage's proposal is posted, once; the earlier one is not posted again; auctions resume.
        var resumed = Stopwatch.StartNew();
        while (await inbox.HeaderOfSlotAsync(during.Slot) != duringHash)
        {
            Assert.True(resumed.Elapsed < TimeSpan.FromSeconds(90), $"slot {during.Slot}, proposed during the outage, was not posted within 90 s of L1's return");
            await Task.Delay(250);
        }
        var events = await inbox.GetHeaderPostedAsync(fromBlock);
        Assert.Single(events, e => e.Slot == before.Slot);
        Assert.Single(events, e => e.Slot == during.Slot);
        var next = await market.NextAuctionAsync(relay.Client, 200);
        Assert.True(next.Slot / epochSlots > epoch, $"slot {next.Slot}");
    }

    /// <summary>
    /// kill -9 of Redis (append-only file on, appendfsync everysec) in the middle of an auction, then a restart from its
    /// file: the two relays resume on the right head (the proposed header of the slot before), and the auction that was
    /// open ends with every bid acknowledged before the kill in its result. (Redis writes each command to the file before
    /// it answers, so a process kill loses nothing acknowledged; machine loss is another matter: docs/relay.md.)
    /// </summary>
    [Fact]
    public async Task Redis_killed_and_restarted_from_its_append_only_file_keeps_the_head_and_every_acknowledged_bid()
    {
        var redis = await servers.StartOwnAsync(new RedisServer(appendFsync: "everysec"));
        // 3 s slots: bids, a proposal, a kill and a restart within one auction on a loaded machine.
        await using var market = await TestMarket.StartAsync(servers, ownRedis: redis, slotMs: 3000);
        var r1 = await market.StartRelayAsync();
        var r2 = await market.StartRelayAsync();

        var a = await market.NextAuctionAsync(r1.Client, 1500);
        var first = TestMarket.Bid(a, TestMarket.Builders[0], 9_000);
        var proposed = (await r1.Client.SubmitAsync(first.Header, first.Signature, first.Payload)).HeaderHash;
        await market.WaitClosedAsync(a.Slot);
        var (status, answer) = await r1.Client.PostRawAsync("relay/v1/proposer/proposals", await market.ProposalBodyAsync(r1.Url, a.Slot, proposed, market.ProposerOf(a.Slot)));
        Assert.True(status == 200, answer);

        // The next auction, on that head: bids through both relays, then Redis dies with the auction open.
        var b = await NextAuctionOnAsync(market, r2, proposed);
        var acknowledged = new List<Hash32>();
        for (var i = 0; i < 4; i++)
        {
            var bid = TestMarket.Bid(b, TestMarket.Builders[i % 3], 10_000 + i);
            acknowledged.Add((await (i % 2 == 0 ? r1 : r2).Client.SubmitAsync(bid.Header, bid.Signature, bid.Payload)).HeaderHash);
        }
        await redis.KillAsync();
        await redis.StartAsync();
        await r1.WaitReadyAsync();
        await r2.WaitReadyAsync();

        await market.WaitClosedAsync(b.Slot, r2);
        using (var slot = await r2.Client.GetJsonAsync($"relay/v1/data/slots/{b.Slot}"))
        {
            var inResult = slot.RootElement.GetProperty("bids").EnumerateArray().Select(x => Hash32.Parse(x.GetProperty("header_hash").GetString()!)).ToHashSet();
            Assert.All(acknowledged, h => Assert.Contains(h, inResult));
        }
        // Both relays still build on the proposed header (B was never proposed).
        foreach (var relay in new[] { r1, r2 })
        {
            var next = await market.NextAuctionAsync(relay.Client, 200);
            Assert.Equal(proposed, next.ParentHash);
        }
    }

    /// <summary>The next open auction whose parent is <paramref name="parent"/> (the head moves a moment after a proposal).</summary>
    static async Task<PbsMarket.Builder.OpenAuction> NextAuctionOnAsync(TestMarket market, RelayInstance relay, Hash32 parent)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var a = await market.NextAuctionAsync(relay.Client, 1200);
            if (a.ParentHash == parent) return a;
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(30), $"no auction on {parent} within 30 s (slot {a.Slot} is on {a.ParentHash})");
            await Task.Delay(100);
        }
    }

    /// <summary>Waits until the relay has counted a failed archive attempt (PostgreSQL is down).</summary>
    static async Task WaitArchiveFailedAsync(RelayInstance relay)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var failedOnce = Stopwatch.StartNew();
        while (!(await http.GetStringAsync($"{relay.Url}/metrics")).Contains("pbs_archive_errors_total", StringComparison.Ordinal))
        {
            Assert.True(failedOnce.Elapsed < TimeSpan.FromSeconds(60), "the archiver never reported a failed attempt while PostgreSQL was down");
            await Task.Delay(100);
        }
    }

    /// <summary>What the archive lacks of the given slots (bids, results with their proposal, proposals, evidence); empty when complete.</summary>
    static async Task<string> MissingFromArchiveAsync(string connection, List<(ulong Slot, List<Hash32> Bids, Hash32 Proposed)> slots, ulong equivocated)
    {
        var missing = new List<string>();
        try
        {
            await using var conn = new NpgsqlConnection(connection);
            await conn.OpenAsync();
            async Task<List<string>> ColumnAsync(string sql, ulong slot)
            {
                await using var cmd = new NpgsqlCommand(sql, conn) { Parameters = { new() { Value = (long)slot } } };
                await using var r = await cmd.ExecuteReaderAsync();
                var values = new List<string>();
                while (await r.ReadAsync()) values.Add(r.IsDBNull(0) ? "" : r.GetValue(0).ToString()!);
                return values;
            }
            foreach (var (slot, bids, proposed) in slots)
            {
                var archived = (await ColumnAsync("SELECT header_hash FROM bids WHERE slot = $1", slot)).Select(Hash32.Parse).ToHashSet();
                var lacking = bids.Count(b => !archived.Contains(b));
                if (lacking > 0) missing.Add($"slot {slot}: {lacking} of {bids.Count} bids");
                var result = await ColumnAsync("SELECT bid_count::text || '|' || coalesce(proposed_header_hash, '') FROM slots WHERE slot = $1", slot);
                if (result.Count == 0) missing.Add($"slot {slot}: result");
                else if (result[0] != $"{bids.Count}|{proposed}") missing.Add($"slot {slot}: result row {result[0]}");
                if ((await ColumnAsync("SELECT header_hash FROM proposals WHERE slot = $1", slot)) is not [var p] || p != proposed.ToString())
                    missing.Add($"slot {slot}: proposal");
            }
            if ((await ColumnAsync("SELECT second_hash FROM equivocations WHERE slot = $1", equivocated)).Count == 0)
                missing.Add($"slot {equivocated}: equivocation evidence");
        }
        catch (NpgsqlException e)
        {
            missing.Add($"PostgreSQL not answering yet ({e.Message})");
        }
        return string.Join("; ", missing);
    }

    [Fact]
    public async Task Redis_unreachable_gives_a_fast_503_with_retry_after()
    {
        var redis = await servers.StartOwnAsync(new RedisServer());
        await using var market = await TestMarket.StartAsync(servers, ownRedis: redis);
        var relay = await market.StartRelayAsync();
        var a = await market.NextAuctionAsync(relay.Client, 600);
        await redis.KillAsync();

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        var bid = TestMarket.Bid(a, TestMarket.Builders[0], 5_000);
        var body = Wire.ToUtf8(new BidSubmission(bid.Header, bid.Signature, bid.Payload), Wire.WriteBidSubmission);
        var timer = Stopwatch.StartNew();
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        using var response = await http.PostAsync($"{relay.Url}/relay/v1/builder/bids", content);
        timer.Stop();
        Assert.Equal(503, (int)response.StatusCode);
        Assert.True(response.Headers.RetryAfter is not null, "Retry-After is missing");
        Assert.Contains("unavailable", await response.Content.ReadAsStringAsync());
        // Fast: the relay gives up on Redis after its 2 s connect/sync timeouts, not after the client's patience.
        // The bound leaves room for a loaded machine and still tells a quick refusal from a hang.
        Assert.True(timer.Elapsed < TimeSpan.FromSeconds(15), $"took {timer.Elapsed}");

        var ready = await http.GetAsync($"{relay.Url}/readyz");
        Assert.Equal(503, (int)ready.StatusCode);
        Assert.Contains("redis", await ready.Content.ReadAsStringAsync());

        // Back on the same port: the relay recovers without a restart.
        await redis.StartAsync();
        await relay.WaitReadyAsync();
        var next = await market.NextAuctionAsync(relay.Client, 600);
        var again = TestMarket.Bid(next, TestMarket.Builders[0], 5_000);
        Assert.Equal(Eip712.HashStruct(again.Header), (await relay.Client.SubmitAsync(again.Header, again.Signature, again.Payload)).HeaderHash);
    }
}
