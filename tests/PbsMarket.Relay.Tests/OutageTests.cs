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
        using (var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) })
        {
            var failedOnce = Stopwatch.StartNew();
            while (!(await http.GetStringAsync($"{relay.Url}/metrics")).Contains("pbs_archive_errors_total", StringComparison.Ordinal))
            {
                Assert.True(failedOnce.Elapsed < TimeSpan.FromSeconds(60), "the archiver never reported a failed attempt while PostgreSQL was down");
                await Task.Delay(100);
            }
        }
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
        // The archiver failed meanwhile (and said so); PostgreSQL comes back from its files after the kill.
        using (var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) })
        {
            var failedOnce = Stopwatch.StartNew();
            while (!(await http.GetStringAsync($"{relay.Url}/metrics")).Contains("pbs_archive_errors_total", StringComparison.Ordinal))
            {
                Assert.True(failedOnce.Elapsed < TimeSpan.FromSeconds(60), "the archiver never reported a failed attempt while PostgreSQL was down");
                await Task.Delay(100);
            }
        }
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
