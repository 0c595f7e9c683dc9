using System.Diagnostics;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace PbsMarket.LocalServers;

/// <summary>
/// redis-server on a loopback port. Without <paramref name="appendFsync"/> nothing is persisted; with it (<c>everysec</c>
/// or <c>always</c>) every write goes to an append-only file in <see cref="ServerProcess.Dir"/> before Redis answers it,
/// so a restart after kill -9 loads everything acknowledged (<c>everysec</c> fsyncs once a second: machine loss can
/// lose up to that second; <c>always</c> fsyncs before answering).
/// </summary>
/// <param name="replicaOf">The port of a loopback master this server replicates (a read-only replica).</param>
public class RedisServer(string dir, int? port = null, string? appendFsync = null, int? replicaOf = null) : ServerProcess("redis", dir, port)
{
    public string? AppendFsync { get; } = appendFsync is null or "everysec" or "always" ? appendFsync
        : throw new ArgumentException($"appendfsync must be everysec or always, not {appendFsync}", nameof(appendFsync));

    public string ConnectionString => $"127.0.0.1:{Port},abortConnect=false,connectTimeout=2000,syncTimeout=2000";
    public string Endpoint => $"127.0.0.1:{Port}";

    protected override ProcessStartInfo StartInfo()
    {
        var psi = new ProcessStartInfo(Tools.Require("redis-server", "apt-get install -y redis-server")) { WorkingDirectory = Dir };
        foreach (var arg in new[] { "--port", Port.ToString(), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", AppendFsync is null ? "no" : "yes", "--appendfsync", AppendFsync ?? "everysec",
                     "--dir", Dir, "--daemonize", "no", "--loglevel", "warning", "--databases", "64" })
            psi.ArgumentList.Add(arg);
        if (replicaOf is { } masterPort)
            foreach (var arg in new[] { "--replicaof", "127.0.0.1", masterPort.ToString(System.Globalization.CultureInfo.InvariantCulture) })
                psi.ArgumentList.Add(arg);
        return psi;
    }

    protected override async Task<bool> IsReadyAsync(CancellationToken ct)
    {
        using var client = new TcpClient();
        await client.ConnectAsync("127.0.0.1", Port, ct);
        var stream = client.GetStream();
        await stream.WriteAsync("PING\r\n"u8.ToArray(), ct);
        var buffer = new byte[16];
        var n = await stream.ReadAsync(buffer, ct);
        return Encoding.ASCII.GetString(buffer, 0, n).StartsWith("+PONG", StringComparison.Ordinal);
    }
}

/// <summary>
/// A PostgreSQL cluster: initdb into its folder, then the postmaster in the foreground on a loopback port. As root it
/// runs as the <c>postgres</c> user, as PostgreSQL requires.
/// </summary>
public class PostgresServer(string dir, int? port = null) : ServerProcess("postgres", dir, port)
{
    string DataDir => Path.Combine(Dir, "data");
    string SocketDir => Path.Combine(Dir, "sock");
    static string Bin => Tools.PostgresBin() ?? throw new MissingToolException($"PostgreSQL is not installed: run `{Tools.SetupCommand}`.");

    public string ConnectionString(string database = "postgres") =>
        $"Host=127.0.0.1;Port={Port};Username=postgres;Database={database};Timeout=5;Command Timeout=30";

    protected override int StopSignal => Posix.SIGINT; // "fast" shutdown: don't wait for clients

    protected override async Task PrepareAsync(CancellationToken ct)
    {
        if (Directory.Exists(Path.Combine(DataDir, "base"))) return;
        Directory.CreateDirectory(SocketDir);
        if (Posix.IsRoot) await RunToEndAsync(new ProcessStartInfo("/bin/chown") { ArgumentList = { "-R", "postgres:postgres", Dir } }, ct);
        await RunToEndAsync(Command(Path.Combine(Bin, "initdb"),
            ["-D", DataDir, "--auth=trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "--no-instructions"], asPostgres: true), ct);
    }

    protected override ProcessStartInfo StartInfo() => Command(Path.Combine(Bin, "postgres"),
        ["-D", DataDir, "-p", Port.ToString(), "-c", "listen_addresses=127.0.0.1", "-k", SocketDir,
         "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "logging_collector=off"],
        asPostgres: true);

    protected override async Task<bool> IsReadyAsync(CancellationToken ct)
    {
        if (!await FreePort.IsOpenAsync(Port, ct)) return false;
        return await RunToEndAsync(Command(Path.Combine(Bin, "pg_isready"), ["-h", "127.0.0.1", "-p", Port.ToString(), "-U", "postgres", "-t", "1"], false), ct, check: false) == 0;
    }

    public Task ExecAsync(string sql, string database = "postgres", CancellationToken ct = default) =>
        RunToEndAsync(Command(Path.Combine(Bin, "psql"), ["-h", "127.0.0.1", "-p", Port.ToString(), "-U", "postgres", "-d", database,
            "-v", "ON_ERROR_STOP=1", "-q", "-c", sql], false), ct);

    /// <summary>A new empty database, so that users of one server don't share tables.</summary>
    public async Task<string> CreateDatabaseAsync(string prefix = "t", CancellationToken ct = default)
    {
        var name = $"{prefix}_{Guid.NewGuid():N}"[..Math.Min(prefix.Length + 33, 63)].ToLowerInvariant();
        await ExecAsync($"CREATE DATABASE \"{name}\"", ct: ct);
        return ConnectionString(name);
    }

    ProcessStartInfo Command(string file, IEnumerable<string> args, bool asPostgres)
    {
        ProcessStartInfo psi;
        if (asPostgres && Posix.IsRoot)
        {
            // setpriv execs in place, so the pid we hold is the postmaster itself.
            psi = new ProcessStartInfo("/usr/bin/setpriv");
            foreach (var a in new[] { "--reuid=postgres", "--regid=postgres", "--init-groups", file }) psi.ArgumentList.Add(a);
        }
        else
        {
            psi = new ProcessStartInfo(file);
        }
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.WorkingDirectory = Dir;
        psi.Environment["LC_ALL"] = "C.UTF-8";
        psi.Environment["PGCONNECT_TIMEOUT"] = "3";
        return psi;
    }
}

/// <summary>An anvil L1 node on a loopback port (a block every <paramref name="blockTimeSeconds"/>, or automine when null).</summary>
public class AnvilNode(string dir, long chainId = 31337, int? blockTimeSeconds = 1, int? port = null, int accounts = 10) : ServerProcess("anvil", dir, port)
{
    static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(5) };

    /// <summary>anvil's well-known default mnemonic; accounts[i] has <see cref="DevKeys"/>[i].</summary>
    public const string Mnemonic = "test test test test test test test test test test test junk";

    /// <summary>
    /// The default accounts' private keys (10,000 ETH each on a fresh anvil). These are PUBLIC test keys printed
    /// by every anvil and hardhat node: never use them on a real chain.
    /// </summary>
    public static readonly string[] DevKeys =
    [
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
        "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
        "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
        "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
        "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
        "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
        "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
        "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
        "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
        // accounts 10-19 (funded on the L2 genesis, and on an anvil started with 20 accounts)
        "0xf214f2b2cd398c806f84e317254e0f0b801d0643303237d97a22a48e01628897",
        "0x701b615bbdfb9de65240bc28bd21bbc0d996645a3dd57e7b12bc2bdf6f192c82",
        "0xa267530f49f8280200edf313ee7af6b827f2a8bce2897751d06a843f644967b1",
        "0x47c99abed3324a2707c28affff1267e45918ec8c3f20b8aa892e8b065d2942dd",
        "0xc526ee95bf44d8fc405a158bb884d9d1238d99f0612e9f33d006bb0789009aaa",
        "0x8166f546bab6da521a8369cab06c5d2b9e46670292d85c875ee9ec20e84ffb61",
        "0xea6c44ac03bff858b476bba40716402b03e41b8e97e276d1baec7c37d42484a0",
        "0x689af8efa8c651a91ad287602527f3af2fe9f6501a7ac4b061667b5a93e037fd",
        "0xde9be858da4a475276426320d5e9262ecfc3ba460bfac56360bfa6c4c28b4ee0",
        "0xdf57089febbacf7ba0bc227dafbffa9fc08a93fdc68e1e42411a14efcf23656e",
    ];

    public long ChainId { get; } = chainId;
    public string RpcUrl => $"http://127.0.0.1:{Port}";

    protected override ProcessStartInfo StartInfo()
    {
        var psi = new ProcessStartInfo(Tools.Require("anvil", "npm installs it into tools/bin")) { WorkingDirectory = Dir };
        var args = new List<string> { "--host", "127.0.0.1", "--port", Port.ToString(), "--chain-id", ChainId.ToString(),
            "--accounts", accounts.ToString(), "--silent", "--config-out", Path.Combine(Dir, "anvil-config.json"), "--gas-limit", GasLimit.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        if (blockTimeSeconds is { } bt) args.AddRange(["--block-time", bt.ToString()]);
        args.AddRange(ExtraArgs);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["HOME"] = Dir; // anvil keeps caches under ~/.foundry
        return psi;
    }

    /// <summary>The block gas limit.</summary>
    protected virtual long GasLimit => 60_000_000;

    /// <summary>More anvil flags (the L2 engine's).</summary>
    protected virtual IEnumerable<string> ExtraArgs => [];

    protected override async Task<bool> IsReadyAsync(CancellationToken ct) =>
        (await RpcAsync("eth_chainId", [], ct)).GetString() is { Length: > 2 };

    /// <summary>One raw JSON-RPC call; throws with the node's error message on failure.</summary>
    public async Task<JsonElement> RpcAsync(string method, object[] parameters, CancellationToken ct = default)
    {
        using var response = await Http.PostAsJsonAsync(RpcUrl, new { jsonrpc = "2.0", id = 1, method, @params = parameters }, ct);
        response.EnsureSuccessStatusCode();
        var doc = await response.Content.ReadFromJsonAsync<JsonElement>(ct);
        if (doc.TryGetProperty("error", out var error)) throw new InvalidOperationException($"{method}: {error}");
        return doc.GetProperty("result").Clone();
    }
}

/// <summary>
/// The L2 execution engine: an anvil with the L2 chain id that mines only when told (<c>--no-mining</c>), in arrival order
/// (<c>--order fifo</c>), with no base fee and a genesis at timestamp 0, and the first 20 accounts of anvil's public test
/// mnemonic funded (docs/l2.md). Its gas limit is twice the market's largest block, so a block never passes the EIP-1559
/// target and the base fee stays 0. Only <c>pbs l2node</c> should talk to it.
/// </summary>
public class L2EngineNode(string dir, long chainId, long maxGasLimit = 30_000_000, int? port = null)
    : AnvilNode(dir, chainId, blockTimeSeconds: null, port: port, accounts: 20)
{
    protected override IEnumerable<string> ExtraArgs =>
        ["--no-mining", "--order", "fifo", "--base-fee", "0", "--timestamp", "0", "--hardfork", "cancun"];

    protected override long GasLimit => 2 * maxGasLimit;
}
