using System.CommandLine;
using System.CommandLine.Help;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace PbsMarket.Cli;

/// <summary>Exit codes of every <c>pbs</c> command (docs/operations.md).</summary>
public static class ExitCodes
{
    /// <summary>Done, or stopped cleanly with Ctrl-C.</summary>
    public const int Ok = 0;
    /// <summary>A runtime failure: a server did not start, L1 refused the deployment, a relay crashed.</summary>
    public const int Failure = 1;
    /// <summary>Usage or configuration error: unknown flag, bad value, missing file or key, missing tools.</summary>
    public const int Usage = 2;
    /// <summary><c>pbs devnet --slots N</c>: the market misbehaved (a slot neither posted nor missed with a reason,
    /// L1 and the data API disagree, balances don't match the prices).</summary>
    public const int MarketCheckFailed = 3;
}

/// <summary>A configuration or usage problem found after parsing (exit code 2).</summary>
public sealed class UsageException(string message) : Exception(message);

public static class Cli
{
    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("""
            pbs: the PbsMarket command line (proposer-builder separation for L2 blocks).
            Configuration comes from flags, then environment variables (PBS_Section__Key), then appsettings.json
            in the working folder (or --config FILE); flags win. Exit codes: 0 ok, 1 runtime failure,
            2 usage or configuration error, 3 devnet market check failed.
            """);
        root.Subcommands.Add(RelayCommand.Build());
        root.Subcommands.Add(DeployCommand.Build());
        root.Subcommands.Add(BuilderCommand.Build());
        root.Subcommands.Add(ProposerCommand.Build());
        root.Subcommands.Add(DevnetCommand.Build());
        root.Subcommands.Add(KeysCommand.Build());
        root.Subcommands.Add(L2NodeCommand.Build());
        root.Subcommands.Add(L2UsersCommand.Build());
        return root;
    }

    public static async Task<int> RunAsync(string[] args, TextWriter? stdout = null, TextWriter? stderr = null, CancellationToken ct = default)
    {
        var root = BuildRoot();
        var parsed = root.Parse(args);
        var err = stderr ?? Console.Error;
        if (parsed.Errors.Count > 0 && parsed.Action is not HelpAction)
        {
            foreach (var e in parsed.Errors) err.WriteLine($"pbs: {e.Message}");
            var cmd = parsed.CommandResult.Command;
            err.WriteLine($"Run `{(cmd == root ? "pbs" : "pbs " + cmd.Name)} --help` for the options.");
            return ExitCodes.Usage;
        }
        if (parsed.CommandResult.Command == root && parsed.Action is not HelpAction)
        {
            // `pbs` alone: show the help, and say that a subcommand is needed.
            await parsed.InvokeAsync(new InvocationConfiguration { Output = stdout ?? Console.Out, Error = err }, ct);
            return ExitCodes.Usage;
        }
        var config = new InvocationConfiguration
        {
            Output = stdout ?? Console.Out,
            Error = err,
            EnableDefaultExceptionHandler = false,
            ProcessTerminationTimeout = TimeSpan.FromSeconds(60),
        };
        try
        {
            return await parsed.InvokeAsync(config, ct);
        }
        catch (Exception e) when (e is UsageException or OptionsValidationException or Core.KeystoreException or PbsMarket.LocalServers.MissingToolException or FileNotFoundException
                                      or DirectoryNotFoundException or FormatException or InvalidDataException or System.Text.Json.JsonException)
        {
            err.WriteLine($"pbs: {Describe(e)}");
            return ExitCodes.Usage;
        }
        catch (InvalidOperationException e) when (e.Message.StartsWith("Failed to convert configuration value", StringComparison.Ordinal))
        {
            // The configuration binder's message names the setting and the value: a usage error, not a crash.
            err.WriteLine($"pbs: invalid configuration: {e.Message}");
            return ExitCodes.Usage;
        }
        catch (OperationCanceledException)
        {
            return ExitCodes.Ok;
        }
        catch (Exception e)
        {
            err.WriteLine($"pbs: failed: {e.Message}");
            if (Environment.GetEnvironmentVariable("PBS_DEBUG") == "1") err.WriteLine(e);
            return ExitCodes.Failure;
        }
    }

    static string Describe(Exception e) => e switch
    {
        OptionsValidationException o => "invalid configuration:" + string.Concat(o.Failures.Select(f => "\n  " + f)), // one line per bad setting
        FileNotFoundException f => $"file not found: {f.FileName ?? f.Message}",
        _ => e.Message,
    };

    // ---- shared options and configuration ----

    public static Option<string?> ConfigOption() => new("--config") { Description = "A JSON settings file (default: appsettings.json in the working folder, if present)." };

    /// <summary>appsettings.json (or --config), then environment variables PBS_*; flags are applied on top by the caller.</summary>
    public static IConfiguration LoadConfiguration(string? configFile)
    {
        var b = new ConfigurationBuilder();
        if (configFile is not null)
        {
            if (!File.Exists(configFile)) throw new UsageException($"--config: {configFile} does not exist");
            b.AddJsonFile(Path.GetFullPath(configFile), optional: false);
        }
        else
        {
            b.AddJsonFile(Path.Combine(Environment.CurrentDirectory, "appsettings.json"), optional: true);
        }
        b.AddEnvironmentVariables("PBS_");
        return b.Build();
    }

    /// <summary>The flag when given, else the configuration key, else the option's default.</summary>
    public static T Setting<T>(ParseResult pr, Option<T> option, IConfiguration config, string key)
    {
        var result = pr.GetResult(option);
        if (result is { Implicit: false }) return pr.GetValue(option)!;
        var text = config[key];
        if (text is not null)
        {
            try
            {
                var type = Nullable.GetUnderlyingType(typeof(T)) ?? typeof(T);
                return (T)(type == typeof(string) ? text : Convert.ChangeType(text, type, System.Globalization.CultureInfo.InvariantCulture));
            }
            catch (Exception e) when (e is FormatException or InvalidCastException or OverflowException)
            {
                throw new UsageException($"{key} (from the environment or settings file) = \"{text}\" is not a valid {typeof(T).Name}");
            }
        }
        return pr.GetValue(option)!;
    }

    public static string[] Settings(ParseResult pr, Option<string[]> option, IConfiguration config, string key)
    {
        if (pr.GetResult(option) is { Implicit: false }) return pr.GetValue(option) ?? [];
        var section = config.GetSection(key);
        var list = section.GetChildren().Select(c => c.Value).Where(v => !string.IsNullOrEmpty(v)).Select(v => v!).ToArray();
        if (list.Length > 0) return list;
        if (section.Value is { Length: > 0 } csv) return csv.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return pr.GetValue(option) ?? [];
    }

    /// <summary>Reads a secret key: a keystore file with its password file, else an environment variable holding hex.</summary>
    public static string LoadKeyHex(string? keystore, string? passwordFile, string? envName, string what)
    {
        if (!string.IsNullOrEmpty(keystore))
        {
            if (string.IsNullOrEmpty(passwordFile)) throw new UsageException($"{what}: --keystore needs --password-file");
            var secret = Core.Keystore.Load(keystore, passwordFile, what, warning => Console.Error.WriteLine($"pbs: warning: {warning}"));
            return "0x" + Convert.ToHexStringLower(secret);
        }
        if (envName is not null && Environment.GetEnvironmentVariable(envName) is { Length: > 0 } hex)
        {
            var t = hex.Trim();
            if (!t.StartsWith("0x", StringComparison.Ordinal)) t = "0x" + t;
            if (!Core.Hex.TryDecodeFixed(t, 32, out _, out _)) throw new UsageException($"{what}: {envName} is not a 32-byte hex key");
            return t;
        }
        throw new UsageException($"{what}: no key: give --keystore and --password-file{(envName is null ? "" : $", or set {envName} (hex)")}");
    }

    /// <summary>
    /// Runs a started host until Ctrl-C/SIGTERM (exit 0) or until it stops by itself, e.g. a background service failed
    /// (exit 1), then stops it with a deadline.
    /// </summary>
    /// <summary>
    /// Leaves SIGINT/SIGTERM to the command (System.CommandLine cancels its token): the host's own console lifetime would
    /// handle the same signal too, and a stop it began before the token was cancelled looked like the host stopping by
    /// itself (exit 1 on a plain SIGTERM).
    /// </summary>
    public static void CommandOwnsSignals(IServiceCollection services) =>
        services.AddSingleton<Microsoft.Extensions.Hosting.IHostLifetime, CommandLifetime>();

    sealed class CommandLifetime : Microsoft.Extensions.Hosting.IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    public static async Task<int> RunUntilStoppedAsync(Microsoft.Extensions.Hosting.IHost host, string name, CancellationToken ct)
    {
        var lifetime = host.Services.GetRequiredService<Microsoft.Extensions.Hosting.IHostApplicationLifetime>();
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(ct, lifetime.ApplicationStopping);
        try
        {
            await Task.Delay(Timeout.Infinite, stopping.Token);
        }
        catch (OperationCanceledException)
        {
        }
        var byItself = !ct.IsCancellationRequested;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        await host.StopAsync(stop.Token);
        if (host is IAsyncDisposable d) await d.DisposeAsync(); else host.Dispose();
        if (byItself) Console.Error.WriteLine($"pbs {name}: stopped by itself (see the log above)");
        return byItself ? ExitCodes.Failure : ExitCodes.Ok;
    }

    public static void RequireFile(string? path, string flag)
    {
        if (path is not null && !File.Exists(path)) throw new UsageException($"{flag}: {path} does not exist");
    }
}
