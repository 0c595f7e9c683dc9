using System.CommandLine;
using System.Diagnostics;
using System.Numerics;
using PbsMarket.Cli.Devnet;
using PbsMarket.LocalServers;

namespace PbsMarket.Cli;

/// <summary><c>pbs devnet</c>: the whole market on this machine.</summary>
public static class DevnetCommand
{
    public static Command Build()
    {
        var cmd = new Command("devnet", """
            Run the whole market locally: Redis, PostgreSQL and anvil (a block every second) with all their files in one
            runtime folder (overwritten each start), the contracts deployed (proposers = anvil accounts 1-4, builders = 5-7
            with escrow deposits, relay key = account 9: PUBLIC test keys), all as separate processes: `pbs deploy`, `pbs
            relay` instances sharing Redis and PostgreSQL (serving the dashboard), one `pbs proposer` and one `pbs builder`
            per builder, each from a config file and keystores (mode 600) in the runtime folder, each with its own log.
            Prints where everything is and one line per slot. Ctrl-C or SIGTERM stops everything. With --slots N it runs N slots, prints a summary and checks the market
            (exit code 3 if it misbehaved). Settings: section "Devnet" (env PBS_Devnet__Key); flags win.
            """);
        var proposers = new Option<int>("--proposers") { Description = "Number of proposers (1-16).", DefaultValueFactory = _ => 4 };
        var builders = new Option<int>("--builders") { Description = "Number of demo builders (1-8); strategies rotate steady, sniper, incremental.", DefaultValueFactory = _ => 3 };
        var relays = new Option<int>("--relays") { Description = "Relay instances sharing Redis and PostgreSQL (1-4).", DefaultValueFactory = _ => 2 };
        var slotMs = new Option<long>("--slot-ms") { Description = "Slot length in ms (>= 500).", DefaultValueFactory = _ => 2000 };
        var closeOffset = new Option<long?>("--close-offset-ms") { Description = "Auctions close this long before their slot (default: 250, or slot/5 for slots under 1250 ms)." };
        var slots = new Option<int?>("--slots") { Description = "Run this many slots, print a summary, check the market and exit." };
        var runtime = new Option<string?>("--runtime-dir") { Description = "Folder for every server's data and logs (default .run/devnet in the repository, else in the working folder)." };
        var hold = new Option<bool>("--hold") { Description = "With --slots: after the summary keep everything running until Enter (or stdin closes)." };
        var port = new Option<int?>("--port") { Description = "First relay's port (the next relays use the following ports). Default: free ports." };
        var priceRule = new Option<string>("--price-rule") { Description = "Auction price rule.", DefaultValueFactory = _ => "second_price" };
        priceRule.AcceptOnlyFromAmong("first_price", "second_price");
        var simulation = new Option<string>("--simulation") { Description = "How the relays check bids by execution (docs/l2.md): pessimistic (every bid simulated before its receipt) or optimistic (accepted first, the winner simulated before it is served).", DefaultValueFactory = _ => "pessimistic" };
        simulation.AcceptOnlyFromAmong("pessimistic", "optimistic");
        var l2 = new Option<long>("--l2-chain-id") { Description = "The L2 chain id.", DefaultValueFactory = _ => 901 };
        var noProposer = new Option<bool>("--no-proposer") { Description = "Don't start `pbs proposer` (every slot is then missed); its config is still written, to start it by hand." };
        var junkHeads = new Option<bool>("--junk-heads") { Description = "The first proposer also announces junk heads (far-future own slots, made-up parents) to every relay; they must all be refused." };
        var noSetup = new Option<bool>("--no-setup") { Description = "Don't run scripts/setup.sh when a tool is missing; just say what is missing." };
        var config = Cli.ConfigOption();
        foreach (var o in new Option[] { proposers, builders, relays, slotMs, closeOffset, slots, runtime, hold, port, priceRule, simulation, l2, noProposer, junkHeads, noSetup, config }) cmd.Options.Add(o);
        cmd.SetAction(async (pr, ct) =>
        {
            var cfg = Cli.LoadConfiguration(pr.GetValue(config));
            var s = new DevnetSettings
            {
                Proposers = Cli.Setting(pr, proposers, cfg, "Devnet:Proposers"),
                Builders = Cli.Setting(pr, builders, cfg, "Devnet:Builders"),
                Relays = Cli.Setting(pr, relays, cfg, "Devnet:Relays"),
                SlotMs = Cli.Setting(pr, slotMs, cfg, "Devnet:SlotMs"),
                Slots = Cli.Setting(pr, slots, cfg, "Devnet:Slots"),
                Hold = pr.GetValue(hold),
                Port = Cli.Setting(pr, port, cfg, "Devnet:Port"),
                PriceRule = Cli.Setting(pr, priceRule, cfg, "Devnet:PriceRule"),
                Simulation = Cli.Setting(pr, simulation, cfg, "Devnet:Simulation"),
                L2ChainId = Cli.Setting(pr, l2, cfg, "Devnet:L2ChainId"),
                Proposer = !pr.GetValue(noProposer),
                JunkHeads = pr.GetValue(junkHeads),
            };
            s.CloseOffsetMs = Cli.Setting(pr, closeOffset, cfg, "Devnet:CloseOffsetMs") ?? (s.SlotMs < 1250 ? s.SlotMs / 5 : 250);
            if (s.Proposers is < 1 or > 16) throw new UsageException("--proposers must be 1..16");
            if (s.Builders is < 1 or > 8) throw new UsageException("--builders must be 1..8");
            if (s.Relays is < 1 or > 4) throw new UsageException("--relays must be 1..4");
            if (s.SlotMs is < 500 or > 600_000) throw new UsageException("--slot-ms must be 500..600000");
            if (s.CloseOffsetMs < 0 || s.CloseOffsetMs >= s.SlotMs / 2) throw new UsageException("--close-offset-ms must be below half a slot");
            if (s.Slots is < 1) throw new UsageException("--slots must be at least 1");
            if (s.Hold && s.Slots is null) throw new UsageException("--hold needs --slots");
            if (s.Port is < 1 or > 65000) throw new UsageException("--port must be 1..65000");
            s.RuntimeDir = Cli.Setting(pr, runtime, cfg, "Devnet:RuntimeDir") ?? Path.Combine(Tools.RepoRoot ?? Environment.CurrentDirectory, ".run", "devnet");

            if (Tools.Missing() is { Count: > 0 } missing)
            {
                var setup = Tools.RepoRoot is { } root ? Path.Combine(root, "scripts", "setup.sh") : null;
                if (pr.GetValue(noSetup) || setup is null || !File.Exists(setup))
                    throw new MissingToolException($"missing: {string.Join(", ", missing)}. Run `{Tools.SetupCommand}` from the repository (it installs them), then try again.");
                Console.Error.WriteLine($"pbs devnet: missing {string.Join(", ", missing)}: running {setup}");
                using var p = Process.Start(new ProcessStartInfo(setup) { UseShellExecute = false })!;
                await p.WaitForExitAsync(ct);
                if (p.ExitCode != 0 || Tools.Missing().Count > 0)
                    throw new MissingToolException($"scripts/setup.sh did not install everything (still missing: {string.Join(", ", Tools.Missing())})");
            }
            return await new DevnetRunner(s, Console.Out, Console.Error).RunAsync(ct);
        });
        return cmd;
    }
}
