using System.Diagnostics;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace PbsMarket.Cli.Processes;

/// <summary>redis-server on a loopback port, nothing persisted.</summary>
public sealed class RedisServer(string dir, int? port = null) : ServerProcess("redis", dir, port)
{
    public string ConnectionString => $"127.0.0.1:{Port},abortConnect=false,connectTimeout=2000,syncTimeout=2000";
    public string Endpoint => $"127.0.0.1:{Port}";

    protected override ProcessStartInfo StartInfo()
    {
        var psi = new ProcessStartInfo(Tools.Require("redis-server")) { WorkingDirectory = Dir };
        foreach (var arg in new[] { "--port", Port.ToString(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                     "--dir", Dir, "--daemonize", "no", "--loglevel", "warning" })
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
public sealed class PostgresServer(string dir, int? port = null) : ServerProcess("postgres", dir, port)
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

/// <summary>An anvil L1 node on a loopback port.</summary>
public sealed class AnvilNode(string dir, long chainId = 31337, int? blockTimeSeconds = 1, int? port = null) : ServerProcess("anvil", dir, port)
{
    static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(5) };

    public long ChainId { get; } = chainId;
    public string RpcUrl => $"http://127.0.0.1:{Port}";

    protected override ProcessStartInfo StartInfo()
    {
        var psi = new ProcessStartInfo(Tools.Require("anvil")) { WorkingDirectory = Dir };
        var args = new List<string> { "--host", "127.0.0.1", "--port", Port.ToString(), "--chain-id", ChainId.ToString(),
            "--accounts", "10", "--silent", "--config-out", Path.Combine(Dir, "anvil-config.json"), "--gas-limit", "60000000" };
        if (blockTimeSeconds is { } bt) args.AddRange(["--block-time", bt.ToString()]);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["HOME"] = Dir; // anvil keeps caches under ~/.foundry
        return psi;
    }

    protected override async Task<bool> IsReadyAsync(CancellationToken ct)
    {
        using var response = await Http.PostAsJsonAsync(RpcUrl, new { jsonrpc = "2.0", id = 1, method = "eth_chainId", @params = Array.Empty<object>() }, ct);
        var doc = await response.Content.ReadFromJsonAsync<JsonElement>(ct);
        return doc.TryGetProperty("result", out var r) && r.GetString() is { Length: > 2 };
    }
}
