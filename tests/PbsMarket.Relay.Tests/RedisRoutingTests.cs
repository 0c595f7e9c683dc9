using Microsoft.Extensions.Logging;
using PbsMarket.Relay.Infrastructure;
using PbsMarket.Testing;
using StackExchange.Redis;

namespace PbsMarket.Relay.Tests;

/// <summary>
/// The stale cluster map after a failover (Infrastructure/RedisRouting.cs): a write the client refused because its map
/// still routes to a node that is now a replica makes the relay rebuild the map, at most once per interval. The state
/// itself comes from a race inside StackExchange.Redis that a test cannot set up on demand (a clean-clone run met it in
/// <see cref="ClusterFailoverTests"/>, whose read after the failover is the end-to-end check); here the recognition of the
/// client's own failure, as StackExchange.Redis 2.8 builds it, and the rate of rebuilds on a real connection.
/// </summary>
public sealed class RedisRoutingTests(TestServers servers)
{
    sealed class ManualTime : TimeProvider
    {
        public long Now = 1_000_000;
        public override long TimestampFrequency => 1000; // one tick a millisecond
        public override long GetTimestamp() => Now;
    }

    sealed class Lines : ILoggerProvider, ILogger
    {
        public readonly List<string> All = [];
        public ILogger CreateLogger(string categoryName) => this;
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (All) All.Add(formatter(state, exception));
        }
        public void Dispose() { }
    }

    /// <summary>What StackExchange.Redis 2.8 hands the caller when its map sends a write to a replica: PhysicalBridge
    /// throws PrimaryOnly (a command exception) before queueing, and the message fails as an InternalFailure connection
    /// exception around it.</summary>
    static RedisConnectionException RoutedToReplica() =>
        new(ConnectionFailureType.InternalFailure, "InternalFailure on [0]:SET pbs:{t:s:22}:result (BooleanProcessor)",
            new RedisCommandException("Command cannot be issued to a replica: SET pbs:{t:s:22}:result"));

    [Fact]
    public void Only_a_write_the_client_refused_as_routed_to_a_replica_counts_as_a_stale_map()
    {
        Assert.True(RedisRouting.IsWriteRoutedToReplica(RoutedToReplica()));
        Assert.True(RedisRouting.IsWriteRoutedToReplica(new AggregateException(RoutedToReplica())));
        // Outages the map has nothing to do with: the relay answers 503 and waits, it does not rebuild anything.
        Assert.False(RedisRouting.IsWriteRoutedToReplica(new RedisConnectionException(ConnectionFailureType.SocketFailure, "SocketFailure on SET")));
        Assert.False(RedisRouting.IsWriteRoutedToReplica(new RedisTimeoutException("Timeout performing SET", CommandStatus.Sent)));
        Assert.False(RedisRouting.IsWriteRoutedToReplica(new RedisServerException("READONLY You can't write against a read only replica.")));
        Assert.False(RedisRouting.IsWriteRoutedToReplica(new RedisConnectionException(ConnectionFailureType.InternalFailure, "InternalFailure on SET",
            new RedisCommandException("Multi-key operations must involve a single slot"))));
    }

    [Fact]
    public async Task A_burst_of_refused_writes_rebuilds_the_map_once_per_interval_on_a_real_connection()
    {
        var redis = await servers.RedisAsync();
        await using var mux = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        var time = new ManualTime();
        var lines = new Lines();
        using var factory = LoggerFactory.Create(b => b.AddProvider(lines));
        var routing = new RedisRouting(mux, new RelayOptions { RedisRemapMinIntervalMs = 1000 }, time, factory.CreateLogger<RedisRouting>());
        int Rebuilds() { lock (lines.All) return lines.All.Count(l => l.Contains("rebuilding the map")); }

        Assert.False(routing.Observe(new RedisTimeoutException("Timeout performing SET", CommandStatus.Sent)));
        Assert.Equal(0, Rebuilds());
        // 200 requests fail at once: one rebuild, not 200.
        var observed = await Task.WhenAll(Enumerable.Range(0, 200).Select(_ => Task.Run(() => routing.Observe(RoutedToReplica()))));
        Assert.All(observed, Assert.True);
        Assert.Equal(1, Rebuilds());
        time.Now += 999;
        routing.Observe(RoutedToReplica());
        Assert.Equal(1, Rebuilds());
        // Still refused a second later (the rebuild met the failover half done): another one.
        time.Now += 1;
        routing.Observe(RoutedToReplica());
        Assert.Equal(2, Rebuilds());
        // The rebuilds ran on the connection and left it working.
        Assert.True(await mux.GetDatabase().StringSetAsync("routing-test", "ok"));
        lock (lines.All) Assert.DoesNotContain(lines.All, l => l.Contains("failed"));
    }
}
