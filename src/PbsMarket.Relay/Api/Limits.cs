using System.Globalization;
using System.Net;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using PbsMarket.Core;

namespace PbsMarket.Relay.Api;

/// <summary>
/// The limits every request meets before a handler runs: Kestrel's (connections, header time, body rate and
/// size) and per-address rate limits; plus the per-builder bid limiter that <see cref="Auctions.BidService"/>
/// applies once a bid's signature is verified (so nobody can spend another builder's quota).
/// </summary>
public static class Limits
{
    public static void AddRelayLimits(this IServiceCollection s)
    {
        s.AddOptions<KestrelServerOptions>().Configure<RelayOptions>((k, o) =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxConcurrentConnections = o.MaxConnections;
            k.Limits.MaxConcurrentUpgradedConnections = o.MaxConnections;
            // Checked by Kestrel as bytes arrive (and against a declared Content-Length, before any buffering).
            k.Limits.MaxRequestBodySize = BodyLimit(o);
            k.Limits.MinRequestBodyDataRate = new MinDataRate(o.MinBodyBytesPerSecond, TimeSpan.FromSeconds(o.MinBodyRateGraceSeconds));
            k.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(o.RequestHeadersTimeoutSeconds);
            k.Limits.MaxRequestHeadersTotalSize = 16 * 1024;
            k.Limits.MaxRequestLineSize = 8 * 1024;
            k.Limits.KeepAliveTimeout = TimeSpan.FromSeconds(o.KeepAliveTimeoutSeconds);
        });
        s.AddSingleton<BuilderRateLimiter>();
        s.AddRateLimiter(r =>
        {
            r.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, (bool, IPAddress)>(http =>
            {
                var o = http.RequestServices.GetRequiredService<RelayOptions>();
                var bids = http.Request.Path.StartsWithSegments("/relay/v1/builder/bids");
                var address = http.Connection.RemoteIpAddress ?? IPAddress.None;
                var perSecond = bids ? o.BidRequestsPerSecondPerAddress : o.RequestsPerSecondPerAddress;
                return RateLimitPartition.GetTokenBucketLimiter((bids, address), _ => Bucket(perSecond));
            });
            // The data API as a whole: per-address limits cannot stop many addresses adding up, so at most this many data
            // reads run at once (others queue briefly, then get rate_limited); bidding never waits for them.
            r.AddPolicy(DataPolicy, http => RateLimitPartition.GetConcurrencyLimiter("data", _ => new ConcurrencyLimiterOptions
            {
                PermitLimit = http.RequestServices.GetRequiredService<RelayOptions>().MaxConcurrentDataRequests,
                QueueLimit = 4 * http.RequestServices.GetRequiredService<RelayOptions>().MaxConcurrentDataRequests,
                QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
            }));
            r.OnRejected = async (ctx, ct) =>
            {
                var retry = ctx.Lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? Math.Max(1, (int)Math.Ceiling(after.TotalSeconds)) : 1;
                await new Rejection("rate_limited", $"too many requests from {ctx.HttpContext.Connection.RemoteIpAddress}; retry in {retry} s").ToResult(retry).ExecuteAsync(ctx.HttpContext);
            };
        });
    }

    public const string DataPolicy = "data";

    public static long BodyLimit(RelayOptions o) => o.MaxPayloadBytes * 2L + 64 * 1024;

    internal static TokenBucketRateLimiterOptions Bucket(int perSecond) => new()
    {
        TokenLimit = perSecond,
        TokensPerPeriod = perSecond,
        ReplenishmentPeriod = TimeSpan.FromSeconds(1),
        QueueLimit = 0,
        AutoReplenishment = true,
    };

    /// <summary>Streams (SSE) hold a connection, not a request rate; they are exempt from the limiter (connections are capped).</summary>
    public static IEndpointConventionBuilder WithoutRateLimit(this IEndpointConventionBuilder b) => b.DisableRateLimiting();
}

/// <summary>Bids per builder per second, counted after the signature check (a bid only spends its own signer's quota).</summary>
public sealed class BuilderRateLimiter(RelayOptions options) : IDisposable
{
    readonly PartitionedRateLimiter<Address> _limiter = PartitionedRateLimiter.Create<Address, Address>(
        b => RateLimitPartition.GetTokenBucketLimiter(b, _ => Limits.Bucket(options.BidsPerSecondPerBuilder)));

    /// <summary>Null when the bid may go on; else the refusal, with the seconds to wait.</summary>
    public (Rejection Rejection, int RetryAfter)? TryAcquire(Address builder)
    {
        using var lease = _limiter.AttemptAcquire(builder);
        if (lease.IsAcquired) return null;
        var retry = lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? Math.Max(1, (int)Math.Ceiling(after.TotalSeconds)) : 1;
        return (new Rejection("rate_limited", string.Create(CultureInfo.InvariantCulture, $"builder {builder} sent more than {options.BidsPerSecondPerBuilder} bids in a second; retry in {retry} s")), retry);
    }

    public void Dispose() => _limiter.Dispose();
}
