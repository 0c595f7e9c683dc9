using Nethereum.Signer;
using Secp256k1Net;

namespace PbsMarket.Core;

/// <summary>Which secp256k1 implementation is in use.</summary>
public enum CryptoBackend
{
    /// <summary>Native libsecp256k1 through Secp256k1.Net.</summary>
    Native,
    /// <summary>Managed Nethereum (BouncyCastle) code: used when the native library cannot load.</summary>
    Nethereum,
}

internal static class NativeSecp
{
    private static readonly Lazy<bool> s_available = new(Probe);

    [ThreadStatic] private static Secp256k1? t_context;

    public static bool Available => s_available.Value;

    /// <summary>One context per thread: a context is not safe to share for signing, and creating one costs ~100 µs.</summary>
    public static Secp256k1 Context => t_context ??= new Secp256k1();

    private static bool Probe()
    {
        try
        {
            // Any call loads the native library; a known key must give a known public key.
            Span<byte> key = stackalloc byte[32];
            key[31] = 1;
            Span<byte> pub = stackalloc byte[64];
            return NativeSecp.Context.EcPubkeyCreate(pub, key);
        }
        catch (Exception e) when (e is DllNotFoundException or BadImageFormatException or EntryPointNotFoundException or TypeInitializationException or InvalidOperationException)
        {
            return false;
        }
    }
}

/// <summary>A secp256k1 private key used to sign protocol messages. Never printed.</summary>
public sealed class ProtocolKey
{
    private readonly byte[] _secret;
    private readonly EthECKey? _managed;

    public ProtocolKey(ReadOnlySpan<byte> secret32)
    {
        if (secret32.Length != 32) throw new ArgumentException("a private key is 32 bytes", nameof(secret32));
        var s = new System.Numerics.BigInteger(secret32, isUnsigned: true, isBigEndian: true);
        if (s.IsZero || s >= Signature.CurveOrder) throw new ArgumentException("private key out of range", nameof(secret32));
        _secret = secret32.ToArray();
        if (NativeSecp.Available)
        {
            Span<byte> pub = stackalloc byte[64];
            if (!NativeSecp.Context.EcPubkeyCreate(pub, _secret)) throw new ArgumentException("invalid private key", nameof(secret32));
            Span<byte> ser = stackalloc byte[65];
            nuint len = 65;
            NativeSecp.Context.EcPubkeySerialize(ser, ref len, pub, Secp256k1EcFlags.Uncompressed);
            Address = Address.FromPublicKey(ser[1..]);
        }
        else
        {
            _managed = new EthECKey(_secret, true);
            Address = Address.Parse(_managed.GetPublicAddress());
        }
    }

    /// <summary>From 0x-prefixed (or bare) 64-hex-digit text.</summary>
    public static ProtocolKey FromHex(string hex)
    {
        ArgumentNullException.ThrowIfNull(hex);
        var text = hex.StartsWith("0x", StringComparison.Ordinal) ? hex : "0x" + hex;
        if (!Hex.TryDecodeFixed(text, 32, out var bytes, out var error)) throw new FormatException($"invalid private key: {error}");
        return new ProtocolKey(bytes);
    }

    /// <summary>A fresh random key (tests, demo builders).</summary>
    public static ProtocolKey Generate()
    {
        Span<byte> b = stackalloc byte[32];
        while (true)
        {
            System.Security.Cryptography.RandomNumberGenerator.Fill(b);
            var s = new System.Numerics.BigInteger(b, isUnsigned: true, isBigEndian: true);
            if (!s.IsZero && s < Signature.CurveOrder) return new ProtocolKey(b);
        }
    }

    public Address Address { get; }

    /// <summary>Signs a 32-byte digest (RFC 6979 deterministic, low s, v in {27, 28}).</summary>
    public Signature Sign(Hash32 digest)
    {
        if (_managed is null)
        {
            var inst = NativeSecp.Context;
            Span<byte> rec = stackalloc byte[65];
            if (!inst.EcdsaSignRecoverable(rec, digest.Span, _secret)) throw new InvalidOperationException("signing failed");
            Span<byte> compact = stackalloc byte[64];
            int recId;
            inst.EcdsaRecoverableSignatureSerializeCompact(compact, out recId, rec);
            return Signature.FromParts(compact[..32], compact[32..], recId);
        }
        var sig = _managed.SignAndCalculateV(digest.ToArray());
        Span<byte> r = stackalloc byte[32];
        Span<byte> s = stackalloc byte[32];
        sig.R.AsSpan().CopyTo(r[(32 - sig.R.Length)..]);
        sig.S.AsSpan().CopyTo(s[(32 - sig.S.Length)..]);
        var v = sig.V[0];
        return Signature.FromParts(r, s, v >= 27 ? v - 27 : v);
    }

    /// <summary>Signs the EIP-712 digest of a struct hash under a domain.</summary>
    public Signature SignTyped(Eip712Domain domain, Hash32 structHash) => Sign(Eip712.Digest(domain, structHash));

    public override string ToString() => $"ProtocolKey({Address})";
}

/// <summary>Recovers signers of 32-byte digests; native libsecp256k1 when it loads, Nethereum otherwise.</summary>
public static class SignatureRecovery
{
    public static CryptoBackend ActiveBackend => NativeSecp.Available ? CryptoBackend.Native : CryptoBackend.Nethereum;

    public static bool TryRecover(Hash32 digest, Signature sig, out Address signer) =>
        NativeSecp.Available ? TryRecoverNative(digest, sig, out signer) : TryRecoverManaged(digest, sig, out signer);

    /// <summary>Recovers and compares in one step.</summary>
    public static bool Verify(Hash32 digest, Signature sig, Address expected) =>
        TryRecover(digest, sig, out var signer) && signer == expected;

    /// <summary>Native libsecp256k1 recovery (throws DllNotFoundException if the library cannot load).</summary>
    public static bool TryRecoverNative(Hash32 digest, Signature sig, out Address signer)
    {
        signer = default;
        if (sig.IsDefault) return false;
        var inst = NativeSecp.Context;
        Span<byte> rec = stackalloc byte[65];
        if (!inst.EcdsaRecoverableSignatureParseCompact(rec, sig.Span[..64], sig.RecoveryId)) return false;
        Span<byte> pub = stackalloc byte[64];
        if (!inst.EcdsaRecover(pub, rec, digest.Span)) return false;
        Span<byte> ser = stackalloc byte[65];
        nuint len = 65;
        if (!inst.EcPubkeySerialize(ser, ref len, pub, Secp256k1EcFlags.Uncompressed) || len != 65) return false;
        signer = Address.FromPublicKey(ser[1..]);
        return true;
    }

    /// <summary>Managed Nethereum/BouncyCastle recovery (about 6x slower), the fallback.</summary>
    public static bool TryRecoverManaged(Hash32 digest, Signature sig, out Address signer)
    {
        signer = default;
        if (sig.IsDefault) return false;
        try
        {
            var ecdsa = EthECDSASignatureFactory.FromComponents(sig.R.ToArray(), sig.S.ToArray(), sig.V);
            var key = EthECKey.RecoverFromSignature(ecdsa, digest.ToArray());
            if (key is null) return false;
            signer = Address.Parse(key.GetPublicAddress());
            return true;
        }
        catch (Exception)
        {
            // Nethereum throws on invalid points; recovery failure is a plain "no".
            return false;
        }
    }
}
