using System.Security.Cryptography;
using PbsMarket.Core;

namespace PbsMarket.Cli;

/// <summary>The devnet's throwaway keys: a keystore (Core <see cref="Keystore"/>, light scrypt) and a random password file beside it, both mode 600.</summary>
public static class SecretFiles
{
    /// <summary>Writes <paramref name="keystorePath"/> and, beside it, a fresh random password file (both mode 600).</summary>
    public static void WriteKeystoreWithPassword(string keystorePath, string passwordPath, string keyHex, bool light)
    {
        var password = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        if (!Hex.TryDecodeFixed(keyHex.StartsWith("0x", StringComparison.Ordinal) ? keyHex : "0x" + keyHex, 32, out var secret, out var error))
            throw new ArgumentException($"not a 32-byte hex key: {error}", nameof(keyHex));
        try
        {
            Keystore.WriteOwnerOnly(passwordPath, password + "\n");
            Keystore.Write(keystorePath, password, secret, new ProtocolKey(secret).Address, light);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }
    }
}
