using System.CommandLine;
using System.Numerics;
using Microsoft.Extensions.Configuration;
using PbsMarket.Core;
using PbsMarket.L1;

namespace PbsMarket.Cli;

/// <summary><c>pbs deploy</c>: deploys the registry, escrow and inbox and writes deployment.json.</summary>
public static class DeployCommand
{
    public static Command Build()
    {
        var cmd = new Command("deploy", """
            Deploy the market's L1 contracts (ProposerRegistry, BuilderEscrow, Inbox) and write deployment.json, which
            `pbs relay --deployment` and `pbs proposer --deployment` read. Settings: section "Deploy" (env PBS_Deploy__Key).
            The deployer key: --keystore/--password-file, env PBS_DEPLOYER_KEY (hex), or --dev-account N (anvil only).
            """);
        var l1 = new Option<string>("--l1-rpc") { Description = "L1 JSON-RPC URL.", DefaultValueFactory = _ => "http://127.0.0.1:8545" };
        var outFile = new Option<string>("--out") { Description = "Where to write the deployment file.", DefaultValueFactory = _ => "deployment.json" };
        var proposers = new Option<string[]>("--proposer") { Description = "A genesis proposer address (repeat the flag; each is bonded with --min-bond-wei by the deployer).", AllowMultipleArgumentsPerToken = true };
        var slotMs = new Option<long>("--slot-ms") { Description = "Slot length in ms.", DefaultValueFactory = _ => 2000 };
        var epoch = new Option<long>("--slots-per-epoch") { Description = "Epoch length in slots.", DefaultValueFactory = _ => 32 };
        var l2 = new Option<long>("--l2-chain-id") { Description = "The L2 chain id.", DefaultValueFactory = _ => 901 };
        var genesis = new Option<long?>("--genesis-ms") { Description = "Genesis (unix ms). Default: the next slot boundary at least 5 s ahead." };
        var minBond = new Option<string>("--min-bond-wei") { Description = "Proposer bond in wei.", DefaultValueFactory = _ => "1000000000000000000" };
        var exitDelay = new Option<long>("--exit-delay-s") { Description = "Proposer exit delay (seconds).", DefaultValueFactory = _ => 3600 };
        var withdrawalDelay = new Option<long>("--withdrawal-delay-s") { Description = "Builder escrow withdrawal delay (seconds).", DefaultValueFactory = _ => 3600 };
        var priceRule = new Option<string>("--price-rule") { Description = "The inbox's price rule (an L1 market parameter): first_price or second_price.", DefaultValueFactory = _ => "second_price" };
        var reserve = new Option<string>("--reserve-wei") { Description = "The inbox's reserve price in wei (relays must be configured with the same).", DefaultValueFactory = _ => "0" };
        var keystore = new Option<string?>("--keystore") { Description = "Encrypted keystore of the deployer key." };
        var password = new Option<string?>("--password-file") { Description = "File holding the keystore password." };
        var dev = new Option<int?>("--dev-account") { Description = "Use anvil's default account N (0-9) as deployer: PUBLIC test keys, development only." };
        var config = Cli.ConfigOption();
        foreach (var o in new Option[] { l1, outFile, proposers, slotMs, epoch, l2, genesis, minBond, exitDelay, withdrawalDelay, priceRule, reserve, keystore, password, dev, config }) cmd.Options.Add(o);
        cmd.SetAction(async (pr, ct) =>
        {
            var cfg = Cli.LoadConfiguration(pr.GetValue(config));
            var rpc = Cli.Setting(pr, l1, cfg, "Deploy:L1Rpc");
            var slot = Cli.Setting(pr, slotMs, cfg, "Deploy:SlotMs");
            if (slot < 100) throw new UsageException("--slot-ms must be at least 100");
            var proposerAddresses = Cli.Settings(pr, proposers, cfg, "Deploy:Proposers").Select(p =>
                Address.TryParse(p, out var a) ? a : throw new UsageException($"--proposer: \"{p}\" is not an address")).ToList();
            if (!BigInteger.TryParse(Cli.Setting(pr, minBond, cfg, "Deploy:MinBondWei"), out var bond) || bond <= 0)
                throw new UsageException("--min-bond-wei must be a positive integer");
            var key = pr.GetValue(dev) is { } n ? DevKeys.Get(n)
                : Cli.LoadKeyHex(Cli.Setting(pr, keystore, cfg, "Deploy:Keystore"), Cli.Setting(pr, password, cfg, "Deploy:PasswordFile"), "PBS_DEPLOYER_KEY", "deployer");
            var genesisMs = Cli.Setting(pr, genesis, cfg, "Deploy:GenesisMs") ?? NextBoundary(slot, 5000);
            if (!AuctionRules.TryParsePriceRule(Cli.Setting(pr, priceRule, cfg, "Deploy:PriceRule"), out var rule)) throw new UsageException("--price-rule must be first_price or second_price");
            if (!BigInteger.TryParse(Cli.Setting(pr, reserve, cfg, "Deploy:ReserveWei"), out var reserveWei) || reserveWei < 0) throw new UsageException("--reserve-wei must be a non-negative integer");
            var p = new DeployParameters(Cli.Setting(pr, l2, cfg, "Deploy:L2ChainId"), genesisMs, slot, Cli.Setting(pr, epoch, cfg, "Deploy:SlotsPerEpoch"), bond,
                Cli.Setting(pr, exitDelay, cfg, "Deploy:ExitDelaySeconds"), Cli.Setting(pr, withdrawalDelay, cfg, "Deploy:WithdrawalDelaySeconds"), proposerAddresses,
                PriceRule: rule, ReservePrice: reserveWei);
            var market = await Deployer.DeployAsync(rpc, key, p, progress: m => Console.Error.WriteLine($"pbs deploy: {m}"), ct: ct);
            var path = Cli.Setting(pr, outFile, cfg, "Deploy:Out");
            market.Save(path);
            Console.Error.WriteLine($"pbs deploy: inbox {market.Inbox}, registry {market.Registry}, escrow {market.Escrow}; genesis {DateTimeOffset.FromUnixTimeMilliseconds(market.GenesisMs):O}");
            Console.WriteLine(Path.GetFullPath(path));
            return ExitCodes.Ok;
        });
        return cmd;
    }

    /// <summary>The first slot boundary (a multiple of <paramref name="slotMs"/>) at least <paramref name="aheadMs"/> from now.</summary>
    public static long NextBoundary(long slotMs, long aheadMs)
    {
        var t = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + aheadMs;
        return (t + slotMs - 1) / slotMs * slotMs;
    }
}
