using System.Diagnostics;
using PbsMarket.LocalServers;

namespace PbsMarket.Cli.Devnet;

/// <summary>
/// Makes sure no server outlives `pbs devnet`. Every child pid goes into &lt;runtime&gt;/pids; a small shell watchdog polls
/// this process and, if it disappears without cleaning up (kill -9, crash), terminates them. A normal exit stops the
/// servers itself and then ends the watchdog. A new devnet also ends what a previous one in the same folder left.
/// </summary>
public sealed class Watchdog : IDisposable
{
    readonly string _list;
    readonly string _runtime;
    readonly object _gate = new();
    Process? _process;

    public Watchdog(string runtimeDir)
    {
        _runtime = runtimeDir;
        _list = Path.Combine(runtimeDir, "pids");
    }

    public void Start()
    {
        File.WriteAllText(_list, "");
        var script = $$"""
            host={{Environment.ProcessId}}; list='{{_list}}'
            while kill -0 "$host" 2>/dev/null; do sleep 1; done
            [ -f "$list" ] || exit 0
            for p in $(cat "$list"); do kill -TERM "$p" 2>/dev/null; done
            sleep 3
            for p in $(cat "$list"); do kill -KILL "$p" 2>/dev/null; done
            """;
        // In a session of its own (as the pbs children), so that a terminal's Ctrl-C, which the devnet handles by stopping
        // everything in order, does not also end the watchdog that covers a devnet stuck or killed during that stop.
        var psi = new ProcessStartInfo(PbsChild.SetSid ?? "/bin/bash") { UseShellExecute = false };
        if (PbsChild.SetSid is not null) psi.ArgumentList.Add("/bin/bash");
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(script);
        _process = Process.Start(psi);
    }

    public void Register(int pid)
    {
        lock (_gate) File.AppendAllText(_list, pid + "\n");
    }

    /// <summary>Ends the servers a previous devnet in this folder left running (their command lines name the folder).</summary>
    public static async Task<int> EndLeftoversAsync(string runtimeDir)
    {
        var list = Path.Combine(runtimeDir, "pids");
        if (!File.Exists(list)) return 0;
        var pids = File.ReadAllLines(list).Select(l => int.TryParse(l, out var p) ? p : 0).Where(p => p > 0 && Names(p, runtimeDir)).ToList();
        foreach (var p in pids) Posix.Signal(p, Posix.SIGTERM);
        for (var i = 0; i < 50 && pids.Any(Posix.IsAlive); i++) await Task.Delay(100);
        foreach (var p in pids.Where(Posix.IsAlive)) Posix.Signal(p, Posix.SIGKILL);
        return pids.Count;
    }

    static bool Names(int pid, string runtimeDir)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ').Contains(runtimeDir, StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    public void Dispose()
    {
        if (_process is { HasExited: false } p)
        {
            try { p.Kill(); p.WaitForExit(2000); } catch (InvalidOperationException) { }
        }
        _process?.Dispose();
        _process = null;
    }
}
