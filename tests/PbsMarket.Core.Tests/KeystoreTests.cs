using Nethereum.KeyStore;
using Nethereum.KeyStore.Model;
using PbsMarket.Core;

namespace PbsMarket.Core.Tests;

/// <summary>The one keystore loader: a key decrypts; each way a keystore can be unusable has one clear message.</summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")] // file modes
public sealed class KeystoreTests : IDisposable
{
    static readonly byte[] Secret = Convert.FromHexString("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318");
    readonly string _dir = Directory.CreateTempSubdirectory("pbs-keystore-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string File(string name, string text, UnixFileMode mode = UnixFileMode.UserRead | UnixFileMode.UserWrite)
    {
        var path = Path.Combine(_dir, name);
        System.IO.File.WriteAllText(path, text);
        System.IO.File.SetUnixFileMode(path, mode);
        return path;
    }

    /// <summary>A keystore with cheap scrypt parameters, so that the tests stay fast.</summary>
    string KeystoreFile(string password, UnixFileMode mode = UnixFileMode.UserRead | UnixFileMode.UserWrite) =>
        File("key.json", new KeyStoreScryptService().EncryptAndGenerateKeyStoreAsJson(password, Secret, new ProtocolKey(Secret).Address.ToString(),
            new ScryptParams { N = 1024, R = 8, P = 1, Dklen = 32 }), mode);

    [Fact]
    public void A_keystore_decrypts_with_its_password_file_and_its_trailing_newline_is_not_part_of_the_password()
    {
        var warnings = new List<string>();
        var secret = Keystore.Load(KeystoreFile("hunter2"), File("pw", "hunter2\n"), "relay", warnings.Add);
        Assert.Equal(Secret, secret);
        Assert.Empty(warnings);
    }

    [Fact]
    public void A_wrong_password_says_so_and_names_the_file_not_the_password()
    {
        var key = KeystoreFile("hunter2");
        var e = Assert.Throws<KeystoreException>(() => Keystore.Load(key, File("pw", "hunter3"), "Proposer:Keys:0"));
        Assert.Equal($"Proposer:Keys:0: wrong password for keystore {key}", e.Message);
        Assert.DoesNotContain("hunter", e.Message);
    }

    [Fact]
    public void A_missing_keystore_or_password_file_is_named()
    {
        var missing = Path.Combine(_dir, "nope.json");
        Assert.Equal($"relay: keystore {missing} does not exist",
            Assert.Throws<KeystoreException>(() => Keystore.Load(missing, File("pw", "x"), "relay")).Message);
        var noPw = Path.Combine(_dir, "nope.txt");
        Assert.Equal($"relay: password file {noPw} does not exist",
            Assert.Throws<KeystoreException>(() => Keystore.Load(KeystoreFile("x"), noPw, "relay")).Message);
    }

    [Theory]
    [InlineData("{not json", "is not a keystore file (not valid JSON)")]
    [InlineData("[1,2]", "is JSON but not a keystore file")]
    [InlineData("{\"address\":\"00\"}", "is JSON but not a keystore file")]
    [InlineData("{\"crypto\":{\"cipher\":\"aes-128-ctr\"},\"version\":3}", "cannot decrypt keystore")]
    public void Unreadable_json_is_not_a_keystore(string text, string expected)
    {
        var path = File("bad.json", text);
        var e = Assert.Throws<KeystoreException>(() => Keystore.Load(path, File("pw", "x"), "deployer"));
        Assert.StartsWith("deployer: ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void A_keystore_or_password_file_that_others_can_read_loads_with_a_warning_each()
    {
        var shared = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
        var warnings = new List<string>();
        var key = KeystoreFile("pw", shared);
        var pw = File("pw", "pw", shared);
        Assert.Equal(Secret, Keystore.Load(key, pw, "relay", warnings.Add));
        Assert.Equal(2, warnings.Count);
        Assert.Contains(warnings, w => w.Contains(key, StringComparison.Ordinal) && w.Contains("mode 644", StringComparison.Ordinal) && w.Contains("chmod 600", StringComparison.Ordinal));
        Assert.Contains(warnings, w => w.Contains(pw, StringComparison.Ordinal));
    }

    [Fact]
    public void Write_makes_a_keystore_only_its_owner_can_read_and_never_overwrites()
    {
        var path = Path.Combine(_dir, "new.json");
        var address = new ProtocolKey(Secret).Address;
        Keystore.Write(path, "pw", Secret, address);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, System.IO.File.GetUnixFileMode(path));
        var warnings = new List<string>();
        Assert.Equal(Secret, Keystore.Decrypt(path, "pw", "keys", warnings.Add));
        Assert.Empty(warnings);
        Assert.Throws<IOException>(() => Keystore.Write(path, "pw", Secret, address));
    }
}
