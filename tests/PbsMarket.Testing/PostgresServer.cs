using System.Diagnostics;

namespace PbsMarket.Testing;

/// <summary>
/// A throwaway PostgreSQL cluster: initdb into a temp folder, then the postmaster in the foreground on
/// a free loopback port. As root it runs as the <c>postgres</c> user, as PostgreSQL requires.
/// </summary>
public sealed class PostgresServer() : ServerProcess("postgres")
{
    string DataDir => Path.Combine(Dir, "data");
    string SocketDir => Path.Combine(Dir, "sock");
    string Bin => RepoPaths.PostgresBin();

    public string ConnectionString(string database = "postgres") =>
        $"Host=127.0.0.1;Port={Port};Username=postgres;Database={database};Timeout=5;Command Timeout=30";

    protected override int StopSignal => Reaper.SIGINT; // "fast" shutdown: don't wait for clients

    protected override async Task PrepareAsync(CancellationToken ct)
    {
        Directory.CreateDirectory(SocketDir);
        if (Reaper.IsRoot)
            await RunAsync("/bin/chown", ["-R", "postgres:postgres", Dir], ct);
        await RunAsync(Path.Combine(Bin, "initdb"),
            ["-D", DataDir, "--auth=trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "--no-instructions"], ct, asPostgres: true);
    }

    protected override ProcessStartInfo StartInfo() => Command(Path.Combine(Bin, "postgres"),
        ["-D", DataDir, "-p", Port.ToString(), "-c", "listen_addresses=127.0.0.1", "-k", SocketDir,
         "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "logging_collector=off"],
        asPostgres: true);

    protected override async Task<bool> IsReadyAsync(CancellationToken ct)
    {
        if (!await FreePort.IsOpenAsync(Port, ct)) return false;
        var code = await RunAsync(Path.Combine(Bin, "pg_isready"), ["-h", "127.0.0.1", "-p", Port.ToString(), "-U", "postgres", "-t", "1"], ct, check: false);
        return code == 0;
    }

    /// <summary>Runs SQL through psql (for set-up in tests that have no driver of their own).</summary>
    public Task ExecAsync(string sql, string database = "postgres", CancellationToken ct = default) =>
        RunAsync(Path.Combine(Bin, "psql"), ["-h", "127.0.0.1", "-p", Port.ToString(), "-U", "postgres", "-d", database,
            "-v", "ON_ERROR_STOP=1", "-q", "-c", sql], ct);

    /// <summary>A new empty database, so that test classes sharing this server don't share tables.</summary>
    public async Task<string> CreateDatabaseAsync(string prefix = "t", CancellationToken ct = default)
    {
        var name = $"{prefix}_{Guid.NewGuid():N}"[..Math.Min(prefix.Length + 33, 63)].ToLowerInvariant();
        await ExecAsync($"CREATE DATABASE \"{name}\"", ct: ct);
        return ConnectionString(name);
    }

    ProcessStartInfo Command(string file, IEnumerable<string> args, bool asPostgres)
    {
        ProcessStartInfo psi;
        if (asPostgres && Reaper.IsRoot)
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

    async Task<int> RunAsync(string file, string[] args, CancellationToken ct, bool asPostgres = false, bool check = true)
    {
        var psi = Command(file, args, asPostgres);
        psi.UseShellExecute = false;
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not run {file}");
        var stdout = p.StandardOutput.ReadToEndAsync(ct);
        var stderr = p.StandardError.ReadToEndAsync(ct);
        await p.WaitForExitAsync(ct);
        if (check && p.ExitCode != 0)
            throw new InvalidOperationException($"{Path.GetFileName(file)} failed ({p.ExitCode}): {await stderr}{await stdout}");
        return p.ExitCode;
    }
}
