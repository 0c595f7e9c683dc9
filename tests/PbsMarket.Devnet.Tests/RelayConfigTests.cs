using PbsMarket.Core;
using PbsMarket.Testing.Market;

namespace PbsMarket.Devnet.Tests;

/// <summary>`pbs relay` checks its settings at start: a bad one stops it with exit code 2 and a message that names it.</summary>
public sealed class RelayConfigTests : IDisposable
{
    static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    const string RelayKeyHex = "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6"; // anvil's dev key 9
    readonly string _dir = Directory.CreateTempSubdirectory("pbs-relay-config-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A complete relay configuration (no server needs to answer: the settings are checked before any is used).</summary>
    static Dictionary<string, string?> Good() => new()
    {
        ["Relay:Redis"] = "127.0.0.1:1",
        ["Relay:Postgres"] = "Host=127.0.0.1;Port=1;Username=postgres;Database=pbs",
        ["Relay:L1Rpc"] = "http://127.0.0.1:1",
        ["Relay:Inbox"] = "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        ["Relay:Registry"] = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
        ["Relay:Escrow"] = "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
        ["Relay:SigningKey"] = RelayKeyHex,
        ["Relay:GenesisMs"] = "1700000000000",
    };

    async Task<(int Code, string Stderr)> RunAsync(Dictionary<string, string?> settings)
    {
        var config = TestMarket.WriteSettingsFile(Path.Combine(_dir, $"{Guid.NewGuid():N}.json"), settings);
        var (code, stdout, stderr) = await PbsProcess.RunAsync(Timeout, "relay", "--config", config, "--urls", "http://127.0.0.1:0");
        Assert.True(code == 2, $"pbs relay exited {code}\nstdout: {stdout}\nstderr: {stderr}");
        Assert.DoesNotContain("   at ", stderr); // no stack trace
        return (code, stderr);
    }

    [Theory]
    [InlineData("Relay:SlotMs", "50", "between 100 and 600000")]
    [InlineData("Relay:CloseOffsetMs", "5000", "shorter than Relay:SlotMs")]
    [InlineData("Relay:ReservePrice", "lots", "whole number of wei")]
    [InlineData("Relay:L1PosterLeaseMs", "0", "L1PosterLeaseMs")]
    [InlineData("Relay:L1PosterRoundTimeoutMs", "30000", "longer than Relay:L1PosterReceiptTimeoutMs")]
    [InlineData("Relay:ArchiveRetryMinMs", "9000", "must not exceed Relay:ArchiveRetryMaxMs")]
    [InlineData("Relay:SlotMs", "abc", "'abc'")]
    [InlineData("Relay:Inbox", "0x1234", "20-byte contract address")]
    [InlineData("Logging:Format", "xml", "use text or json")]
    public async Task A_bad_setting_stops_pbs_relay_with_exit_code_2_and_a_message_naming_it(string key, string value, string rule)
    {
        var settings = Good();
        settings[key] = value;
        var (_, stderr) = await RunAsync(settings);
        Assert.Contains(key, stderr);
        Assert.Contains(rule, stderr);
    }

    [Fact]
    public async Task Each_bad_setting_gets_its_own_message_and_a_secret_is_never_shown()
    {
        var settings = Good();
        settings["Relay:SlotMs"] = "50";
        settings["Relay:MaxConnections"] = "0";
        settings["Relay:SigningKey"] = "0xnothex-but-secret";
        var (_, stderr) = await RunAsync(settings);
        Assert.Contains("Relay:SlotMs = 50", stderr);
        Assert.Contains("Relay:MaxConnections = 0", stderr);
        Assert.Contains("Relay:SigningKey = (secret, not shown): must be a 32-byte hex key", stderr);
        Assert.DoesNotContain("nothex-but-secret", stderr);
    }

    [Fact]
    public async Task A_keystore_with_the_wrong_password_stops_pbs_relay_with_exit_code_2()
    {
        var keystore = Path.Combine(_dir, "relay.json");
        Keystore.Write(keystore, "right", Convert.FromHexString(RelayKeyHex[2..]), ProtocolKey.FromHex(RelayKeyHex).Address);
        var password = Path.Combine(_dir, "pw");
        File.WriteAllText(password, "wrong\n");
        var settings = Good();
        settings["Relay:SigningKey"] = null;
        settings["Relay:KeystorePath"] = keystore;
        settings["Relay:KeystorePasswordFile"] = password;
        var (_, stderr) = await RunAsync(settings);
        Assert.Contains($"wrong password for keystore {keystore}", stderr);
    }
}

[System.Runtime.Versioning.UnsupportedOSPlatform("windows")] // file modes
/// <summary>`pbs proposer` checks its settings and keystores before it runs: exit code 2 and a message naming the problem.</summary>
public sealed class ProposerConfigTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("pbs-proposer-config-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    Dictionary<string, string?> Settings(string keystore, string passwordFile) => new()
    {
        ["Proposer:L1ChainId"] = "31337",
        ["Proposer:L2ChainId"] = "901",
        ["Proposer:Inbox"] = "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        ["Proposer:Registry"] = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
        ["Proposer:GenesisMs"] = "1700000000000",
        ["Proposer:SlotMs"] = "2000",
        ["Proposer:L1Rpc"] = "http://127.0.0.1:1",
        ["Proposer:DataDir"] = Path.Combine(_dir, "data"),
        ["Proposer:Keys:0:KeystorePath"] = keystore,
        ["Proposer:Keys:0:PasswordFile"] = passwordFile,
    };

    async Task<string> RunExpectingUsageErrorAsync(Dictionary<string, string?> settings)
    {
        var config = TestMarket.WriteSettingsFile(Path.Combine(_dir, $"{Guid.NewGuid():N}.json"), settings);
        var (code, stdout, stderr) = await PbsProcess.RunAsync(TimeSpan.FromSeconds(60), "proposer", "--config", config);
        Assert.True(code == 2, $"pbs proposer exited {code}\nstdout: {stdout}\nstderr: {stderr}");
        Assert.DoesNotContain("   at ", stdout + stderr); // no stack trace, in the log either
        return stderr;
    }

    string Keystore(string password)
    {
        var path = Path.Combine(_dir, "proposer.json");
        if (!File.Exists(path))
        {
            var key = ProtocolKey.FromHex("0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d");
            Core.Keystore.Write(path, password, Convert.FromHexString("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"), key.Address);
        }
        return path;
    }

    string Password(string text)
    {
        var path = Path.Combine(_dir, $"pw-{Guid.NewGuid():N}");
        File.WriteAllText(path, text + "\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return path;
    }

    [Fact]
    public async Task A_keystore_with_the_wrong_password_stops_pbs_proposer_with_exit_code_2()
    {
        var keystore = Keystore("right");
        var stderr = await RunExpectingUsageErrorAsync(Settings(keystore, Password("wrong")));
        Assert.Contains($"Proposer:Keys:0: wrong password for keystore {keystore}", stderr);
    }

    [Fact]
    public async Task A_bad_timing_stops_pbs_proposer_with_exit_code_2_naming_it()
    {
        var settings = Settings(Keystore("right"), Password("right"));
        settings["Proposer:TooEarlyRetryMs"] = "0";
        var stderr = await RunExpectingUsageErrorAsync(settings);
        Assert.Contains("Proposer:TooEarlyRetryMs = 0", stderr);
    }
}
