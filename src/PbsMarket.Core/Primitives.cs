using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Numerics;

namespace PbsMarket.Core;

/// <summary>A 32-byte value (hashes, roots). Printed as lowercase 0x hex; parsed from 0x hex in any case.</summary>
public readonly struct Hash32 : IEquatable<Hash32>, IComparable<Hash32>
{
    public const int Length = 32;
    private readonly byte[]? _bytes;

    private Hash32(byte[] bytes) => _bytes = bytes;

    public static Hash32 Zero => default;

    public ReadOnlySpan<byte> Span => _bytes is null ? Zeros.Span32 : _bytes;
    public bool IsZero => Span.IndexOfAnyExcept((byte)0) < 0;

    public byte[] ToArray() => Span.ToArray();

    public static Hash32 FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Length) throw new ArgumentException($"expected {Length} bytes, got {bytes.Length}", nameof(bytes));
        return new Hash32(bytes.ToArray());
    }

    /// <summary>Takes ownership of a 32-byte array (no copy). Internal: callers must not mutate it afterwards.</summary>
    internal static Hash32 Own(byte[] bytes) => new(bytes);

    public static bool TryParse(string? text, out Hash32 value)
    {
        value = default;
        if (!Hex.TryDecodeFixed(text, Length, out var bytes, out _)) return false;
        value = new Hash32(bytes);
        return true;
    }

    public static Hash32 Parse(string text) =>
        TryParse(text, out var v) ? v : throw new FormatException($"not a 0x-prefixed 32-byte hex string: \"{text}\"");

    public BigInteger ToUInt256() => new(Span, isUnsigned: true, isBigEndian: true);

    public bool Equals(Hash32 other) => Span.SequenceEqual(other.Span);
    public override bool Equals(object? obj) => obj is Hash32 h && Equals(h);
    public override int GetHashCode() => BinaryPrimitives.ReadInt32LittleEndian(Span);
    /// <summary>Orders as unsigned big-endian integers (= lexicographic bytes).</summary>
    public int CompareTo(Hash32 other) => Span.SequenceCompareTo(other.Span);
    public static bool operator ==(Hash32 a, Hash32 b) => a.Equals(b);
    public static bool operator !=(Hash32 a, Hash32 b) => !a.Equals(b);
    public static bool operator <(Hash32 a, Hash32 b) => a.CompareTo(b) < 0;
    public static bool operator >(Hash32 a, Hash32 b) => a.CompareTo(b) > 0;
    public static bool operator <=(Hash32 a, Hash32 b) => a.CompareTo(b) <= 0;
    public static bool operator >=(Hash32 a, Hash32 b) => a.CompareTo(b) >= 0;
    public override string ToString() => Hex.Encode(Span);
}

/// <summary>A 20-byte account address. Parsed in any case (no EIP-55 check); printed lowercase.</summary>
public readonly struct Address : IEquatable<Address>, IComparable<Address>
{
    public const int Length = 20;
    private readonly byte[]? _bytes;

    private Address(byte[] bytes) => _bytes = bytes;

    public static Address Zero => default;
    public ReadOnlySpan<byte> Span => _bytes is null ? Zeros.Span32[..Length] : _bytes;
    public bool IsZero => Span.IndexOfAnyExcept((byte)0) < 0;
    public byte[] ToArray() => Span.ToArray();

    public static Address FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Length) throw new ArgumentException($"expected {Length} bytes, got {bytes.Length}", nameof(bytes));
        return new Address(bytes.ToArray());
    }

    /// <summary>The address of an uncompressed 64-byte public key (x || y): the last 20 bytes of its keccak.</summary>
    public static Address FromPublicKey(ReadOnlySpan<byte> publicKey64)
    {
        if (publicKey64.Length != 64) throw new ArgumentException("expected a 64-byte public key", nameof(publicKey64));
        Span<byte> h = stackalloc byte[32];
        Keccak.Hash(publicKey64, h);
        return new Address(h[12..].ToArray());
    }

    public static bool TryParse(string? text, out Address value)
    {
        value = default;
        if (!Hex.TryDecodeFixed(text, Length, out var bytes, out _)) return false;
        value = new Address(bytes);
        return true;
    }

    public static Address Parse(string text) =>
        TryParse(text, out var v) ? v : throw new FormatException($"not a 0x-prefixed 20-byte hex address: \"{text}\"");

    public bool Equals(Address other) => Span.SequenceEqual(other.Span);
    public override bool Equals(object? obj) => obj is Address a && Equals(a);
    public override int GetHashCode() => BinaryPrimitives.ReadInt32LittleEndian(Span);
    public int CompareTo(Address other) => Span.SequenceCompareTo(other.Span);
    public static bool operator ==(Address a, Address b) => a.Equals(b);
    public static bool operator !=(Address a, Address b) => !a.Equals(b);
    public override string ToString() => Hex.Encode(Span);

    /// <summary>EIP-55 mixed-case checksum form.</summary>
    public string ToChecksumString()
    {
        var lower = Hex.Encode(Span)[2..];
        Span<byte> h = stackalloc byte[32];
        Keccak.Hash(System.Text.Encoding.ASCII.GetBytes(lower), h);
        var chars = new char[42];
        chars[0] = '0'; chars[1] = 'x';
        for (var i = 0; i < 40; i++)
        {
            var c = lower[i];
            var nibble = (i & 1) == 0 ? h[i / 2] >> 4 : h[i / 2] & 0xf;
            chars[i + 2] = c >= 'a' && nibble >= 8 ? char.ToUpperInvariant(c) : c;
        }
        return new string(chars);
    }
}

/// <summary>A 65-byte secp256k1 signature r || s || v, always held with v in {27, 28} and low s.</summary>
public readonly struct Signature : IEquatable<Signature>
{
    public const int Length = 65;
    private readonly byte[]? _bytes;

    private Signature(byte[] bytes) => _bytes = bytes;

    /// <summary>secp256k1 group order n.</summary>
    public static readonly BigInteger CurveOrder = BigInteger.Parse("115792089237316195423570985008687907852837564279074904382605163141518161494337");
    /// <summary>n / 2: the largest s OpenZeppelin's ECDSA accepts.</summary>
    public static readonly BigInteger HalfCurveOrder = CurveOrder / 2;

    public ReadOnlySpan<byte> Span => _bytes ?? throw new InvalidOperationException("default Signature");
    public ReadOnlySpan<byte> R => Span[..32];
    public ReadOnlySpan<byte> S => Span[32..64];
    public byte V => Span[64];
    /// <summary>Recovery id (0 or 1).</summary>
    public int RecoveryId => V - 27;
    public bool IsDefault => _bytes is null;
    public byte[] ToArray() => Span.ToArray();

    /// <summary>Checks r, s (range and low s) and v, normalising v from {0,1} to {27,28}.</summary>
    public static bool TryFromBytes(ReadOnlySpan<byte> bytes, out Signature signature, out string error)
    {
        signature = default;
        if (bytes.Length != Length) { error = $"expected {Length} bytes, got {bytes.Length}"; return false; }
        var v = bytes[64];
        if (v is 0 or 1) v += 27;
        if (v is not (27 or 28)) { error = $"v must be 27, 28, 0 or 1, got {bytes[64]}"; return false; }
        if (!CheckScalars(bytes[..32], bytes[32..64], out error)) return false;
        var copy = bytes.ToArray();
        copy[64] = v;
        signature = new Signature(copy);
        return true;
    }

    /// <summary>r and s nonzero and below n, s at most n/2 (as OpenZeppelin ECDSA requires).</summary>
    internal static bool CheckScalars(ReadOnlySpan<byte> r32, ReadOnlySpan<byte> s32, out string error)
    {
        var r = new BigInteger(r32, isUnsigned: true, isBigEndian: true);
        var s = new BigInteger(s32, isUnsigned: true, isBigEndian: true);
        if (r.IsZero || r >= CurveOrder) { error = "r is zero or not below the curve order"; return false; }
        if (s.IsZero || s >= CurveOrder) { error = "s is zero or not below the curve order"; return false; }
        if (s > HalfCurveOrder) { error = "s is in the upper half of the curve order (malleable high-s signature)"; return false; }
        error = "";
        return true;
    }

    public static bool TryParse(string? hex, out Signature signature, out string error)
    {
        signature = default;
        if (!Hex.TryDecode(hex, out var bytes, out error)) return false;
        return TryFromBytes(bytes, out signature, out error);
    }

    public static Signature Parse(string hex) =>
        TryParse(hex, out var s, out var e) ? s : throw new FormatException($"invalid signature: {e}");

    internal static Signature FromParts(ReadOnlySpan<byte> r32, ReadOnlySpan<byte> s32, int recoveryId)
    {
        var b = new byte[Length];
        r32.CopyTo(b);
        s32.CopyTo(b.AsSpan(32));
        b[64] = (byte)(27 + recoveryId);
        return new Signature(b);
    }

    public bool Equals(Signature other) => (_bytes ?? []).AsSpan().SequenceEqual(other._bytes ?? []);
    public override bool Equals(object? obj) => obj is Signature s && Equals(s);
    public override int GetHashCode() => _bytes is null ? 0 : BinaryPrimitives.ReadInt32LittleEndian(_bytes);
    public static bool operator ==(Signature a, Signature b) => a.Equals(b);
    public static bool operator !=(Signature a, Signature b) => !a.Equals(b);
    public override string ToString() => _bytes is null ? "" : Hex.Encode(_bytes);
}

/// <summary>Keccak-256 (the Ethereum hash, not SHA3-256).</summary>
public static class Keccak
{
    public static Hash32 Hash(ReadOnlySpan<byte> data)
    {
        var output = new byte[32];
        KeccakF.Hash256(data, output);
        return Hash32.Own(output);
    }

    public static void Hash(ReadOnlySpan<byte> data, Span<byte> output32) => KeccakF.Hash256(data, output32);
}

/// <summary>0x hex helpers. Decoding accepts any case; encoding is lowercase.</summary>
public static class Hex
{
    public static string Encode(ReadOnlySpan<byte> bytes) => "0x" + Convert.ToHexStringLower(bytes);

    public static bool TryDecode(string? text, [NotNullWhen(true)] out byte[]? bytes, out string error)
    {
        bytes = null;
        if (text is null) { error = "expected a 0x-prefixed hex string"; return false; }
        if (text.Length < 2 || text[0] != '0' || text[1] != 'x') { error = "missing 0x prefix"; return false; }
        if ((text.Length & 1) != 0) { error = "odd-length hex"; return false; }
        var span = text.AsSpan(2);
        for (var i = 0; i < span.Length; i++)
        {
            if (!char.IsAsciiHexDigit(span[i])) { error = $"invalid hex character at offset {i + 2}"; return false; }
        }
        bytes = Convert.FromHexString(span);
        error = "";
        return true;
    }

    public static bool TryDecodeFixed(string? text, int length, [NotNullWhen(true)] out byte[]? bytes, out string error)
    {
        if (!TryDecode(text, out bytes, out error)) return false;
        if (bytes.Length != length) { error = $"expected {length} bytes, got {bytes.Length}"; bytes = null; return false; }
        return true;
    }

    public static byte[] Decode(string text) =>
        TryDecode(text, out var b, out var e) ? b : throw new FormatException(e);
}

internal static class Zeros
{
    private static readonly byte[] s_32 = new byte[32];
    public static ReadOnlySpan<byte> Span32 => s_32;
}
