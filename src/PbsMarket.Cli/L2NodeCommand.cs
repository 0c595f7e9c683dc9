using System.CommandLine;
using System.Globalization;
using Microsoft.Extensions.Logging;
using PbsMarket.L1;
using PbsMarket.L2;

namespace PbsMarket.Cli;

/// <summary><c>pbs l2node</c>: derives the L2 chain on an execution engine and serves the L2 JSON-RPC (docs/l2.md).</summary>
public static class L2NodeCommand
{
    public static Command Build()
    {
        var cmd = new Command("l2node", """
            Run the L2 node: it executes every L2 block on the execution engine, as L1 holds it and, ahead of L1, as the
            relays' signed proposals announce it (L1 wins where they differ), and serves the L2 JSON-RPC (balances,
            receipts, blocks, eth_sendRawTransaction into its mempool, pbs_pendingTransactions for builders). Relays
            simulate bids on its relay port (loopback). On start the engine is reset and the chain derived from L1.
            Settings: section "L2Node" (see docs/l2.md); flags win.
            """);
        var deployment = new Option<string?>("--deployment") { Description = "deployment.json (L2Node:DeploymentFile)." };
        var l1 = new Option<string?>("--l1-rpc") { Description = "L1 JSON-RPC URL (L2Node:L1Rpc)." };
        var engine = new Option<string?>("--engine-rpc") { Description = "The L2 execution engine's JSON-RPC URL (L2Node:EngineRpc)." };
        var relays = new Option<string[]>("--relay") { Description = "A relay URL whose proposed heads are executed ahead of L1 (repeat).", AllowMultipleArgumentsPerToken = true };
        var port = new Option<int?>("--port") { Description = "The L2 JSON-RPC port (L2Node:Port; 0 = any free port)." };
        var relayPort = new Option<int?>("--relay-port") { Description = "The relays' port on loopback, which also serves pbs_simulateBlock (L2Node:RelayPort)." };
        var config = Cli.ConfigOption();
        var logFormat = PbsLogging.FormatOption();
        foreach (var o in new Option[] { deployment, l1, engine, relays, port, relayPort, config, logFormat }) cmd.Options.Add(o);
        cmd.SetAction(async (pr, ct) =>
        {
            var cfg = Cli.LoadConfiguration(pr.GetValue(config));
            var options = new L2NodeOptions();
            Microsoft.Extensions.Configuration.ConfigurationBinder.Bind(cfg.GetSection("L2Node"), options);
            var deploymentFile = Cli.Setting(pr, deployment, cfg, "L2Node:DeploymentFile") ?? throw new UsageException("--deployment (L2Node:DeploymentFile) is required");
            Cli.RequireFile(deploymentFile, "--deployment");
            var market = DeployedMarket.Load(deploymentFile);
            if (Cli.Setting(pr, l1, cfg, "L2Node:L1Rpc") is { } l1Rpc) options.L1Rpc = l1Rpc;
            if (Cli.Setting(pr, engine, cfg, "L2Node:EngineRpc") is { } e) options.EngineRpc = e;
            if (pr.GetValue(port) is { } p) options.Port = p;
            if (pr.GetValue(relayPort) is { } rp) options.RelayPort = rp;
            var rs = Cli.Settings(pr, relays, cfg, "L2Node:Relays");
            if (rs.Length > 0) options.Relays = [.. rs];
            var problems = options.Validate().ToList();
            if (problems.Count > 0) throw new UsageException("invalid configuration:" + string.Concat(problems.Select(x => "\n  " + x)));
            var node = L2Node.Build(options, market, b =>
            {
                PbsLogging.Apply(b, pr.GetValue(logFormat));
                Cli.CommandOwnsSignals(b.Services);
            });
            await node.StartAsync(ct);
            Console.WriteLine($"L2 RPC {node.RpcUrl}");
            Console.WriteLine($"L2 relay port {node.RelayRpcUrl}");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"L2 chain id {market.L2ChainId}; engine {options.EngineRpc}; relays {(options.Relays.Count == 0 ? "none (L1 only)" : string.Join(", ", options.Relays))}"));
            return await Cli.RunUntilStoppedAsync(node.App, "l2node", ct);
        });
        return cmd;
    }
}
