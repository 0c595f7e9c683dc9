using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace PbsMarket.LocalServers;

/// <summary>
/// One real server (redis-server, postgres, anvil) run as a child process, with its files and log in its own
/// folder. Stop it with <see cref="StopAsync"/> (its data stays) and bring it back on the same port with
/// <see cref="StartAsync"/>; <see cref="KillAsync"/> ends it as a crash would. With <see cref="DeleteDirOnDispose"/>,
/// <see cref="DisposeAsync"/> also deletes the folder.
/// Without a fixed port, a free one is picked; redis and postgres cannot bind port 0 and report it, so
/// the first start retries on a fresh port when the picked one was taken meanwhile (another process
/// may bind between the pick and the server's own bind).
/// </summary>
public abstract class ServerProcess : IAsyncDisposable
{
    readonly StringBuilder _recentOutput = new();
    Process? _process;
    StreamWriter? _log;

    protected ServerProcess(string kind, string dir, int? port = null)
    {
        Kind = kind;
        _portFixed = port is not null;
        Port = port ?? FreePort.Next();
        Dir = dir;
        Directory.CreateDirectory(Dir);
        LogPath = Path.Combine(Dir, $"{kind}.log");
    }

    public string Kind { get; }
    public int Port { get; private set; }
    readonly bool _portFixed;
    bool _everStarted;
    public string Dir { get; }
    public string LogPath { get; }
    public bool IsRunning => _process is { HasExited: false };
    public int? Pid => _process?.Id;
    /// <summary>Called with the pid of every process started, so that a watchdog can end it if its parent dies.</summary>
    public Action<int>? OnStarted { get; set; }

    /// <summary>Delete <see cref="Dir"/> on dispose (throwaway test servers).</summary>
    public bool DeleteDirOnDispose { get; set; }

    bool _prepared;

    protected virtual TimeSpan StartTimeout => TimeSpan.FromSeconds(30);
    protected virtual int StopSignal => Posix.SIGTERM;
    protected abstract ProcessStartInfo StartInfo();
    protected abstract Task<bool> IsReadyAsync(CancellationToken ct);
    protected virtual Task PrepareAsync(CancellationToken ct) => Task.CompletedTask;

    public async Task StartAsync(CancellationToken ct = default)
    {
        if (IsRunning) return;
        if (!_prepared)
        {
            await PrepareAsync(ct);
            _prepared = true;
        }
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await StartOnceAsync(ct);
                _everStarted = true;
                return;
            }
            catch (PortTakenException) when (!_portFixed && !_everStarted && attempt < 5)
            {
                // Someone bound the port between our pick and the server's bind: pick again. (Once started,
                // a server keeps its port, since clients were told where it is.)
                Port = FreePort.Next();
            }
        }
    }

    static bool LooksLikePortTaken(string output) =>
        output.Contains("in use", StringComparison.OrdinalIgnoreCase) || output.Contains("could not bind", StringComparison.OrdinalIgnoreCase)
        || output.Contains("could not create listen socket", StringComparison.OrdinalIgnoreCase);

    sealed class PortTakenException(string message) : InvalidOperationException(message);

    async Task StartOnceAsync(CancellationToken ct)
    {
        var psi = StartInfo();
        psi.UseShellExecute = false;
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        psi.RedirectStandardInput = true;
        _log ??= new StreamWriter(LogPath, append: true) { AutoFlush = true };
        var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) => OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        if (!process.Start()) throw new InvalidOperationException($"{Kind} did not start ({psi.FileName})");
        OnStarted?.Invoke(process.Id);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;

        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < StartTimeout)
        {
            if (ct.IsCancellationRequested)
            {
                await StopAsync();
                ct.ThrowIfCancellationRequested();
            }
            if (process.HasExited) throw ExitedWhileStarting(process);
            try
            {
                using var probe = CancellationTokenSource.CreateLinkedTokenSource(ct);
                probe.CancelAfter(TimeSpan.FromSeconds(2));
                if (await IsReadyAsync(probe.Token))
                {
                    // An answer from the port is ours only if our process still runs (another server that took the
                    // port would answer too, while ours exits on its failed bind).
                    await Task.Delay(100, CancellationToken.None);
                    if (process.HasExited) throw ExitedWhileStarting(process);
                    return;
                }
            }
            catch (PortTakenException)
            {
                throw;
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                // not ready yet
            }
            await Task.Delay(50, CancellationToken.None);
        }
        await StopAsync();
        throw new TimeoutException($"{Kind} did not answer on port {Port} within {StartTimeout.TotalSeconds:0} s. Its last output:\n{RecentOutput}");
    }

    Exception ExitedWhileStarting(Process process)
    {
        process.WaitForExit(); // drains the output readers
        _process = null;
        var message = $"{Kind} exited with code {process.ExitCode} while starting on port {Port}. Its last output:\n{RecentOutput}";
        return LooksLikePortTaken(RecentOutput) ? new PortTakenException(message) : new InvalidOperationException(message);
    }

    void OnLine(string? line)
    {
        if (line is null) return;
        lock (_recentOutput)
        {
            try { _log?.WriteLine(line); } catch (ObjectDisposedException) { }
            _recentOutput.AppendLine(line);
            if (_recentOutput.Length > 8000) _recentOutput.Remove(0, _recentOutput.Length - 4000);
        }
    }

    public string RecentOutput
    {
        get { lock (_recentOutput) return _recentOutput.ToString(); }
    }

    /// <summary>Stops the server gracefully, then forcibly after 10 s.</summary>
    public async Task StopAsync()
    {
        var process = _process;
        if (process is null) return;
        _process = null;
        if (!process.HasExited)
        {
            Posix.Signal(process.Id, Posix.SIGCONT); // a frozen server (Freeze) would not act on the stop signal
            Posix.Signal(process.Id, StopSignal);
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await process.WaitForExitAsync(grace.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }
        }
        process.Dispose();
    }

    /// <summary>Freezes the server (SIGSTOP), as a stalled machine would be: its connections stay open, nothing is answered.</summary>
    public void Freeze()
    {
        if (_process is { HasExited: false } p) Posix.Signal(p.Id, Posix.SIGSTOP);
    }

    /// <summary>Lets a frozen server run again (SIGCONT).</summary>
    public void Thaw()
    {
        if (_process is { HasExited: false } p) Posix.Signal(p.Id, Posix.SIGCONT);
    }

    /// <summary>Kills the server at once, as a crash would.</summary>
    public async Task KillAsync()
    {
        var process = _process;
        if (process is null) return;
        _process = null;
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
        process.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        lock (_recentOutput)
        {
            _log?.Dispose();
            _log = null;
        }
        if (DeleteDirOnDispose)
        {
            try
            {
                if (Directory.Exists(Dir)) Directory.Delete(Dir, recursive: true);
            }
            catch (IOException)
            {
                // a watchdog removes it when the owning process exits
            }
        }
        GC.SuppressFinalize(this);
    }

    /// <summary>Runs a short command to completion (initdb, psql, pg_isready).</summary>
    protected static async Task<int> RunToEndAsync(ProcessStartInfo psi, CancellationToken ct, bool check = true)
    {
        psi.UseShellExecute = false;
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not run {psi.FileName}");
        var stdout = p.StandardOutput.ReadToEndAsync(ct);
        var stderr = p.StandardError.ReadToEndAsync(ct);
        await p.WaitForExitAsync(ct);
        if (check && p.ExitCode != 0)
            throw new InvalidOperationException($"{Path.GetFileName(psi.FileName)} {string.Join(' ', psi.ArgumentList)} failed ({p.ExitCode}): {await stderr}{await stdout}");
        return p.ExitCode;
    }
}

public static class FreePort
{
    /// <summary>A loopback port nobody listens on right now (the OS picks it).</summary>
    public static int Next()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public static async Task<bool> IsOpenAsync(int port, CancellationToken ct = default)
    {
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, port, ct);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}

public static class Posix
{
    public const int SIGINT = 2, SIGKILL = 9, SIGTERM = 15, SIGCONT = 18, SIGSTOP = 19;

    [DllImport("libc", SetLastError = true, EntryPoint = "kill")]
    static extern int SysKill(int pid, int sig);

    [DllImport("libc", EntryPoint = "geteuid")]
    static extern uint GetEuid();

    public static bool Signal(int pid, int sig) => SysKill(pid, sig) == 0;
    public static bool IsAlive(int pid) => SysKill(pid, 0) == 0;
    public static bool IsRoot => GetEuid() == 0;
}

/// <summary>Finds the repository (for tools/bin and scripts/setup.sh) and the external tools.</summary>
public static class Tools
{
    public const string SetupCommand = "scripts/setup.sh";

    /// <summary>The repository root (the folder with PbsMarket.sln) above the binary or the current folder, or null.</summary>
    public static string? RepoRoot { get; } = FindRoot(AppContext.BaseDirectory) ?? FindRoot(Environment.CurrentDirectory);

    static string? FindRoot(string start)
    {
        for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "PbsMarket.sln"))) return d.FullName;
        return null;
    }

    /// <summary>A binary from the repository's tools/bin, then PATH; null when absent.</summary>
    public static string? Find(string name)
    {
        if (RepoRoot is { } root && File.Exists(Path.Combine(root, "tools", "bin", name))) return Path.Combine(root, "tools", "bin", name);
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
            if (File.Exists(Path.Combine(dir, name))) return Path.Combine(dir, name);
        return null;
    }

    public static string Require(string name, string? installHint = null) =>
        Find(name) ?? throw new MissingToolException($"{name} is not installed: run `{SetupCommand}` ({installHint ?? "it installs everything PbsMarket needs"}).");

    /// <summary>The newest PostgreSQL server binaries (Debian keeps them off PATH); null when absent.</summary>
    public static string? PostgresBin()
    {
        var fromEnv = Environment.GetEnvironmentVariable("PBS_PG_BIN");
        if (!string.IsNullOrEmpty(fromEnv) && File.Exists(Path.Combine(fromEnv, "initdb"))) return fromEnv;
        const string debian = "/usr/lib/postgresql";
        if (Directory.Exists(debian))
        {
            var best = Directory.GetDirectories(debian)
                .Select(d => (dir: Path.Combine(d, "bin"), ver: int.TryParse(Path.GetFileName(d), out var v) ? v : 0))
                .Where(x => File.Exists(Path.Combine(x.dir, "initdb")))
                .OrderByDescending(x => x.ver)
                .FirstOrDefault();
            if (best.dir is not null) return best.dir;
        }
        return Find("initdb") is { } initdb ? Path.GetDirectoryName(initdb) : null;
    }

    /// <summary>What the devnet needs that is not installed (empty when all is there).</summary>
    public static List<string> Missing()
    {
        var missing = new List<string>();
        if (Find("redis-server") is null) missing.Add("redis-server");
        if (PostgresBin() is null) missing.Add("postgresql (initdb, postgres)");
        if (Find("anvil") is null) missing.Add("anvil (tools/bin)");
        return missing;
    }
}

public sealed class MissingToolException(string message) : Exception(message);
