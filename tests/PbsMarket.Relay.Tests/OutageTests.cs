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
