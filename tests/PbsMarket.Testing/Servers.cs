using PbsMarket.LocalServers;

namespace PbsMarket.Testing;

// The real servers of src/PbsMarket.LocalServers, made throwaway for tests: each in a fresh temp folder
// deleted on dispose, each process registered with the Reaper so nothing outlives a killed test host.

public sealed class RedisServer : LocalServers.RedisServer
{
    /// <param name="appendFsync">null: nothing persisted; everysec or always: an append-only file (restart after kill -9 keeps everything acknowledged).</param>
    /// <param name="replicaOf">The port of a loopback master to replicate.</param>
    public RedisServer(string? appendFsync = null, int? replicaOf = null) : base(Reaper.NewTempDir("redis"), appendFsync: appendFsync, replicaOf: replicaOf) => Reaper.Track(this);
}

public sealed class PostgresServer : LocalServers.PostgresServer
{
    public PostgresServer() : base(Reaper.NewTempDir("postgres")) => Reaper.Track(this);
}

/// <summary>An anvil node; automine unless a block time is given.</summary>
public sealed class AnvilNode : LocalServers.AnvilNode
{
    public AnvilNode(long chainId = 31337, int? blockTimeSeconds = null, int accounts = 20)
        : base(Reaper.NewTempDir("anvil"), chainId, blockTimeSeconds, accounts: accounts) => Reaper.Track(this);
}

/// <summary>A Redis Cluster of 3 masters with one replica each, throwaway like the single servers.</summary>
public sealed class RedisCluster : LocalServers.RedisCluster
{
    public RedisCluster(int nodeTimeoutMs = 3000) : base(Reaper.NewTempDir("redis-cluster"), nodeTimeoutMs: nodeTimeoutMs)
    {
        OnStarted = Reaper.RegisterProcess;
        DeleteDirOnDispose = true;
    }
}

/// <summary>The L2 execution engine (an anvil with the L2 chain id, mining only when told).</summary>
public sealed class L2EngineNode : LocalServers.L2EngineNode
{
    public L2EngineNode(long chainId = TestMarketDefaults.L2ChainId) : base(Reaper.NewTempDir("l2engine"), chainId) => Reaper.Track(this);
}

static class TestMarketDefaults
{
    public const long L2ChainId = 901;
}
