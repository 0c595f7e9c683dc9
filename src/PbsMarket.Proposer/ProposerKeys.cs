using PbsMarket.Core;

namespace PbsMarket.Proposer;

/// <summary>A loaded proposer key. The secret is kept only to hand the L1 poster its sender key; it is never printed.</summary>
internal sealed class LoadedKey(ProtocolKey key, byte[] secret, string origin)
{
    public ProtocolKey Key { get; } = key;
    public Address Address => Key.Address;
    /// <summary>Where it came from ("keystore /path", "env NAME (development only)"), for logs.</summary>
    public string Origin { get; } = origin;
    internal string SecretHex() => Hex.Encode(secret);
    public override string ToString() => $"{Address} ({Origin})";
}

internal static class ProposerKeys
{
    public static IReadOnlyList<LoadedKey> Load(IReadOnlyList<ProposerKeyOptions> keys, Action<string>? warn = null)
    {
        var loaded = new List<LoadedKey>();
        for (var i = 0; i < keys.Count; i++)
        {
            var k = keys[i];
            var key = LoadOne(k, $"Proposer:Keys:{i}", warn);
            if (loaded.Any(x => x.Address == key.Address)) throw new InvalidOperationException($"Proposer:Keys:{i}: key {key.Address} is configured twice");
            loaded.Add(key);
        }
        return loaded;
    }

    static LoadedKey LoadOne(ProposerKeyOptions k, string where, Action<string>? warn)
    {
        if (!string.IsNullOrEmpty(k.KeystorePath))
        {
            string password;
            if (!string.IsNullOrEmpty(k.PasswordFile)) password = Keystore.ReadPassword(k.PasswordFile, where, warn);
            else if (!string.IsNullOrEmpty(k.PasswordEnv))
                password = Environment.GetEnvironmentVariable(k.PasswordEnv) ?? throw new InvalidOperationException($"{where}: environment variable {k.PasswordEnv} (the keystore password) is not set");
            else throw new InvalidOperationException($"{where}: KeystorePath needs PasswordFile or PasswordEnv");
            var secret = Keystore.Decrypt(k.KeystorePath, password, where, warn);
            return new LoadedKey(new ProtocolKey(secret), secret, $"keystore {k.KeystorePath}");
        }
        if (!string.IsNullOrEmpty(k.PrivateKeyEnv))
        {
            var hex = Environment.GetEnvironmentVariable(k.PrivateKeyEnv) ?? throw new InvalidOperationException($"{where}: environment variable {k.PrivateKeyEnv} is not set");
            var text = hex.Trim();
            if (!text.StartsWith("0x", StringComparison.Ordinal)) text = "0x" + text;
            if (!Hex.TryDecodeFixed(text, 32, out var secret, out _)) throw new InvalidOperationException($"{where}: {k.PrivateKeyEnv} is not a 32-byte hex key");
            return new LoadedKey(new ProtocolKey(secret), secret, $"env {k.PrivateKeyEnv} (development only)");
        }
        throw new InvalidOperationException($"{where}: set KeystorePath (+ PasswordFile or PasswordEnv), or PrivateKeyEnv for a devnet");
    }

    /// <summary>For tests and devnets: a key given directly.</summary>
    public static LoadedKey FromSecret(byte[] secret, string origin) => new(new ProtocolKey(secret), secret, origin);
}
