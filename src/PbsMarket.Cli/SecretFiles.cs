using System.Security.Cryptography;
using Nethereum.KeyStore;
using Nethereum.KeyStore.Model;
using PbsMarket.Core;

namespace PbsMarket.Cli;

/// <summary>
/// Keystores (Web3 Secret Storage) and password files, written readable by their owner only (mode 600, set when the file
/// is created, so there is no moment at which it is readable by others). Never overwrites a file.
/// </summary>
public static class SecretFiles
{
    public const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>geth's "light" scrypt cost (N = 4096) with p = 1: for throwaway devnet keys, whose keystores are written and
    /// read at every start. The default (N = 262144, p = 8, as `pbs keys new` writes) takes seconds per key.</summary>
    public static ScryptParams LightScrypt => new() { Dklen = 32, N = 4096, R = 8, P = 1 };

    /// <summary>Creates <paramref name="path"/> with mode 600 and writes <paramref name="text"/>; refuses an existing file.</summary>
    public static void Write(string path, string text)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = OwnerOnly;
        using var f = new FileStream(path, options);
        using var w = new StreamWriter(f);
        w.Write(text);
    }

    /// <summary>The keystore JSON of <paramref name="secret"/> under <paramref name="password"/> (default scrypt cost, or
    /// <see cref="LightScrypt"/>).</summary>
    public static string Keystore(byte[] secret, string password, bool light = false)
    {
        var address = new ProtocolKey(secret).Address.ToString();
        return light
            ? new KeyStoreScryptService().EncryptAndGenerateKeyStoreAsJson(password, secret, address, LightScrypt)
            : new KeyStoreService().EncryptAndGenerateDefaultKeyStoreAsJson(password, secret, address);
    }

    /// <summary>Writes <paramref name="keystorePath"/> and, beside it, a fresh random password file (both mode 600).</summary>
    public static void WriteKeystoreWithPassword(string keystorePath, string passwordPath, string keyHex, bool light)
    {
        var password = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        if (!Hex.TryDecodeFixed(keyHex.StartsWith("0x", StringComparison.Ordinal) ? keyHex : "0x" + keyHex, 32, out var secret, out var error))
            throw new ArgumentException($"not a 32-byte hex key: {error}", nameof(keyHex));
        try
        {
            Write(passwordPath, password + "\n");
            Write(keystorePath, Keystore(secret, password, light));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }
    }
}
