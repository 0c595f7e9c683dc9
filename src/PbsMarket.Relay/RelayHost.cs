using Microsoft.Extensions.Options;
using Npgsql;
using OpenTelemetry.Metrics;
using PbsMarket.Relay.Api;
using PbsMarket.Relay.Archive;
using PbsMarket.Relay.Auctions;
using PbsMarket.Relay.Chain;
using PbsMarket.Relay.Infrastructure;
using StackExchange.Redis;

namespace PbsMarket.Relay;

/// <summary>The relay's composition: services, then endpoints. `pbs relay` and the tests both start it here.</summary>
public static class RelayHost
{
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder(args);
        builder.Configuration.AddEnvironmentVariables("PBS_");
        configure?.Invoke(builder);
        builder.AddRelay();
        var app = builder.Build();
        app.UseRelayErrors();
        app.UseRateLimiter();
        app.MapOpsApi();
        app.MapBuilderApi();
        app.MapProposerApi();
        app.MapDataApi();
        app.MapOpenApi("/openapi/{documentName}.json");
        app.MapDashboard();
        return app;
    }

    static void AddRelay(this WebApplicationBuilder builder)
    {
        var s = builder.Services;
        s.AddOptions<RelayOptions>().BindConfiguration(RelayOptions.Section).ValidateOnStart();
        s.AddSingleton<IValidateOptions<RelayOptions>, RelayOptionsValidation>();
        s.AddSingleton(sp => sp.GetRequiredService<IOptions<RelayOptions>>().Value);
        s.AddSingleton(TimeProvider.System);
        s.AddSingleton<Market>();
        s.AddSingleton(sp => new InstanceInfo(sp.GetRequiredService<RelayOptions>().InstanceId ?? $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..6]}"));
        s.AddSingleton<IConnectionMultiplexer>(sp =>
        {
            var o = sp.GetRequiredService<RelayOptions>();
            var config = ConfigurationOptions.Parse(o.Redis);
            config.AbortOnConnectFail = false; // start without Redis and answer 503 until it is there
            config.ConnectTimeout = Math.Min(config.ConnectTimeout, o.RedisTimeoutMs);
            config.SyncTimeout = Math.Min(config.SyncTimeout, o.RedisTimeoutMs);
            config.AsyncTimeout = Math.Min(config.AsyncTimeout, o.RedisTimeoutMs);
            config.ConfigCheckSeconds = Math.Min(config.ConfigCheckSeconds, o.RedisConfigCheckSeconds);
            config.ClientName = "pbs-relay";
            return ConnectionMultiplexer.Connect(config);
        });
        s.AddSingleton(sp => new RedisKeys(sp.GetRequiredService<RelayOptions>().Network));
        s.AddSingleton(sp =>
        {
            var o = sp.GetRequiredService<RelayOptions>();
            var csb = new NpgsqlConnectionStringBuilder(o.Postgres);
            if (csb.Timeout > o.PostgresTimeoutSeconds) csb.Timeout = o.PostgresTimeoutSeconds;
            return new NpgsqlDataSourceBuilder(csb.ConnectionString).Build();
        });
        s.AddSingleton<RelayKey>();
        s.AddSingleton<RelayMetrics>();
        s.AddOpenTelemetry().WithMetrics(m => m
            .AddMeter(RelayMetrics.MeterName)
            .AddPrometheusExporter(o =>
            {
                o.ScrapeResponseCacheDurationMilliseconds = 0; // a scrape sees what was recorded before it
                o.ScopeInfoEnabled = false; // no otel_scope_name label: the names are the relay's own (docs/relay.md)
                o.TargetInfoEnabled = false; // Prometheus labels the target itself
            }));
        // Listening is by meter name, process-wide: keep only this host's meter (tests run several relays in one process).
        s.ConfigureOpenTelemetryMeterProvider((sp, b) =>
        {
            var own = sp.GetRequiredService<RelayMetrics>().Meter;
            b.AddView(i => ReferenceEquals(i.Meter, own) ? null : MetricStreamConfiguration.Drop);
        });
        s.AddSingleton<L1ChainView>();
        s.AddSingleton<IChainView>(sp => sp.GetRequiredService<L1ChainView>());
        s.AddHostedService(sp => sp.GetRequiredService<L1ChainView>());
        s.AddSingleton<ReplicaConfirmer>();
        s.AddSingleton<RedisRouting>();
        s.AddSingleton<AuctionStore>();
        s.AddSingleton<DebtLedger>();
        s.AddSingleton<ArchiveQueue>();
        s.AddSingleton<EventHub>();
        s.AddHostedService(sp => sp.GetRequiredService<EventHub>());
        s.AddSingleton<ResultService>();
        s.AddSingleton<BidSimulation>();
        s.AddSingleton<SimulationVerdicts>();
        s.AddSingleton<SimulationPrefetcher>();
        s.AddHostedService(sp => sp.GetRequiredService<SimulationPrefetcher>());
        s.AddSingleton<BidService>();
        s.AddSingleton<ProposalService>();
        s.AddSingleton<SlotReader>();
        s.AddSingleton<Archiver>();
        s.AddHostedService(sp => sp.GetRequiredService<Archiver>());
        s.AddSingleton<AuctionScheduler>();
        s.AddHostedService(sp => sp.GetRequiredService<AuctionScheduler>());
        s.AddHostedService<L1PosterService>();
        s.AddRelayLimits();
        s.AddRelayReadiness();
        s.AddOpenApi();
    }

    /// <summary>
    /// Every failure becomes problem+json with a stable code: Redis unreachable is a fast 503 with
    /// Retry-After; anything unexpected is a 500 whose body names no internals.
    /// </summary>
    static void UseRelayErrors(this WebApplication app)
    {
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("PbsMarket.Relay.Errors");
        var routing = app.Services.GetRequiredService<RedisRouting>();
        app.Use(async (http, next) =>
        {
            try
            {
                await next(http);
            }
            catch (Exception e) when (RedisRouting.IsTransient(e) && !http.Response.HasStarted)
            {
                log.LogWarning("{Method} {Path}: Redis unavailable: {Error}", http.Request.Method, http.Request.Path, e.Message);
                routing.Observe(e);
                await new Rejection("unavailable", "the relay's state store is unreachable; retry shortly").ToResult(1).ExecuteAsync(http);
            }
            catch (BadHttpRequestException e) when (!http.Response.HasStarted)
            {
                // Kestrel's limits (body too slow, too large, bad framing): the client's fault, never a 500.
                var code = e.StatusCode switch { 413 => "payload_too_large", 408 => "request_timeout", _ => "malformed" };
                await new Rejection(code, e.Message).ToResult().ExecuteAsync(http);
            }
            catch (Exception e) when (e is not OperationCanceledException && !http.Response.HasStarted)
            {
                log.LogError(e, "{Method} {Path} failed", http.Request.Method, http.Request.Path);
                await new Rejection("internal", "internal error; it has been logged").ToResult().ExecuteAsync(http);
            }
        });
    }

    /// <summary>Serves the dashboard (web/dist) at / when it has been built.</summary>
    static void MapDashboard(this WebApplication app)
    {
        var dir = Environment.GetEnvironmentVariable("PBS_WEB_ROOT") ?? FindWebRoot();
        if (dir is null || !Directory.Exists(dir)) return;
        var files = new Microsoft.Extensions.FileProviders.PhysicalFileProvider(dir);
        app.UseDefaultFiles(new DefaultFilesOptions { FileProvider = files });
        app.UseStaticFiles(new StaticFileOptions { FileProvider = files });
    }

    static string? FindWebRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            var candidate = Path.Combine(d.FullName, "web", "dist");
            if (Directory.Exists(candidate)) return candidate;
        }
        return null;
    }
}
