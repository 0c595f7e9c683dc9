using System.CommandLine;
using System.Numerics;
using System.Text.Json;
using System.Text.Json.Nodes;
using PbsMarket.Builder.Demo;
using PbsMarket.Core;
using PbsMarket.L1;

namespace PbsMarket.Cli;

/// <summary><c>pbs builder</c>: one demo builder against one or more relays.</summary>
public static class BuilderCommand
{
    public static Command Build()
    {
        var cmd = new Command("builder", $"""
            Run one demo builder against one or more relays: it fills blocks with signed EIP-1559 L2 transfers between its
            demo accounts and bids with a strategy ({string.Join(", ", BidStrategies.Names)}); after each close it checks its
            bids are in the bids root. Settings: section "Builder" (env PBS_Builder__Key). The builder key:
            --keystore/--password-file, env PBS_BUILDER_KEY (hex), or --dev-account N (anvil only).
            """);
        var relays = new Option<string[]>("--relay") { Description = "Relay base URL (repeat for several relays).", AllowMultipleArgumentsPerToken = true };
        var strategy = new Option<string>("--strategy") { Description = $"Bidding strategy: {string.Join(", ", BidStrategies.Names)}.", DefaultValueFactory = _ => "steady" };
        strategy.AcceptOnlyFromAmong(BidStrategies.Names);
        var name = new Option<string>("--name") { Description = "Name in logs; also seeds the demo L2 accounts.", DefaultValueFactory = _ => "builder" };
        var minTxs = new Option<int>("--min-txs") { Description = "Fewest transactions per block.", DefaultValueFactory = _ => 5 };
        var maxTxs = new Option<int>("--max-txs") { Description = "Most transactions per block.", DefaultValueFactory = _ => 20 };
        var keystore = new Option<string?>("--keystore") { Description = "Encrypted keystore of the builder key." };
        var password = new Option<string?>("--password-file") { Description = "File holding the keystore password." };
        var dev = new Option<int?>("--dev-account") { Description = "Use anvil's default account N (0-9): PUBLIC test keys, development only." };
        var deposit = new Option<string?>("--deposit-wei") { Description = "First deposit this much collateral into the escrow (needs --deployment and --l1-rpc)." };
        var deployment = new Option<string?>("--deployment") { Description = "deployment.json (for --deposit-wei)." };
        var allocate = new Option<string?>("--deposit-relay") { Description = "The relay (signing address) the deposit is allocated to: collateral is per relay (protocol v2)." };
        var l1 = new Option<string>("--l1-rpc") { Description = "L1 JSON-RPC URL (for --deposit-wei).", DefaultValueFactory = _ => "http://127.0.0.1:8545" };
        var verbose = new Option<bool>("--verbose") { Description = "Log every bid." };
        var statsFile = new Option<string?>("--stats-file") { Description = "On exit, write what it did (bids accepted and refused, wins, inclusion checks) to this JSON file (Builder:StatsFile)." };
        var l2Rpc = new Option<string?>("--l2-rpc") { Description = "The L2 node's JSON-RPC: build blocks from its mempool (Builder:L2Rpc; needs --l2-simulation-rpc). Without it, blocks of demo transfers." };
        var l2Sim = new Option<string?>("--l2-simulation-rpc") { Description = "The L2 node's relay port, where blocks are simulated (Builder:L2SimulationRpc)." };
        var config = Cli.ConfigOption();
        foreach (var o in new Option[] { relays, strategy, name, minTxs, maxTxs, keystore, password, dev, deposit, deployment, allocate, l1, verbose, statsFile, l2Rpc, l2Sim, config }) cmd.Options.Add(o);
        cmd.SetAction(async (pr, ct) =>
        {
            var cfg = Cli.LoadConfiguration(pr.GetValue(config));
            var urls = Cli.Settings(pr, relays, cfg, "Builder:Relays");
            if (urls.Length == 0) throw new UsageException("give at least one --relay URL");
            foreach (var u in urls)
                if (!Uri.TryCreate(u, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https")) throw new UsageException($"--relay: \"{u}\" is not an http(s) URL");
            var strat = Cli.Setting(pr, strategy, cfg, "Builder:Strategy");
            if (!BidStrategies.Names.Contains(strat)) throw new UsageException($"--strategy must be one of {string.Join(", ", BidStrategies.Names)}");
            var (lo, hi) = (Cli.Setting(pr, minTxs, cfg, "Builder:MinTxs"), Cli.Setting(pr, maxTxs, cfg, "Builder:MaxTxs"));
            if (lo < 0 || hi < lo || hi > 5000) throw new UsageException("need 0 <= --min-txs <= --max-txs <= 5000");
            var keyHex = pr.GetValue(dev) is { } n ? DevKeys.Get(n)
                : Cli.LoadKeyHex(Cli.Setting(pr, keystore, cfg, "Builder:Keystore"), Cli.Setting(pr, password, cfg, "Builder:PasswordFile"), "PBS_BUILDER_KEY", "builder");
            var key = ProtocolKey.FromHex(keyHex);
            if (pr.GetValue(deposit) is { } amountText)
            {
                if (!BigInteger.TryParse(amountText, out var amount) || amount <= 0) throw new UsageException("--deposit-wei must be a positive integer");
                var path = pr.GetValue(deployment) ?? throw new UsageException("--deposit-wei needs --deployment");
                Cli.RequireFile(path, "--deployment");
                if (!Address.TryParse(pr.GetValue(allocate), out var relayAddress)) throw new UsageException("--deposit-wei needs --deposit-relay (the relay's signing address)");
                await Deployer.DepositAsync(Cli.Setting(pr, l1, cfg, "Builder:L1Rpc"), DeployedMarket.Load(path), keyHex, amount, relayAddress);
                Console.Error.WriteLine($"pbs builder: deposited {amount} wei for {key.Address} at relay {relayAddress}");
            }
            var verboseOn = pr.GetValue(verbose);
            var l2 = Cli.Setting(pr, l2Rpc, cfg, "Builder:L2Rpc");
            var l2s = Cli.Setting(pr, l2Sim, cfg, "Builder:L2SimulationRpc");
            foreach (var (flag, u) in new[] { ("--l2-rpc", l2), ("--l2-simulation-rpc", l2s) })
                if (!string.IsNullOrEmpty(u) && (!Uri.TryCreate(u, UriKind.Absolute, out var lu) || lu.Scheme is not ("http" or "https"))) throw new UsageException($"{flag}: \"{u}\" is not an http(s) URL");
            if (string.IsNullOrEmpty(l2) != string.IsNullOrEmpty(l2s)) throw new UsageException("--l2-rpc and --l2-simulation-rpc go together");
            var builderName = Cli.Setting(pr, name, cfg, "Builder:Name");
            await using var builder = new DemoBuilder(new DemoBuilderOptions { Name = builderName, Relays = urls, Strategy = strat, MinTxs = lo, MaxTxs = hi, L2Rpc = l2, L2SimulationRpc = l2s }, key,
                (level, message) =>
                {
                    if (level == DemoLogLevel.Debug && !verboseOn) return;
                    Console.Error.WriteLine($"{DateTime.Now:HH:mm:ss.fff} {builderName}: {message}");
                });
            Console.Error.WriteLine($"pbs builder: {builder} bidding on {string.Join(", ", urls)}{(string.IsNullOrEmpty(l2) ? "" : $" with blocks from the L2 mempool at {l2}")} (Ctrl-C stops)");
            try { await builder.RunAsync(ct); } catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
            var s = builder.Stats;
            Console.Error.WriteLine($"pbs builder: {s.BidsAccepted} bids accepted in {s.SlotsBid} slots, {s.BidsRefused} refused, {s.Wins} won, {s.InclusionVerified} verified in the bids root, {s.InclusionFailed} not");
            if (Cli.Setting(pr, statsFile, cfg, "Builder:StatsFile") is { Length: > 0 } statsPath) WriteStats(statsPath, builder);
            return ExitCodes.Ok;
        });
        return cmd;
    }

    /// <summary>The builder's counters as JSON (written to a temporary file, then renamed: a reader never sees half of it).</summary>
    static void WriteStats(string path, DemoBuilder b)
    {
        var s = b.Stats;
        var json = new JsonObject
        {
            ["name"] = b.Name, ["strategy"] = b.StrategyName, ["address"] = b.Address.ToString(),
            ["bids_accepted"] = s.BidsAccepted, ["bids_refused"] = s.BidsRefused, ["slots_bid"] = s.SlotsBid, ["wins"] = s.Wins,
            ["inclusion_verified"] = s.InclusionVerified, ["inclusion_failed"] = s.InclusionFailed,
            ["refusal_codes"] = new JsonObject(s.RefusalCodes.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
        }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        File.WriteAllText(full + ".tmp", json);
        File.Move(full + ".tmp", full, overwrite: true);
    }
}
