using System.CommandLine;
using System.Globalization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using PbsMarket.Proposer;

namespace PbsMarket.Cli;

/// <summary><c>pbs proposer</c>: hosts the proposer client (src/PbsMarket.Proposer).</summary>
public static class ProposerCommand
{
    public static Command Build()
    {
        var cmd = new Command("proposer", """
            Run the proposer client: at each slot led by one of its keys it asks every relay for the winning header,
            checks it, signs it (slashing-protected by its signing journal) and announces it; it builds its own empty block
            when no relay delivers. Settings: section "Proposer" (env PBS_Proposer__Key; see docs/proposer.md); flags win.
            """);
        var deployment = new Option<string?>("--deployment") { Description = "deployment.json (Proposer:DeploymentFile)." };
        var l1 = new Option<string?>("--l1-rpc") { Description = "L1 JSON-RPC URL (Proposer:L1Rpc)." };
        var relays = new Option<string[]>("--relay") { Description = "A relay as URL,SIGNING_ADDRESS (repeat for several).", AllowMultipleArgumentsPerToken = true };
        var keystores = new Option<string[]>("--keystore") { Description = "Encrypted keystore of a proposer key (repeat; each needs a --password-file, in order).", AllowMultipleArgumentsPerToken = true };
        var passwords = new Option<string[]>("--password-file") { Description = "Password file of the keystore at the same position.", AllowMultipleArgumentsPerToken = true };
        var keyEnv = new Option<string[]>("--key-env") { Description = "DEVELOPMENT ONLY: name of an environment variable holding a hex proposer key (repeat).", AllowMultipleArgumentsPerToken = true };
        var dataDir = new Option<string?>("--data-dir") { Description = "Signing journals live here (Proposer:DataDir)." };
        var closeOffset = new Option<long?>("--close-offset-ms") { Description = "The relays' auction close offset (Proposer:CloseOffsetMs, default 250)." };
        var metrics = new Option<int?>("--metrics-port") { Description = "Serve Prometheus metrics on this loopback port." };
        var config = Cli.ConfigOption();
        var logFormat = PbsLogging.FormatOption();
        foreach (var o in new Option[] { deployment, l1, relays, keystores, passwords, keyEnv, dataDir, closeOffset, metrics, config, logFormat }) cmd.Options.Add(o);
        cmd.SetAction(async (pr, ct) =>
        {
            var s = new Dictionary<string, string?>();
            var c = CultureInfo.InvariantCulture;
            if (pr.GetValue(deployment) is { } d) { Cli.RequireFile(d, "--deployment"); s["Proposer:DeploymentFile"] = d; }
            if (pr.GetValue(l1) is { } rpc) s["Proposer:L1Rpc"] = rpc;
            if (pr.GetValue(dataDir) is { } dir) s["Proposer:DataDir"] = dir;
            if (pr.GetValue(closeOffset) is { } co) s["Proposer:CloseOffsetMs"] = co.ToString(c);
            if (pr.GetValue(metrics) is { } mp) s["Proposer:MetricsPort"] = mp.ToString(c);
            var i = 0;
            foreach (var r in pr.GetValue(relays) ?? [])
            {
                var parts = r.Split(',', 2, StringSplitOptions.TrimEntries);
                if (parts.Length != 2) throw new UsageException($"--relay: \"{r}\" is not URL,SIGNING_ADDRESS");
                s[$"Proposer:Relays:{i}:Url"] = parts[0];
                s[$"Proposer:Relays:{i}:Address"] = parts[1];
                i++;
            }
            var ks = pr.GetValue(keystores) ?? [];
            var pw = pr.GetValue(passwords) ?? [];
            if (ks.Length != pw.Length) throw new UsageException("give one --password-file per --keystore");
            var k = 0;
            for (; k < ks.Length; k++)
            {
                Cli.RequireFile(ks[k], "--keystore");
                Cli.RequireFile(pw[k], "--password-file");
                s[$"Proposer:Keys:{k}:KeystorePath"] = ks[k];
                s[$"Proposer:Keys:{k}:PasswordFile"] = pw[k];
            }
            foreach (var env in pr.GetValue(keyEnv) ?? []) s[$"Proposer:Keys:{k++}:PrivateKeyEnv"] = env;
            var configFile = pr.GetValue(config);
            Cli.RequireFile(configFile, "--config");
            IHost host;
            try
            {
                host = ProposerHost.Build([], b =>
                {
                    if (configFile is not null)
                    {
                        b.Configuration.AddJsonFile(Path.GetFullPath(configFile), optional: false);
                        b.Configuration.AddEnvironmentVariables("PBS_");
                    }
                    b.Configuration.AddInMemoryCollection(s);
                    PbsLogging.Apply(b, pr.GetValue(logFormat));
                    Cli.CommandOwnsSignals(b.Services);
                });
            }
            catch (InvalidOperationException e) when (e.Message.StartsWith("invalid proposer configuration", StringComparison.Ordinal) || e.Message.StartsWith("Proposer:", StringComparison.Ordinal))
            {
                throw new UsageException(e.Message);
            }
            // One client per data folder (its signing journals): a second one refuses to start, naming the holder.
            DataDirLock folder;
            try
            {
                folder = DataDirLock.Acquire(host.Services.GetRequiredService<ProposerOptions>().DataDir);
            }
            catch (DataDirInUseException e)
            {
                host.Dispose();
                throw new UsageException(e.Message);
            }
            using var held = folder;
            // Keys, journals and L1 first, before the host runs: a bad keystore stops the command here with its message
            // (the hosted service's own StartAsync is then a no-op).
            await host.Services.GetRequiredService<ProposerClient>().StartAsync(ct);
            await host.StartAsync(ct);
            Console.Error.WriteLine("pbs proposer: running (Ctrl-C stops)");
            return await Cli.RunUntilStoppedAsync(host, "proposer", ct);
        });
        return cmd;
    }
}
