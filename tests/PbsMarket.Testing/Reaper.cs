using System.Diagnostics;

namespace PbsMarket.Testing;

/// <summary>
/// Makes sure no server outlives the test process. Normal runs stop servers through their fixtures;
/// if the test host is killed instead, a small watchdog shell (one per test process) notices the
/// parent is gone and terminates every registered process and deletes every registered folder.
/// </summary>
public static class Reaper
{
    static readonly object Gate = new();
    static string? _registry;
    static Process? _watchdog;

    public const string TempPrefix = "pbs-test-";

    /// <summary>A fresh temp folder for one server, registered for deletion.</summary>
    public static string NewTempDir(string kind)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"{TempPrefix}{kind}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..12]}");
        Directory.CreateDirectory(dir);
        Register($"dir {dir}");
        return dir;
    }

    public static void RegisterProcess(int pid) => Register($"pid {pid}");

    /// <summary>Makes a server throwaway: its processes are reaped with the test host, its folder deleted on dispose.</summary>
    public static void Track(PbsMarket.LocalServers.ServerProcess server)
    {
        server.OnStarted = RegisterProcess;
        server.DeleteDirOnDispose = true;
    }

    static void Register(string line)
    {
        lock (Gate)
        {
            EnsureWatchdog();
            File.AppendAllText(_registry!, line + "\n");
        }
    }

    static void EnsureWatchdog()
    {
        if (_watchdog is not null) return;
        _registry = Path.Combine(Path.GetTempPath(), $"{TempPrefix}reaper-{Environment.ProcessId}.list");
        File.WriteAllText(_registry, "");
        // The watchdog polls the test host's pid; when it disappears it cleans up and exits.
        var script = $$"""
            host={{Environment.ProcessId}}; list='{{_registry}}'
            while kill -0 "$host" 2>/dev/null; do sleep 1; done
            [ -f "$list" ] || exit 0
            for p in $(awk '$1=="pid"{print $2}' "$list"); do kill -TERM "$p" 2>/dev/null; done
            sleep 2
            for p in $(awk '$1=="pid"{print $2}' "$list"); do kill -KILL "$p" 2>/dev/null; done
            awk '$1=="dir"{print $2}' "$list" | while read -r d; do rm -rf "$d"; done
            rm -f "$list"
            """;
        var psi = new ProcessStartInfo("/bin/bash") { UseShellExecute = false, RedirectStandardInput = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(script);
        _watchdog = Process.Start(psi);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            // A clean exit: fixtures have stopped their servers; the list is no longer needed.
            try { File.Delete(_registry); } catch (IOException) { }
        };
    }

    public const int SIGINT = PbsMarket.LocalServers.Posix.SIGINT, SIGKILL = PbsMarket.LocalServers.Posix.SIGKILL, SIGTERM = PbsMarket.LocalServers.Posix.SIGTERM;

    public static bool Signal(int pid, int sig) => PbsMarket.LocalServers.Posix.Signal(pid, sig);

    public static bool IsRoot => PbsMarket.LocalServers.Posix.IsRoot;
}
