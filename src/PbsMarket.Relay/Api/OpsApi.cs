using PbsMarket.Relay.Archive;
using PbsMarket.Relay.Auctions;
using PbsMarket.Relay.Chain;
using PbsMarket.Relay.Infrastructure;
using StackExchange.Redis;

namespace PbsMarket.Relay.Api;

/// <summary>Liveness, readiness (Redis, PostgreSQL and L1 all answer) and Prometheus metrics.</summary>
public static class OpsApi
{
    public static IEndpointRouteBuilder MapOpsApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/livez", () => Results.Text("ok\n")).WithTags("ops");
        app.MapGet("/readyz", Ready).WithTags("ops");
        // Prometheus text, written by OpenTelemetry's exporter; the archive backlog is read from Redis just before.
        app.MapPrometheusScrapingEndpoint("/metrics", meterProvider: null, configureBranchedPipeline: branch => branch.Use(async (http, next) =>
        {
            long backlog;
            try
            {
                backlog = await http.RequestServices.GetRequiredService<ArchiveQueue>().BacklogAsync();
            }
            catch (RedisException)
            {
                backlog = -1;
            }
            http.RequestServices.GetRequiredService<RelayMetrics>().SetArchiveBacklog(backlog);
            await next(http);
        }), optionsName: null).WithTags("ops");
        return app;
    }

    static async Task<IResult> Ready(IConnectionMultiplexer redis, Npgsql.NpgsqlDataSource db, IChainView chain, Archiver archiver, Auctions.AuctionScheduler scheduler)
    {
        var problems = new List<string>();
        try
        {
            await redis.GetDatabase().PingAsync().WaitAsync(TimeSpan.FromSeconds(1));
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            problems.Add($"redis: {e.Message}");
        }
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            // A query, not just an open: a pooled connection opens without asking the server.
            await using var cmd = db.CreateCommand("SELECT 1");
            await cmd.ExecuteScalarAsync(cts.Token);
        }
        catch (Exception e) when (e is Npgsql.NpgsqlException or OperationCanceledException or TimeoutException)
        {
            problems.Add($"postgres: {e.Message}");
        }
        if (chain.Problem is { } l1) problems.Add($"l1: {l1}");
        else if (!scheduler.AuctionsOpen) problems.Add("auctions: none opened yet");
        if (archiver.Problem is { } a && !problems.Any(p => p.StartsWith("postgres", StringComparison.Ordinal))) problems.Add($"archive: {a}");
        return problems.Count == 0
            ? Results.Text("ready\n")
            : Results.Text(string.Join('\n', problems) + "\n", statusCode: StatusCodes.Status503ServiceUnavailable);
    }
}
