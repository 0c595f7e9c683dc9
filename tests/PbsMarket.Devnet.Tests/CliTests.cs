namespace PbsMarket.Devnet.Tests;

/// <summary>`pbs --help` and every subcommand's help exit 0; usage errors exit 2 with a clear message.</summary>
public sealed class CliTests
{
    static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Help_exits_0_for_pbs_and_every_subcommand()
    {
        foreach (var args in new[] { new[] { "--help" }, ["relay", "--help"], ["deploy", "--help"], ["builder", "--help"], ["proposer", "--help"],
                     ["devnet", "--help"], ["keys", "--help"], ["keys", "new", "--help"] })
        {
            var (code, stdout, stderr) = await PbsProcess.RunAsync(Timeout, args);
            Assert.True(code == 0, $"pbs {string.Join(' ', args)} exited {code}: {stderr}");
            Assert.Contains("Usage:", stdout);
        }
    }

    [Theory]
    [InlineData("devnet --bogus", "--bogus")]
    [InlineData("devnet --slots notanumber", "notanumber")]
    [InlineData("builder --strategy yolo --relay http://127.0.0.1:1", "yolo")]
    [InlineData("nosuchcommand", "nosuchcommand")]
    [InlineData("", "command")]
    [InlineData("relay --deployment /nonexistent/deployment.json", "/nonexistent/deployment.json")]
    [InlineData("builder", "--relay")]
    [InlineData("devnet --proposers 0", "--proposers")]
    [InlineData("deploy --proposer nonsense --dev-account 0", "nonsense")]
    public async Task Usage_errors_exit_2_with_a_clear_message(string commandLine, string mentioned)
    {
        var (code, stdout, stderr) = await PbsProcess.RunAsync(Timeout, commandLine.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.True(code == 2, $"pbs {commandLine} exited {code}\nstdout: {stdout}\nstderr: {stderr}");
        Assert.Contains(mentioned, stderr);
        Assert.DoesNotContain("   at ", stderr); // no stack trace
    }

    [Fact]
    public async Task Keys_new_writes_a_keystore_that_decrypts_to_the_printed_address()
    {
        var dir = Directory.CreateTempSubdirectory("pbs-keys-");
        try
        {
            var pw = Path.Combine(dir.FullName, "pw");
            await File.WriteAllTextAsync(pw, "correct horse\n");
            var key = Path.Combine(dir.FullName, "key.json");
            var (code, stdout, stderr) = await PbsProcess.RunAsync(Timeout, "keys", "new", "--out", key, "--password-file", pw);
            Assert.True(code == 0, stderr);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(key)); // readable by its owner only
            var secret = new Nethereum.KeyStore.KeyStoreService().DecryptKeyStoreFromJson("correct horse", await File.ReadAllTextAsync(key));
            Assert.Equal(new Nethereum.Signer.EthECKey(secret, true).GetPublicAddress().ToLowerInvariant(), stdout.Trim().ToLowerInvariant());
            // never overwrites a key
            Assert.Equal(2, (await PbsProcess.RunAsync(Timeout, "keys", "new", "--out", key, "--password-file", pw)).Code);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
