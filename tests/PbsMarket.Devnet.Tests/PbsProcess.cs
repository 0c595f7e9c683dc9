using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

// These tests run `pbs` and read /proc: Linux only.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

namespace PbsMarket.Devnet.Tests;

/// <summary>The built `pbs` binary run as a child process, its output collected line by line.</summary>
public sealed class PbsProcess : IAsyncDisposable
{
    readonly Process _p;
    readonly StringBuilder _out = new(), _err = new();
    readonly List<string> _lines = [];
    readonly SemaphoreSlim _lineAdded = new(0);

    public static string RepoRoot { get; } = FindRoot();

    static string FindRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "PbsMarket.sln"))) return d.FullName;
        throw new InvalidOperationException("PbsMarket.sln not found");
    }

    /// <summary>src/PbsMarket.Cli/bin/&lt;same configuration as this test assembly&gt;/net10.0/pbs.</summary>
    public static string Binary
    {
        get
        {
            var config = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";
            var path = Path.Combine(RepoRoot, "src", "PbsMarket.Cli", "bin", config, "net10.0", "pbs");
            return File.Exists(path) ? path : throw new FileNotFoundException($"pbs is not built at {path}");
        }
    }

    public PbsProcess(params string[] args)
    {
        var psi = new ProcessStartInfo(Binary)
        {
            UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true,
            WorkingDirectory = RepoRoot,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        _p = new Process { StartInfo = psi };
        _p.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (_lines) { _lines.Add(e.Data); _out.AppendLine(e.Data); }
            _lineAdded.Release();
        };
        _p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_lines) _err.AppendLine(e.Data); };
        _p.Start();
        _p.BeginOutputReadLine();
        _p.BeginErrorReadLine();
    }

    public int Pid => _p.Id;
    public string Stdout { get { lock (_lines) return _out.ToString(); } }
    public string Stderr { get { lock (_lines) return _err.ToString(); } }

    public static async Task<(int Code, string Stdout, string Stderr)> RunAsync(TimeSpan timeout, params string[] args)
    {
        await using var p = new PbsProcess(args);
        var code = await p.WaitExitAsync(timeout);
        return (code, p.Stdout, p.Stderr);
    }

    /// <summary>Waits for a line of standard output that matches.</summary>
    public async Task<string> WaitForLineAsync(Func<string, bool> match, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var seen = 0;
        while (true)
        {
            lock (_lines)
            {
                for (; seen < _lines.Count; seen++)
                    if (match(_lines[seen])) return _lines[seen];
            }
            if (_p.HasExited) throw new InvalidOperationException($"pbs exited with {_p.ExitCode} first.\nstdout:\n{Stdout}\nstderr:\n{Stderr}");
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero) throw new TimeoutException($"no matching line within {timeout}.\nstdout:\n{Stdout}\nstderr:\n{Stderr}");
            await _lineAdded.WaitAsync(left < TimeSpan.FromMilliseconds(500) ? left : TimeSpan.FromMilliseconds(500));
        }
    }

    public async Task WriteLineAsync(string line)
    {
        await _p.StandardInput.WriteLineAsync(line);
        await _p.StandardInput.FlushAsync();
    }

    [DllImport("libc", EntryPoint = "kill")]
    static extern int SysKill(int pid, int sig);

    /// <summary>Ctrl-C.</summary>
    public void Interrupt() => SysKill(_p.Id, 2);

    /// <summary>The process ignores SIGINT (its SigIgn mask in /proc): it was started, through its parents, by a
    /// non-interactive shell's background job, which sets SIGINT to ignored, and .NET keeps a signal ignored at start
    /// ignored. Ctrl-C cannot be tested then (a terminal would never deliver it to such a process either).</summary>
    public bool IgnoresInterrupt
    {
        get
        {
            try
            {
                var line = File.ReadLines($"/proc/{_p.Id}/status").FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
                return line is not null && (Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16) & (1UL << (2 - 1))) != 0;
            }
            catch (IOException)
            {
                return false;
            }
        }
    }

    /// <summary>SIGTERM, as a service manager stops it.</summary>
    public void Terminate() => SysKill(_p.Id, 15);

    /// <summary>kill -9: no chance to clean up.</summary>
    public void KillHard() => SysKill(_p.Id, 9);

    public static bool Signal(int pid, int sig) => SysKill(pid, sig) == 0;

    /// <summary>The process exists and is not a zombie.</summary>
    public static bool IsAlive(int pid)
    {
        if (SysKill(pid, 0) != 0) return false;
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)] != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>The arguments of a running process (/proc/PID/cmdline), or null when it is gone.</summary>
    public static string[]? CommandLine(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries);
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>The parent pid of a running process (/proc/PID/stat), or null when it is gone.</summary>
    public static int? ParentPid(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return int.Parse(stat[(stat.LastIndexOf(')') + 4)..].Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return null;
        }
    }

    public async Task<int> WaitExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            _p.Kill(entireProcessTree: true);
            throw new TimeoutException($"pbs did not exit within {timeout}.\nstdout:\n{Stdout}\nstderr:\n{Stderr}");
        }
        _p.WaitForExit(); // drain the output
        return _p.ExitCode;
    }

    /// <summary>Processes (other than pgrep itself) whose command line contains <paramref name="text"/>.</summary>
    public static string Pgrep(string text)
    {
        var psi = new ProcessStartInfo("pgrep", ["-af", "--", text]) { UseShellExecute = false, RedirectStandardOutput = true };
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return string.Join('\n', output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.Contains("pgrep", StringComparison.Ordinal)));
    }

    public async ValueTask DisposeAsync()
    {
        if (!_p.HasExited)
        {
            SysKill(_p.Id, 2);
            if (!_p.WaitForExit(30_000)) _p.Kill(entireProcessTree: true);
        }
        _p.Dispose();
        await Task.CompletedTask;
    }
}
