using Npgsql;
using PbsMarket.Testing;
using StackExchange.Redis;

namespace PbsMarket.Foundation.Tests;

/// <summary>Proves each throwaway server answers for real.</summary>
public sealed class ServerSmokeTests(TestServers servers)
{
    [Fact]
    public async Task Redis_round_trips_a_value()
    {
        var redis = await servers.RedisAsync();
        await using var mux = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        var db = mux.GetDatabase();
        var key = $"smoke:{Guid.NewGuid():N}";
        await db.StringSetAsync(key, "hello", TimeSpan.FromMinutes(1));
        Assert.Equal("hello", (string?)await db.StringGetAsync(key));
    }

    [Fact]
    public async Task Postgres_answers_a_query_in_a_fresh_database()
    {
        var pg = await servers.PostgresAsync();
        var cs = await pg.CreateDatabaseAsync("smoke");
        await using var conn = new NpgsqlConnection(cs);
        await conn.OpenAsync(TestContext.Current.CancellationToken);
        await using var cmd = new NpgsqlCommand("SELECT current_database(), 6 * 7", conn);
        await using var reader = await cmd.ExecuteReaderAsync(TestContext.Current.CancellationToken);
        Assert.True(await reader.ReadAsync(TestContext.Current.CancellationToken));
        Assert.StartsWith("smoke_", reader.GetString(0));
        Assert.Equal(42, reader.GetInt32(1));
    }

    [Fact]
    public async Task Anvil_reports_its_chain_id_and_mines()
    {
        var anvil = await servers.AnvilAsync();
        var chainId = await anvil.RpcAsync("eth_chainId", []);
        Assert.Equal("0x7a69", chainId.GetString()); // 31337
        var before = Convert.ToInt64((await anvil.RpcAsync("eth_blockNumber", [])).GetString(), 16);
        await anvil.RpcAsync("evm_mine", []);
        var after = Convert.ToInt64((await anvil.RpcAsync("eth_blockNumber", [])).GetString(), 16);
        Assert.Equal(before + 1, after);
    }

    [Fact]
    public async Task A_server_can_be_stopped_and_started_again_with_its_data()
    {
        var pg = await servers.StartOwnAsync(new PostgresServer());
        await pg.ExecAsync("CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)");
        await pg.StopAsync();
        Assert.False(await PbsMarket.LocalServers.FreePort.IsOpenAsync(pg.Port));
        await pg.StartAsync();
        await using var conn = new NpgsqlConnection(pg.ConnectionString());
        await conn.OpenAsync(TestContext.Current.CancellationToken);
        await using var cmd = new NpgsqlCommand("SELECT v FROM kept", conn);
        Assert.Equal(7, (int)(await cmd.ExecuteScalarAsync(TestContext.Current.CancellationToken))!);
    }

    [Fact]
    public void A_missing_binary_fails_with_the_install_command()
    {
        var e = Assert.Throws<PbsMarket.LocalServers.MissingToolException>(() => RepoPaths.Require("no-such-binary-pbs", "apt-get install -y nothing"));
        Assert.Contains("scripts/setup.sh", e.Message);
        Assert.Contains("apt-get install -y nothing", e.Message);
    }
}
