using System.CommandLine;
using PbsMarket.L2;

namespace PbsMarket.Cli;

/// <summary><c>pbs l2users</c>: devnet traffic (docs/l2.md): funded test accounts send transfers and contract calls.</summary>
public static class L2UsersCommand
{
    public static Command Build()
    {
        var cmd = new Command("l2users", """
            DEVELOPMENT ONLY: send L2 traffic from the L2 genesis's public test accounts 10-19 (anvil's mnemonic): signed
            transfers and calls of a counter contract (deployed first, through the market), with tips of 1-5 gwei, to the
            L2 JSON-RPC, following each to its receipt. Settings: section "L2Users"; flags win.
            """);
        var rpc = new Option<string?>("--l2-rpc") { Description = "The L2 node's JSON-RPC (L2Users:L2Rpc)." };
        var users = new Option<int>("--users") { Description = "How many accounts send (1-10, L2Users:Users).", DefaultValueFactory = _ => 6 };
        var interval = new Option<int>("--interval-ms") { Description = "A transaction every this many ms (L2Users:IntervalMs).", DefaultValueFactory = _ => 200 };
        var chain = new Option<long>("--l2-chain-id") { Description = "The L2 chain id (L2Users:L2ChainId).", DefaultValueFactory = _ => 901 };
        var config = Cli.ConfigOption();
        foreach (var o in new Option[] { rpc, users, interval, chain, config }) cmd.Options.Add(o);
        cmd.SetAction(async (pr, ct) =>
        {
            var cfg = Cli.LoadConfiguration(pr.GetValue(config));
            var url = Cli.Setting(pr, rpc, cfg, "L2Users:L2Rpc") ?? throw new UsageException("--l2-rpc (L2Users:L2Rpc) is required");
            if (!Uri.TryCreate(url, UriKind.Absolute, out var u) || u.Scheme is not ("http" or "https")) throw new UsageException($"--l2-rpc: \"{url}\" is not an http(s) URL");
            var n = Cli.Setting(pr, users, cfg, "L2Users:Users");
            if (n is < 1 or > 10) throw new UsageException("--users must be 1-10");
            var ms = Cli.Setting(pr, interval, cfg, "L2Users:IntervalMs");
            if (ms is < 10 or > 60_000) throw new UsageException("--interval-ms must be 10-60000");
            var chainId = Cli.Setting(pr, chain, cfg, "L2Users:L2ChainId");
            using var client = new JsonRpcClient(url, TimeSpan.FromSeconds(5));
            var traffic = new L2Users(client, [.. PbsMarket.LocalServers.AnvilNode.DevKeys.Skip(10).Take(n)], chainId, TimeSpan.FromMilliseconds(ms),
                line => Console.Error.WriteLine($"{DateTime.Now:HH:mm:ss.fff} l2users: {line}"));
            Console.Error.WriteLine($"pbs l2users: {n} users sending to {url} every {ms} ms (Ctrl-C stops)");
            try { await traffic.RunAsync(ct); } catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
            Console.Error.WriteLine($"pbs l2users: {traffic.Stats}");
            return ExitCodes.Ok;
        });
        return cmd;
    }
}
