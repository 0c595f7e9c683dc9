using System.Text.Json;
using Nethereum.KeyStore;

namespace PbsMarket.Core;

/// <summary>A keystore that cannot be used, with one clear message (which key, which file, what is wrong; never the password).</summary>
public sealed class KeystoreException(string message) : Exception(message);

/// <summary>
/// The one loader of encrypted keystores (Web3 Secret Storage: scrypt or pbkdf2) for the relay, the proposer client and the
/// CLI. <c>what</c> names the key in every message ("relay", "Proposer:Keys:0", "deployer").
/// </summary>
public static class Keystore
{
    /// <summary>geth's "light" scrypt cost (N = 4096) with p = 1: for throwaway devnet keys, whose keystores are written and
    /// read at every start. The default (N = 262144, p = 8) takes seconds per key.</summary>
    public static Nethereum.KeyStore.Model.ScryptParams LightScrypt => new() { Dklen = 32, N = 4096, R = 8, P = 1 };

    /// <summary>
    /// Writes <paramref name="secret"/> as a new keystore (scrypt with Nethereum's default parameters, or
    /// <see cref="LightScrypt"/>) readable only by its owner (mode 600); never overwrites a file.
    /// </summary>
    public static void Write(string path, string password, byte[] secret, Address address, bool light = false) =>
        WriteOwnerOnly(path, light
            ? new KeyStoreScryptService().EncryptAndGenerateKeyStoreAsJson(password, secret, address.ToString(), LightScrypt)
            : new KeyStoreService().EncryptAndGenerateDefaultKeyStoreAsJson(password, secret, address.ToString()));

    /// <summary>Creates <paramref name="path"/> with mode 600 (from the moment it exists) and writes <paramref name="text"/>;
    /// refuses an existing file.</summary>
    public static void WriteOwnerOnly(string path, string text)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using var w = new StreamWriter(path, new System.Text.UTF8Encoding(false), options);
        w.Write(text);
    }

    /// <summary>Reads the password file (its trailing newline is not part of the password) and decrypts the keystore.</summary>
    public static byte[] Load(string keystorePath, string passwordFile, string what, Action<string>? warn = null) =>
        Decrypt(keystorePath, ReadPassword(passwordFile, what, warn), what, warn);

    public static string ReadPassword(string passwordFile, string what, Action<string>? warn = null)
    {
        if (!File.Exists(passwordFile)) throw new KeystoreException($"{what}: password file {passwordFile} does not exist");
        WarnIfShared(passwordFile, "password file", what, warn);
        return ReadText(passwordFile, "password file", what).TrimEnd('\r', '\n');
    }

    /// <summary>Decrypts the keystore at <paramref name="keystorePath"/>: the 32-byte secret key.</summary>
    public static byte[] Decrypt(string keystorePath, string password, string what, Action<string>? warn = null)
    {
        if (!File.Exists(keystorePath)) throw new KeystoreException($"{what}: keystore {keystorePath} does not exist");
        WarnIfShared(keystorePath, "keystore", what, warn);
        var json = ReadText(keystorePath, "keystore", what);
        try
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind != JsonValueKind.Object
                || !(doc.RootElement.TryGetProperty("crypto", out _) || doc.RootElement.TryGetProperty("Crypto", out _)))
                throw new KeystoreException($"{what}: {keystorePath} is JSON but not a keystore file (no \"crypto\" section)");
        }
        catch (JsonException)
        {
            throw new KeystoreException($"{what}: {keystorePath} is not a keystore file (not valid JSON)");
        }
        byte[] secret;
        try
        {
            secret = new KeyStoreService().DecryptKeyStoreFromJson(password, json);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Nethereum reports a wrong password as a MAC mismatch; anything else here is a malformed crypto section.
            throw new KeystoreException(e.Message.Contains("mac", StringComparison.OrdinalIgnoreCase)
                ? $"{what}: wrong password for keystore {keystorePath}"
                : $"{what}: cannot decrypt keystore {keystorePath} (malformed crypto section: {e.GetType().Name})");
        }
        if (secret.Length != 32) throw new KeystoreException($"{what}: keystore {keystorePath} holds a {secret.Length}-byte key, not 32 bytes");
        return secret;
    }

    static string ReadText(string path, string kind, string what)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KeystoreException($"{what}: cannot read {kind} {path}: {e.Message}");
        }
    }

    /// <summary>A secret file that other users may read is used, with a warning: refusing it would stop a running deployment.</summary>
    static void WarnIfShared(string path, string kind, string what, Action<string>? warn)
    {
        if (warn is null || OperatingSystem.IsWindows()) return;
        var mode = File.GetUnixFileMode(path);
        const UnixFileMode others = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite;
        if ((mode & others) != 0)
            warn($"{what}: {kind} {path} is readable or writable by other users (mode {Convert.ToString((int)mode, 8)}); chmod 600 it");
    }
}
