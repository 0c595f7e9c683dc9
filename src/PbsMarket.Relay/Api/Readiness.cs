using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using PbsMarket.Relay.Archive;
using PbsMarket.Relay.Auctions;
using PbsMarket.Relay.Chain;
using StackExchange.Redis;

namespace PbsMarket.Relay.Api;

/// <summary>
/// Readiness as ASP.NET Core health checks: Redis, PostgreSQL, L1, the relay's registration on the inbox, an open
/// auction and the archive. /readyz answers 200 "ready", or 503 with one line per failing check ("name: what is wrong"),
/// never a stack trace.
/// </summary>
public static class Readiness
{
    public static IServiceCollection AddRelayReadiness(this IServiceCollection s)
    {
        // The server checks take Relay:ReadinessCheckTimeoutMs each; the others read state the loops keep.
        s.AddHealthChecks()
            .AddCheck<RedisCheck>("redis")
            .AddCheck<PostgresCheck>("postgres")
            .AddCheck<L1Check>("l1")
            .AddCheck<RelayKeyCheck>("relay_key")
            .AddCheck<AuctionsCheck>("auctions")
            .AddCheck<ArchiveCheck>("archive");
        return s;
    }

    public static IEndpointRouteBuilder MapReadiness(this IEndpointRouteBuilder app)
    {
        app.MapHealthChecks("/readyz", new HealthCheckOptions { ResponseWriter = WriteAsync }).WithTags("ops");
        return app;
    }

    static Task WriteAsync(HttpContext http, HealthReport report)
    {
        http.Response.ContentType = "text/plain; charset=utf-8";
        if (report.Status == HealthStatus.Healthy) return http.Response.WriteAsync("ready\n");
        var lines = report.Entries
            .Where(e => e.Value.Status != HealthStatus.Healthy)
            .Select(e => $"{e.Key}: {OneLine(e.Value.Description ?? e.Value.Exception?.Message ?? e.Value.Status.ToString())}\n");
        return http.Response.WriteAsync(string.Concat(lines));
    }

    static string OneLine(string text) => text.ReplaceLineEndings(" ");

    static HealthCheckResult Problem(string? problem) => problem is null ? HealthCheckResult.Healthy() : HealthCheckResult.Unhealthy(problem);

    sealed class RedisCheck(IConnectionMultiplexer redis, RelayOptions o) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken ct)
        {
            try
            {
                await redis.GetDatabase().PingAsync().WaitAsync(TimeSpan.FromMilliseconds(o.ReadinessCheckTimeoutMs), ct);
                return HealthCheckResult.Healthy();
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                return HealthCheckResult.Unhealthy(e.Message);
            }
        }
    }

    sealed class PostgresCheck(Npgsql.NpgsqlDataSource db, RelayOptions o) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken ct)
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
            deadline.CancelAfter(o.ReadinessCheckTimeoutMs);
            try
            {
                // A query, not just an open: a pooled connection opens without asking the server.
                await using var cmd = db.CreateCommand("SELECT 1");
                await cmd.ExecuteScalarAsync(deadline.Token);
                return HealthCheckResult.Healthy();
            }
            catch (Exception e) when (e is Npgsql.NpgsqlException or TimeoutException)
            {
                return HealthCheckResult.Unhealthy(e.Message);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                return HealthCheckResult.Unhealthy($"no answer to SELECT 1 within {o.ReadinessCheckTimeoutMs} ms");
            }
        }
    }

    sealed class L1Check(IChainView chain) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken ct) => Task.FromResult(Problem(chain.Problem));
    }

    sealed class RelayKeyCheck(L1ChainView chain, RelayOptions o) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken ct) => Task.FromResult(Problem(chain.RelayRegistered switch
        {
            false => $"the signing key {chain.RelayAddress} is not a registered, active, bonded relay on the inbox {o.Inbox}: L1 would refuse its results",
            null => "registration on L1 not read yet",
            true => null,
        }));
    }

    sealed class AuctionsCheck(AuctionScheduler scheduler) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken ct) =>
            Task.FromResult(scheduler.AuctionsOpen ? HealthCheckResult.Healthy() : HealthCheckResult.Unhealthy("none opened yet"));
    }

    sealed class ArchiveCheck(Archiver archiver) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken ct) => Task.FromResult(Problem(archiver.Problem));
    }
}
