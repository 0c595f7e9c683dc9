using Microsoft.Extensions.Logging;
using PbsMarket.Relay.Infrastructure;
using PbsMarket.Testing;
using PbsMarket.Testing.Market;
using StackExchange.Redis;

namespace PbsMarket.Relay.Tests;

/// <summary>
/// The stale cluster view after a failover (Infrastructure/RedisRouting.cs): a write refused for a node's role (by the
/// client, which still believes the promoted node a replica, or by a real replica the map still routes to) makes the
/// relay re-read the roles and the map, at most once per interval. The failover itself is
/// <see cref="ClusterFailoverTests"/> (its read after the failover is the end-to-end check); here the recognition of the
/// failures, the replica's from a real replica, and the rate of rebuilds on a real connection.
/// </summary>
public sealed class RedisRoutingTests(TestServers servers)
{
    sealed class ManualTime : TimeProvider
    {
        public long Now = 1_000_000;
        public override long TimestampFrequency => 1000; // one tick a millisecond
        public override long GetTimestamp() => Now;
    }

    /// <summary>What StackExchange.Redis 2.8 hands the caller when its map sends a write to a replica: PhysicalBridge
    /// throws PrimaryOnly (a command exception) before queueing, and the message fails as an InternalFailure connection
    /// exception around it.</summary>
    static RedisConnectionException RoutedToReplica() =>
        new(ConnectionFailureType.InternalFailure, "InternalFailure on [0]:SET pbs:{t:s:22}:result (BooleanProcessor)",
            new RedisCommandException("Command cannot be issued to a replica: SET pbs:{t:s:22}:result"));

    [Fact]
    public async Task Only_a_write_refused_for_a_nodes_role_counts_as_a_stale_view_and_real_replica_refusals_are_recognised()
    {
        Assert.True(RedisRouting.IsStaleView(RoutedToReplica()));
        Assert.True(RedisRouting.IsStaleView(new AggregateException(RoutedToReplica())));
        // Outages the view has nothing to do with: the relay answers 503 and waits, it rebuilds nothing.
        Assert.False(RedisRouting.IsStaleView(new RedisConnectionException(ConnectionFailureType.SocketFailure, "SocketFailure on SET")));
        Assert.False(RedisRouting.IsStaleView(new RedisTimeoutException("Timeout performing SET", CommandStatus.Sent)));
        Assert.False(RedisRouting.IsStaleView(new RedisServerException("CLUSTERDOWN The cluster is down")));
        Assert.False(RedisRouting.IsStaleView(new RedisConnectionException(ConnectionFailureType.InternalFailure, "InternalFailure on SET",
            new RedisCommandException("Multi-key operations must involve a single slot"))));

        // What a real replica answers a script's write and a WAIT sent to it (the map still routing to the old master).
        var master = await servers.StartOwnAsync(new RedisServer());
        var replica = await servers.StartOwnAsync(new RedisServer(replicaOf: master.Port));
        await using var mux = await ConnectionMultiplexer.ConnectAsync(replica.ConnectionString);
        var server = mux.GetServer(replica.Endpoint);
        var script = await Assert.ThrowsAsync<RedisServerException>(() =>
            server.ExecuteAsync("EVAL", "return redis.call('SET', KEYS[1], 'x')", 1, "routing-test"));
        Assert.True(RedisRouting.IsStaleView(script), script.Message);
        var wait = await Assert.ThrowsAsync<RedisServerException>(() => server.ExecuteAsync("WAIT", 1, 10));
        Assert.True(RedisRouting.IsStaleView(wait), wait.Message);
        // Each is a passing state-store condition: 503 with Retry-After, never a 500.
        Assert.True(RedisRouting.IsTransient(script));
        Assert.True(RedisRouting.IsTransient(wait));
        Assert.True(RedisRouting.IsTransient(new RedisServerException("CLUSTERDOWN The cluster is down")));
        Assert.False(RedisRouting.IsTransient(new RedisServerException("ERR unknown command 'FOO'")));
    }

    [Fact]
    public async Task A_burst_of_refused_writes_rebuilds_the_map_once_per_interval_on_a_real_connection()
    {
        var redis = await servers.RedisAsync();
        await using var mux = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        var time = new ManualTime();
        var lines = new RecentLog();
        using var factory = LoggerFactory.Create(b => b.AddProvider(lines));
        var routing = new RedisRouting(mux, new RelayOptions { RedisRemapMinIntervalMs = 1000 }, time, factory.CreateLogger<RedisRouting>());
        int Rebuilds() => lines.Lines.Count(l => l.Contains("re-reading the roles and the map"));

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
    }
}
