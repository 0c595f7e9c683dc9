using PbsMarket.Core;

namespace PbsMarket.Relay.Infrastructure;

/// <summary>
/// The relay's own signing key (receipts and auction results), from a keystore file or the
/// configuration. The key itself is never logged: only its address.
/// </summary>
public sealed class RelayKey
{
    public RelayKey(RelayOptions options, ILogger<RelayKey> log)
    {
        (Key, SecretHex) = Load(options, warning => log.LogWarning("{Warning}", warning));
        log.LogInformation("relay signing address {Address}", Key.Address);
    }

    public ProtocolKey Key { get; }
    public Address Address => Key.Address;
    /// <summary>The key as hex, for the L1 poster's sender account when no separate Relay:L1SenderKey is set (so a relay
    /// whose key is in a keystore posts too). Never logged.</summary>
    internal string SecretHex { get; }

    static (ProtocolKey, string) Load(RelayOptions o, Action<string> warn)
    {
        if (!string.IsNullOrEmpty(o.KeystorePath))
        {
            if (string.IsNullOrEmpty(o.KeystorePasswordFile))
                throw new KeystoreException("relay: Relay:KeystorePath needs Relay:KeystorePasswordFile");
            var secret = Keystore.Load(o.KeystorePath, o.KeystorePasswordFile, "relay (Relay:KeystorePath)", warn);
            return (new ProtocolKey(secret), Hex.Encode(secret));
        }
        if (!string.IsNullOrEmpty(o.SigningKey)) return (ProtocolKey.FromHex(o.SigningKey), o.SigningKey);
        throw new InvalidOperationException("no relay signing key: set Relay:KeystorePath (+ Relay:KeystorePasswordFile) or Relay:SigningKey (env PBS_Relay__SigningKey)");
    }
}
