using StackExchange.Redis;

namespace PbsMarket.Relay.Infrastructure;

/// <summary>
/// Mends a stale Redis Cluster map. StackExchange.Redis routes each hash slot by the map of its last reconfiguration.
/// After a failover the old master comes back as a replica; the client sees the role change and rebuilds its map, but
/// only if no other reconfiguration is running at that moment (it skips, it does not retry). When it skips, the map still
/// sends the slots to the demoted node and every write for them fails inside the client ("Command cannot be issued to a
/// replica", reported as an InternalFailure connection error) until something else rebuilds the map: nothing does for a
/// minute or more. A clean-clone test run met this as 30 s of 503s after a failover. Every place that sees a Redis
/// failure hands it here; a write refused for that reason makes the client rebuild its map from the cluster, at most once
/// per <see cref="RelayOptions.RedisRemapMinIntervalMs"/>.
/// </summary>
public sealed class RedisRouting(IConnectionMultiplexer redis, RelayOptions options, TimeProvider time, ILogger<RedisRouting> log)
{
    long _lastRemapTicks = long.MinValue;

    /// <summary>Looks at a failure; true when it was a write routed to a replica and a rebuild of the map was started
    /// (or one had just been).</summary>
    public bool Observe(Exception e)
    {
        if (!IsWriteRoutedToReplica(e)) return false;
        var now = time.GetTimestamp();
        var last = Interlocked.Read(ref _lastRemapTicks);
        if (last != long.MinValue && time.GetElapsedTime(last, now).TotalMilliseconds < options.RedisRemapMinIntervalMs) return true;
        if (Interlocked.CompareExchange(ref _lastRemapTicks, now, last) != last) return true;
        log.LogWarning("Redis: a write was routed to a node that is now a replica (stale cluster map after a failover); rebuilding the map");
        _ = RemapAsync();
        return true;
    }

    async Task RemapAsync()
    {
        try
        {
            await redis.ConfigureAsync();
        }
        catch (Exception e)
        {
            log.LogWarning("Redis: rebuilding the cluster map failed: {Error}", e.Message);
        }
    }

    /// <summary>The client's own refusal: the connection exception it reports wraps a command exception saying the
    /// target is a replica (StackExchange.Redis 2.8's wording; "slave" in older versions).</summary>
    public static bool IsWriteRoutedToReplica(Exception? e)
    {
        for (var x = e; x is not null; x = x.InnerException)
        {
            if (x is RedisCommandException && (x.Message.Contains("cannot be issued to a replica", StringComparison.OrdinalIgnoreCase)
                                               || x.Message.Contains("cannot be issued to a slave", StringComparison.OrdinalIgnoreCase)))
                return true;
            if (x is AggregateException a && a.InnerExceptions.Any(IsWriteRoutedToReplica)) return true;
        }
        return false;
    }
}
