using System.CommandLine;
using System.Globalization;
using Microsoft.Extensions.Configuration;
using PbsMarket.L1;
using PbsMarket.Relay;

namespace PbsMarket.Cli;

/// <summary><c>pbs relay</c>: one relay instance (RelayHost) with the given configuration.</summary>
public static class RelayCommand
{
    public static Command Build()
    {
        var cmd = new Command("relay", """
            Run a relay (builder, proposer and data APIs, the dashboard at / when web/dist is built, L1 poster).
            Settings: section "Relay" (env PBS_Relay__Key, e.g. PBS_Relay__SigningKey); flags win.
            """);
        var deployment = new Option<string?>("--deployment") { Description = "deployment.json from `pbs deploy`: fills Relay:Inbox, Registry, Escrow, L1ChainId, L2ChainId, GenesisMs, SlotMs, SlotsPerEpoch." };
        var redis = new Option<string?>("--redis") { Description = "Redis connection string (Relay:Redis), e.g. 127.0.0.1:6379." };
        var postgres = new Option<string?>("--postgres") { Description = "PostgreSQL connection string (Relay:Postgres)." };
        var l1 = new Option<string?>("--l1-rpc") { Description = "L1 JSON-RPC URL (Relay:L1Rpc)." };
        var urls = new Option<string?>("--urls") { Description = "Where to listen (default http://127.0.0.1:8080)." };
        var network = new Option<string?>("--network") { Description = "Network name, the Redis key prefix (Relay:Network)." };
        var keystore = new Option<string?>("--keystore") { Description = "Encrypted keystore of the relay signing key (Relay:KeystorePath); or set PBS_Relay__SigningKey." };
        var password = new Option<string?>("--password-file") { Description = "File holding the keystore password (Relay:KeystorePasswordFile)." };
        var instance = new Option<string?>("--instance-id") { Description = "Name of this instance in logs and leases." };
        var slotMs = new Option<long?>("--slot-ms") { Description = "Slot length (only without --deployment)." };
        var config = Cli.ConfigOption();
        var logFormat = PbsLogging.FormatOption();
        foreach (var o in new Option[] { deployment, redis, postgres, l1, urls, network, keystore, password, instance, slotMs, config, logFormat }) cmd.Options.Add(o);
        cmd.SetAction(async (pr, ct) =>
        {
            var settings = new Dictionary<string, string?>();
            if (pr.GetValue(deployment) is { } path)
            {
                Cli.RequireFile(path, "--deployment");
                Fill(settings, DeployedMarket.Load(path));
            }
            void Set(Option<string?> o, string key) { if (pr.GetValue(o) is { } v) settings[key] = v; }
            Set(redis, "Relay:Redis");
            Set(postgres, "Relay:Postgres");
            Set(l1, "Relay:L1Rpc");
            Set(network, "Relay:Network");
            Set(keystore, "Relay:KeystorePath");
            Set(password, "Relay:KeystorePasswordFile");
            Set(instance, "Relay:InstanceId");
            if (pr.GetValue(slotMs) is { } sm) settings["Relay:SlotMs"] = sm.ToString(CultureInfo.InvariantCulture);
            Cli.RequireFile(pr.GetValue(keystore), "--keystore");
            Cli.RequireFile(pr.GetValue(password), "--password-file");
            var configFile = pr.GetValue(config);
            Cli.RequireFile(configFile, "--config");
            var app = RelayHost.Build([], b =>
            {
                if (configFile is not null)
                {
                    b.Configuration.AddJsonFile(Path.GetFullPath(configFile), optional: false);
                    b.Configuration.AddEnvironmentVariables("PBS_"); // the environment still beats the file
                }
                b.Configuration.AddInMemoryCollection(settings);
                PbsLogging.Apply(b, pr.GetValue(logFormat));
                Cli.CommandOwnsSignals(b.Services);
                b.WebHost.UseUrls(pr.GetValue(urls) ?? b.Configuration["urls"] ?? "http://127.0.0.1:8080");
            });
            var o = app.Configuration.GetSection(RelayOptions.Section);
            if (string.IsNullOrEmpty(o["KeystorePath"]) && string.IsNullOrEmpty(o["SigningKey"]))
                throw new UsageException("no relay signing key: give --keystore and --password-file, or set PBS_Relay__SigningKey");
            if (string.IsNullOrEmpty(o["Inbox"]))
                throw new UsageException("no market: give --deployment deployment.json (or Relay:Inbox and the other Relay settings)");
            await app.StartAsync(ct);
            Console.Error.WriteLine($"pbs relay: listening on {string.Join(", ", app.Urls)} (Ctrl-C stops)");
            return await Cli.RunUntilStoppedAsync(app, "relay", ct);
        });
        return cmd;
    }

    public static void Fill(IDictionary<string, string?> s, DeployedMarket d)
    {
        var c = CultureInfo.InvariantCulture;
        s["Relay:Inbox"] = d.Inbox;
        s["Relay:Registry"] = d.Registry;
        s["Relay:Escrow"] = d.Escrow;
        s["Relay:DeployedAtBlock"] = d.DeployedAtBlock.ToString(c);
        s["Relay:L1ChainId"] = d.L1ChainId.ToString(c);
        s["Relay:L2ChainId"] = d.L2ChainId.ToString(c);
        s["Relay:GenesisMs"] = d.GenesisMs.ToString(c);
        s["Relay:SlotMs"] = d.SlotMs.ToString(c);
        s["Relay:SlotsPerEpoch"] = d.SlotsPerEpoch.ToString(c);
    }
}
