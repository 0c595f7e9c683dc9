using System.Diagnostics;
using System.Reflection;
using System.Text;
using System.Text.Json.Nodes;
using PbsMarket.LocalServers;

namespace PbsMarket.Cli.Devnet;

/// <summary>
/// One `pbs ROLE --config FILE` child of the devnet: the same executable the devnet runs as, its standard output and
/// error appended to its own log file (by the shell that execs it, so the log does not depend on this process), stdin
/// from /dev/null, in a session of its own (<c>setsid</c>) so that a terminal's Ctrl-C reaches only the devnet, which
/// then stops its children in order. Stop it with <see cref="StopAsync"/> (SIGTERM, a deadline, then SIGKILL).
/// </summary>
public sealed class PbsChild
{
    readonly Process _process;

    PbsChild(string name, string role, string config, IReadOnlyList<string> keystores, string log, string? url, Process process)
    {
        Name = name;
        Role = role;
        ConfigPath = config;
        Keystores = keystores;
        LogPath = log;
        Url = url;
        _process = process;
        Pid = process.Id;
        Exited = WaitAsync(process);
    }

    /// <summary>relay-1, proposer, builder-2, deploy.</summary>
    public string Name { get; }
    /// <summary>The subcommand: relay, proposer, builder, deploy.</summary>
    public string Role { get; }
    public string ConfigPath { get; }
    public IReadOnlyList<string> Keystores { get; }
    public string LogPath { get; }
    /// <summary>Where it serves (relays), else null.</summary>
    public string? Url { get; }
    public int Pid { get; }
    /// <summary>Completes with the exit code when the process ends.</summary>
    public Task<int> Exited { get; }
    /// <summary>The devnet asked it to stop: its exit is expected.</summary>
    public bool Stopping { get; private set; }

    static async Task<int> WaitAsync(Process p)
    {
        await p.WaitForExitAsync();
        return p.ExitCode;
    }

    /// <summary>How to run this very executable again: the apphost (<c>pbs</c>) directly, or <c>dotnet pbs.dll</c> when the
    /// devnet itself runs under the <c>dotnet</c> host.</summary>
    public static (string File, IReadOnlyList<string> Prefix) Self()
    {
        var path = Environment.ProcessPath ?? throw new InvalidOperationException("cannot tell which executable this is (no process path)");
        if (!string.Equals(Path.GetFileNameWithoutExtension(path), "dotnet", StringComparison.OrdinalIgnoreCase)) return (path, []);
        var dll = Assembly.GetEntryAssembly()?.Location;
        if (string.IsNullOrEmpty(dll) || !File.Exists(dll)) throw new InvalidOperationException("running under dotnet, but the entry assembly (pbs.dll) is not found");
        return (path, [dll]);
    }

    /// <summary>util-linux setsid(1), when installed.</summary>
    internal static readonly string? SetSid = File.Exists("/usr/bin/setsid") ? "/usr/bin/setsid" : File.Exists("/bin/setsid") ? "/bin/setsid" : null;

    /// <summary>Starts <c>pbs ROLE --config CONFIG</c>; <paramref name="started"/> gets the pid at once (the watchdog's list).</summary>
    public static PbsChild Start(string name, string role, string config, IReadOnlyList<string> keystores, string log, string? url, string workingDir, Action<int> started)
    {
        var (file, prefix) = Self();
        // sh replaces itself with setsid, which replaces itself with pbs: one pid throughout, the one Process reports.
        var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, WorkingDirectory = workingDir };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("log=$1; shift; exec \"$@\" </dev/null >>\"$log\" 2>&1");
        psi.ArgumentList.Add("sh");
        psi.ArgumentList.Add(log);
        if (SetSid is not null) psi.ArgumentList.Add(SetSid);
        psi.ArgumentList.Add(file);
        foreach (var a in prefix) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add(role);
        psi.ArgumentList.Add("--config");
        psi.ArgumentList.Add(config);
        var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {name} ({file})");
        started(p.Id);
        return new PbsChild(name, role, config, keystores, log, url, p);
    }

    public bool IsRunning => !Exited.IsCompleted;

    /// <summary>SIGTERM, then SIGKILL if it has not ended within <paramref name="grace"/>. Returns its exit code (137 when killed).</summary>
    public async Task<int> StopAsync(TimeSpan grace)
    {
        Stopping = true;
        if (!Exited.IsCompleted)
        {
            Posix.Signal(Pid, Posix.SIGTERM);
            try
            {
                await Exited.WaitAsync(grace);
            }
            catch (TimeoutException)
            {
                Posix.Signal(Pid, Posix.SIGKILL);
            }
        }
        var code = await Exited;
        _process.Dispose();
        return code;
    }

    /// <summary>The last <paramref name="lines"/> lines of its log.</summary>
    public string Tail(int lines = 20)
    {
        try
        {
            using var f = new FileStream(LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            const int MaxBytes = 16 * 1024;
            if (f.Length > MaxBytes) f.Seek(-MaxBytes, SeekOrigin.End);
            using var r = new StreamReader(f, Encoding.UTF8);
            var all = r.ReadToEnd().Split('\n').Select(l => l.TrimEnd('\r')).ToList();
            while (all.Count > 0 && all[^1].Length == 0) all.RemoveAt(all.Count - 1);
            return string.Join('\n', all.TakeLast(lines));
        }
        catch (IOException e)
        {
            return $"(cannot read {LogPath}: {e.Message})";
        }
    }

    public JsonObject ToJson() => new()
    {
        ["name"] = Name,
        ["role"] = Role,
        ["pid"] = Pid,
        ["config"] = ConfigPath,
        ["keystores"] = new JsonArray([.. Keystores.Select(k => (JsonNode)k)]),
        ["log"] = LogPath,
        ["url"] = Url,
    };
}
