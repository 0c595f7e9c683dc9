using PbsMarket.LocalServers;

namespace PbsMarket.Testing;

// The real servers of src/PbsMarket.LocalServers, made throwaway for tests: each in a fresh temp folder
// deleted on dispose, each process registered with the Reaper so nothing outlives a killed test host.

public sealed class RedisServer : LocalServers.RedisServer
{
    public RedisServer() : base(Reaper.NewTempDir("redis")) => Reaper.Track(this);
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
