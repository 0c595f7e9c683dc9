using System.Diagnostics;

namespace PbsMarket.LocalServers;

/// <summary>One redis-server of a <see cref="RedisCluster"/>: cluster mode on, its node table in its own folder.</summary>
public sealed class RedisClusterNode(string dir, int nodeTimeoutMs) : RedisServer(dir)
{
    protected override ProcessStartInfo StartInfo()
    {
        var psi = base.StartInfo();
        foreach (var arg in new[] { "--cluster-enabled", "yes", "--cluster-config-file", Path.Combine(Dir, "nodes.conf"),
                     "--cluster-node-timeout", nodeTimeoutMs.ToString(System.Globalization.CultureInfo.InvariantCulture) })
            psi.ArgumentList.Add(arg);
        return psi;
    }

    /// <summary>
    /// How many commands this node has run (INFO commandstats; commands inside scripts count too, INFO itself does not),
    /// or only those of <paramref name="command"/> (e.g. "hmget").
    /// </summary>
    public async Task<long> CommandCallsAsync(string? command = null, CancellationToken ct = default)
    {
        var stats = await CliAsync(ct, "INFO", "commandstats");
        return stats.Split('\n')
            .Where(l => command is null ? l.StartsWith("cmdstat_", StringComparison.Ordinal) && !l.StartsWith("cmdstat_info:", StringComparison.Ordinal)
                                        : l.StartsWith($"cmdstat_{command}:", StringComparison.Ordinal))
            .Sum(l => long.Parse(l[(l.IndexOf("calls=", StringComparison.Ordinal) + 6)..].Split(',')[0], System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>Runs one command through redis-cli against this node and returns its output.</summary>
    public Task<string> CliAsync(CancellationToken ct, params string[] args) => RedisCli.RunAsync(["-h", "127.0.0.1", "-p", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), .. args], ct);
}

/// <summary>
/// A real Redis Cluster on loopback: <c>masters</c> masters with <c>replicasPerMaster</c> replicas each, formed with
/// <c>redis-cli --cluster create</c>. Each node is its own process and folder; kill one (<see cref="ServerProcess.KillAsync"/>)
/// and the cluster promotes its replica after <c>nodeTimeoutMs</c>.
/// </summary>
public class RedisCluster(string dir, int masters = 3, int replicasPerMaster = 1, int nodeTimeoutMs = 3000) : IAsyncDisposable
{
    public IReadOnlyList<RedisClusterNode> Nodes { get; } =
        [.. Enumerable.Range(0, masters * (1 + replicasPerMaster)).Select(i => new RedisClusterNode(Path.Combine(dir, $"node-{i}"), nodeTimeoutMs))];

    public string Dir { get; } = dir;
    public int NodeTimeoutMs { get; } = nodeTimeoutMs;

    /// <summary>Every node as a seed: the client finds the slot map from whichever answers.</summary>
    public string ConnectionString => string.Join(',', Nodes.Select(n => n.Endpoint)) + ",abortConnect=false,connectTimeout=2000,syncTimeout=2000";

    /// <summary>Called with the pid of every node started (for a watchdog).</summary>
    public Action<int>? OnStarted
    {
        set { foreach (var n in Nodes) n.OnStarted = value; }
    }

    public bool DeleteDirOnDispose { get; set; }

    public async Task StartAsync(CancellationToken ct = default)
    {
        await Task.WhenAll(Nodes.Select(n => n.StartAsync(ct)));
        await RedisCli.RunAsync(["--cluster", "create", .. Nodes.Select(n => n.Endpoint), "--cluster-replicas",
            replicasPerMaster.ToString(System.Globalization.CultureInfo.InvariantCulture), "--cluster-yes"], ct);
        await WaitHealthyAsync(TimeSpan.FromSeconds(60), ct);
    }

    /// <summary>
    /// Waits until every running node reports <c>cluster_state:ok</c>, every slot is served by a running master, and
    /// every such master has <c>replicasPerMaster</c> connected replicas (so a write acknowledged with WAIT is on two nodes).
    /// </summary>
    public async Task WaitHealthyAsync(TimeSpan timeout, CancellationToken ct = default)
    {
        var deadline = Stopwatch.StartNew();
        var last = "";
        while (true)
        {
            try
            {
                var running = Nodes.Where(n => n.IsRunning).ToList();
                var states = await Task.WhenAll(running.Select(n => n.CliAsync(ct, "CLUSTER", "INFO")));
                var roles = await Task.WhenAll(running.Select(n => n.CliAsync(ct, "INFO", "replication")));
                var masterCount = roles.Count(r => r.Contains("role:master", StringComparison.Ordinal));
                var replicated = roles.Where(r => r.Contains("role:master", StringComparison.Ordinal))
                    .All(r => ConnectedReplicas(r) >= replicasPerMaster || running.Count < Nodes.Count);
                if (states.All(s => s.Contains("cluster_state:ok", StringComparison.Ordinal)) && masterCount >= masters && replicated)
                    return;
                last = $"states: {string.Join(", ", states.Select(s => s.Contains("cluster_state:ok") ? "ok" : "fail"))}; masters {masterCount}";
            }
            catch (InvalidOperationException e)
            {
                last = e.Message;
            }
            if (deadline.Elapsed > timeout) throw new TimeoutException($"the Redis Cluster in {Dir} did not become healthy within {timeout.TotalSeconds:0} s ({last})");
            await Task.Delay(100, ct);
        }
    }

    static int ConnectedReplicas(string info)
    {
        foreach (var line in info.Split('\n'))
            if (line.StartsWith("connected_slaves:", StringComparison.Ordinal)) return int.Parse(line.AsSpan(17).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        return 0;
    }

    /// <summary>The running node that is master for the hash slot of <paramref name="key"/> right now.</summary>
    public async Task<RedisClusterNode> MasterOfAsync(string key, CancellationToken ct = default)
    {
        var any = Nodes.First(n => n.IsRunning);
        var slot = int.Parse((await any.CliAsync(ct, "CLUSTER", "KEYSLOT", key)).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        foreach (var n in Nodes.Where(n => n.IsRunning))
        {
            var info = await n.CliAsync(ct, "INFO", "replication");
            if (!info.Contains("role:master", StringComparison.Ordinal)) continue;
            // CLUSTER NODES on the node itself: the "myself" line lists the slot ranges it serves.
            var nodes = await n.CliAsync(ct, "CLUSTER", "NODES");
            var mine = nodes.Split('\n').FirstOrDefault(l => l.Contains("myself", StringComparison.Ordinal)) ?? "";
            foreach (var range in mine.Split(' ').Skip(8))
            {
                var parts = range.Split('-');
                if (parts.Length == 0 || !int.TryParse(parts[0], out var lo)) continue;
                var hi = parts.Length > 1 && int.TryParse(parts[1], out var h) ? h : lo;
                if (slot >= lo && slot <= hi) return n;
            }
        }
        throw new InvalidOperationException($"no running master serves hash slot {slot} (key {key})");
    }

    /// <summary>Waits until <paramref name="replica"/> has taken over as a master (after its master was lost) and every
    /// running node reports the cluster ok again.</summary>
    public async Task WaitPromotedAsync(RedisClusterNode replica, TimeSpan timeout, CancellationToken ct = default)
    {
        var deadline = Stopwatch.StartNew();
        var last = "";
        while (true)
        {
            try
            {
                var role = await replica.CliAsync(ct, "INFO", "replication");
                var infos = await Task.WhenAll(Nodes.Where(n => n.IsRunning).Select(n => n.CliAsync(ct, "CLUSTER", "INFO")));
                if (role.Contains("role:master", StringComparison.Ordinal) && infos.All(i => i.Contains("cluster_state:ok", StringComparison.Ordinal))) return;
                last = role.Contains("role:master", StringComparison.Ordinal) ? "promoted; cluster not ok everywhere yet" : "still a replica";
            }
            catch (InvalidOperationException e)
            {
                last = e.Message;
            }
            if (deadline.Elapsed > timeout) throw new TimeoutException($"{replica.Endpoint} did not take over as master within {timeout.TotalSeconds:0} s ({last})");
            await Task.Delay(100, ct);
        }
    }

    /// <summary>The running replica of <paramref name="master"/> (from its INFO replication).</summary>
    public async Task<RedisClusterNode> ReplicaOfAsync(RedisClusterNode master, CancellationToken ct = default)
    {
        var info = await master.CliAsync(ct, "INFO", "replication");
        foreach (var line in info.Split('\n'))
        {
            if (!line.StartsWith("slave", StringComparison.Ordinal)) continue;
            var port = line.Split(',').Select(f => f.Split('=')).FirstOrDefault(kv => kv.Length == 2 && kv[0] == "port")?[1];
            if (port is not null && Nodes.FirstOrDefault(n => n.Port.ToString(System.Globalization.CultureInfo.InvariantCulture) == port.Trim() && n.IsRunning) is { } replica)
                return replica;
        }
        throw new InvalidOperationException($"master {master.Endpoint} has no running replica ({info.Trim()})");
    }

    /// <summary>The running nodes that are masters now.</summary>
    public async Task<IReadOnlyList<RedisClusterNode>> MastersAsync(CancellationToken ct = default)
    {
        var list = new List<RedisClusterNode>();
        foreach (var n in Nodes.Where(n => n.IsRunning))
            if ((await n.CliAsync(ct, "INFO", "replication")).Contains("role:master", StringComparison.Ordinal)) list.Add(n);
        return list;
    }

    public async ValueTask DisposeAsync()
    {
        await Task.WhenAll(Nodes.Select(n => n.DisposeAsync().AsTask()));
        if (DeleteDirOnDispose)
        {
            try { if (Directory.Exists(Dir)) Directory.Delete(Dir, recursive: true); }
            catch (IOException) { }
        }
    }
}

static class RedisCli
{
    public static async Task<string> RunAsync(string[] args, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(Tools.Require("redis-cli", "apt-get install -y redis-tools"))
        {
            UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("could not run redis-cli");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        var stdout = p.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = p.StandardError.ReadToEndAsync(timeout.Token);
        try
        {
            await p.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill();
            throw new InvalidOperationException($"redis-cli {string.Join(' ', args)} did not finish within 30 s");
        }
        var output = await stdout;
        if (p.ExitCode != 0 || output.StartsWith("ERR", StringComparison.Ordinal) || output.Contains("[ERR]", StringComparison.Ordinal))
            throw new InvalidOperationException($"redis-cli {string.Join(' ', args)} failed ({p.ExitCode}): {await stderr}{output}");
        return output;
    }
}
