using PbsMarket.LocalServers;

namespace PbsMarket.Testing;

/// <summary>
/// The real servers of one test assembly, each started on first use and stopped (with its files
/// deleted) when the assembly's tests are done, whether they passed or not. Register it with
/// <c>[assembly: AssemblyFixture(typeof(TestServers))]</c> and take it in a test class constructor.
/// </summary>
public sealed class TestServers : IAsyncDisposable
{
    readonly SemaphoreSlim _gate = new(1, 1);
    readonly List<ServerProcess> _started = [];
    readonly List<RedisCluster> _clusters = [];
    RedisServer? _redis;
    PostgresServer? _postgres;
    AnvilNode? _anvil;

    public Task<RedisServer> RedisAsync() => GetAsync(() => _redis, s => _redis = s, () => new RedisServer());
    public Task<PostgresServer> PostgresAsync() => GetAsync(() => _postgres, s => _postgres = s, () => new PostgresServer());
    public Task<AnvilNode> AnvilAsync() => GetAsync(() => _anvil, s => _anvil = s, () => new AnvilNode());

    /// <summary>A server of this test's own (to stop, kill or restart), disposed with the assembly.</summary>
    public async Task<T> StartOwnAsync<T>(T server) where T : ServerProcess
    {
        lock (_started) _started.Add(server);
        await server.StartAsync();
        return server;
    }

    /// <summary>A Redis Cluster of this test's own (3 masters, 1 replica each; kill a node to fail it over), disposed with the assembly.</summary>
    public async Task<RedisCluster> StartOwnClusterAsync(int nodeTimeoutMs = 3000)
    {
        var cluster = new RedisCluster(nodeTimeoutMs);
        lock (_clusters) _clusters.Add(cluster);
        await cluster.StartAsync();
        return cluster;
    }

    async Task<T> GetAsync<T>(Func<T?> get, Action<T> set, Func<T> create) where T : ServerProcess
    {
        if (get() is { } existing) return existing;
        await _gate.WaitAsync();
        try
        {
            if (get() is { } again) return again;
            var server = create();
            lock (_started) _started.Add(server);
            await server.StartAsync();
            set(server);
            return server;
        }
        finally
        {
            _gate.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        ServerProcess[] servers;
        lock (_started) servers = [.. _started];
        RedisCluster[] clusters;
        lock (_clusters) clusters = [.. _clusters];
        await Task.WhenAll(servers.Select(s => s.DisposeAsync().AsTask()).Concat(clusters.Select(c => c.DisposeAsync().AsTask())));
        _gate.Dispose();
    }
}
