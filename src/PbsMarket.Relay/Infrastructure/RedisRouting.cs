using StackExchange.Redis;

namespace PbsMarket.Relay.Infrastructure;

/// <summary>
/// Mends a stale Redis Cluster view after a failover (read in StackExchange.Redis 2.8.16's source). When a master is lost,
/// the cluster answers the client's writes with <c>MOVED</c> to the promoted replica; the client resends there, but it
/// still believes that node is a replica, so it refuses the write itself ("Command cannot be issued to a replica",
/// reported as an InternalFailure connection error). The rebuild that <c>MOVED</c> starts does not re-read the roles of
/// nodes it is already connected to, and the periodic role check runs every <c>ConfigCheckSeconds</c> (60 by default), so
/// the relay answered 503 for that shard for up to a minute (30 s and more in two clean-clone test runs). The mirror case:
/// the old master comes back as a replica while the map still routes to it, and a script's write there fails with
/// <c>READONLY</c>. Every place that sees a Redis failure hands it here: a sign of a stale view makes the client re-read
/// every node's role and the cluster map (a full reconfiguration), at most once per
/// <see cref="RelayOptions.RedisRemapMinIntervalMs"/>; <see cref="RelayOptions.RedisConfigCheckSeconds"/> bounds the
/// staleness where no failure is seen.
/// </summary>
public sealed class RedisRouting(IConnectionMultiplexer redis, RelayOptions options, TimeProvider time, ILogger<RedisRouting> log)
{
    long _lastRemapTicks = long.MinValue;

    /// <summary>Looks at a failure; true when it was a sign of a stale cluster view (a rebuild was started, or one had
    /// just been).</summary>
    public bool Observe(Exception e)
    {
        if (!IsStaleView(e)) return false;
        var now = time.GetTimestamp();
        var last = Interlocked.Read(ref _lastRemapTicks);
        if (last != long.MinValue && time.GetElapsedTime(last, now).TotalMilliseconds < options.RedisRemapMinIntervalMs) return true;
        if (Interlocked.CompareExchange(ref _lastRemapTicks, now, last) != last) return true;
        log.LogWarning("Redis: a write met a node whose role the client has wrong (stale cluster view after a failover: {Error}); re-reading the roles and the map",
            Describe(e));
        _ = RemapAsync(now);
        return true;
    }

    async Task RemapAsync(long stamp)
    {
        try
        {
            // False: another reconfiguration was running and this one did nothing; let the next failure try again at once.
            if (!await redis.ConfigureAsync()) Interlocked.CompareExchange(ref _lastRemapTicks, long.MinValue, stamp);
        }
        catch (Exception e)
        {
            Interlocked.CompareExchange(ref _lastRemapTicks, long.MinValue, stamp);
            log.LogWarning("Redis: re-reading the cluster view failed: {Error}", e.Message);
        }
    }

    /// <summary>A write refused because of a node's role: by the client itself (it believes the node a replica), or by
    /// the node (it is a replica: <c>READONLY</c>, or <c>WAIT</c> sent to a replica).</summary>
    public static bool IsStaleView(Exception? e)
    {
        for (var x = e; x is not null; x = x.InnerException)
        {
            if (x is AggregateException a) return a.InnerExceptions.Any(IsStaleView);
            if (x is RedisCommandException && (Has(x, "cannot be issued to a replica") || Has(x, "cannot be issued to a slave"))) return true;
            if (x is RedisServerException && (Has(x, "READONLY") || Has(x, "cannot be used with replica"))) return true;
        }
        return false;
    }

    /// <summary>A failure of the state store that passes (the relay answers 503 with Retry-After, never 500): unreachable,
    /// slow, or a cluster in the middle of a failover (a stale view, <c>CLUSTERDOWN</c>, <c>TRYAGAIN</c>, <c>MASTERDOWN</c>,
    /// <c>LOADING</c>).</summary>
    public static bool IsTransient(Exception e) =>
        e is RedisConnectionException or RedisTimeoutException || IsStaleView(e)
        || (e is RedisServerException && (StartsWith(e, "CLUSTERDOWN") || StartsWith(e, "TRYAGAIN") || StartsWith(e, "MASTERDOWN") || StartsWith(e, "LOADING")));

    static bool Has(Exception e, string s) => e.Message.Contains(s, StringComparison.OrdinalIgnoreCase);
    static bool StartsWith(Exception e, string s) => e.Message.StartsWith(s, StringComparison.Ordinal);

    static string Describe(Exception e)
    {
        var m = e.InnerException is { } i ? $"{e.Message}: {i.Message}" : e.Message;
        return m.Length > 200 ? m[..200] : m;
    }
}
