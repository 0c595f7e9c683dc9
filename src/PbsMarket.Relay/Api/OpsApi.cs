using PbsMarket.Relay.Archive;
using PbsMarket.Relay.Auctions;
using PbsMarket.Relay.Chain;
using PbsMarket.Relay.Infrastructure;
using StackExchange.Redis;

namespace PbsMarket.Relay.Api;

/// <summary>Liveness, readiness (<see cref="Readiness"/>) and Prometheus metrics.</summary>
public static class OpsApi
{
    public static IEndpointRouteBuilder MapOpsApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/livez", () => Results.Text("ok\n")).WithTags("ops");
        app.MapReadiness();
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
}
