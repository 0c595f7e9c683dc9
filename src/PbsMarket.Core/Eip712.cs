using System.Buffers.Binary;
using System.Numerics;
using System.Text;

namespace PbsMarket.Core;

/// <summary>
/// The EIP-712 domain <c>EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)</c>.
/// Immutable; the separator is computed once.
/// </summary>
public sealed class Eip712Domain : IEquatable<Eip712Domain>
{
    public const string TypeString = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)";
    public const string ProtocolName = "PbsMarket";
    public const string ProtocolVersion = "1";

    public Eip712Domain(string name, string version, BigInteger chainId, Address verifyingContract)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(version);
        if (chainId.Sign < 0) throw new ArgumentOutOfRangeException(nameof(chainId));
        Name = name;
        Version = version;
        ChainId = chainId;
        VerifyingContract = verifyingContract;
        var buf = new byte[5 * 32];
        Eip712.TypeHashOf(TypeString).Span.CopyTo(buf);
        Keccak.Hash(Encoding.UTF8.GetBytes(name), buf.AsSpan(32, 32));
        Keccak.Hash(Encoding.UTF8.GetBytes(version), buf.AsSpan(64, 32));
        Abi.WriteUInt256(buf.AsSpan(96, 32), chainId);
        Abi.WriteAddress(buf.AsSpan(128, 32), verifyingContract);
        Separator = Keccak.Hash(buf);
    }

    public string Name { get; }
    public string Version { get; }
    public BigInteger ChainId { get; }
    public Address VerifyingContract { get; }
    /// <summary>hashStruct(EIP712Domain), cached.</summary>
    public Hash32 Separator { get; }

    /// <summary>The protocol's domain: name "PbsMarket", version "1", the L1 chain id and the L1 inbox contract.</summary>
    public static Eip712Domain PbsMarket(BigInteger chainId, Address inbox) => new(ProtocolName, ProtocolVersion, chainId, inbox);

    public bool Equals(Eip712Domain? other) => other is not null && Separator == other.Separator;
    public override bool Equals(object? obj) => Equals(obj as Eip712Domain);
    public override int GetHashCode() => Separator.GetHashCode();
    public override string ToString() => $"Eip712Domain({Name}, {Version}, {ChainId}, {VerifyingContract})";
}

/// <summary>
/// EIP-712 hashing of the protocol types. All fields are static ABI types, so
/// hashStruct = keccak(typeHash || one 32-byte word per field); hand-rolled for speed and checked
/// against ethers' TypedDataEncoder in the interop vectors.
/// </summary>
public static class Eip712
{
    public const string HeaderType = "Header(uint256 l2ChainId,uint64 slot,uint64 number,bytes32 parentHash,uint64 timestampMs,uint64 gasLimit,uint64 gasUsed,bytes32 payloadHash,address builder,address proposer,uint256 value)";
    public const string ProposalType = "Proposal(uint64 slot,bytes32 headerHash,uint256 price,bytes32 bidsRoot,address relay)";
    public const string HeaderRequestType = "HeaderRequest(uint64 slot,address proposer)";
    public const string BidReceiptType = "BidReceipt(bytes32 headerHash,uint64 receivedAtMs)";
    public const string AuctionResultType = "AuctionResult(uint64 slot,bytes32 headerHash,uint256 price,bytes32 bidsRoot,uint32 bidCount)";

    public static readonly Hash32 HeaderTypeHash = TypeHashOf(HeaderType);
    public static readonly Hash32 ProposalTypeHash = TypeHashOf(ProposalType);
    public static readonly Hash32 HeaderRequestTypeHash = TypeHashOf(HeaderRequestType);
    public static readonly Hash32 BidReceiptTypeHash = TypeHashOf(BidReceiptType);
    public static readonly Hash32 AuctionResultTypeHash = TypeHashOf(AuctionResultType);

    internal static Hash32 TypeHashOf(string type) => Keccak.Hash(Encoding.ASCII.GetBytes(type));

    public static Hash32 HashStruct(Header h)
    {
        ArgumentNullException.ThrowIfNull(h);
        Span<byte> buf = stackalloc byte[12 * 32];
        buf.Clear();
        HeaderTypeHash.Span.CopyTo(buf);
        Abi.WriteUInt256(buf.Slice(32, 32), h.L2ChainId);
        Abi.WriteUInt64(buf.Slice(64, 32), h.Slot);
        Abi.WriteUInt64(buf.Slice(96, 32), h.Number);
        h.ParentHash.Span.CopyTo(buf.Slice(128, 32));
        Abi.WriteUInt64(buf.Slice(160, 32), h.TimestampMs);
        Abi.WriteUInt64(buf.Slice(192, 32), h.GasLimit);
        Abi.WriteUInt64(buf.Slice(224, 32), h.GasUsed);
        h.PayloadHash.Span.CopyTo(buf.Slice(256, 32));
        Abi.WriteAddress(buf.Slice(288, 32), h.Builder);
        Abi.WriteAddress(buf.Slice(320, 32), h.Proposer);
        Abi.WriteUInt256(buf.Slice(352, 32), h.Value);
        return Keccak.Hash(buf);
    }

    public static Hash32 HashStruct(Proposal p)
    {
        ArgumentNullException.ThrowIfNull(p);
        Span<byte> buf = stackalloc byte[6 * 32];
        buf.Clear();
        ProposalTypeHash.Span.CopyTo(buf);
        Abi.WriteUInt64(buf.Slice(32, 32), p.Slot);
        p.HeaderHash.Span.CopyTo(buf.Slice(64, 32));
        Abi.WriteUInt256(buf.Slice(96, 32), p.Price);
        p.BidsRoot.Span.CopyTo(buf.Slice(128, 32));
        Abi.WriteAddress(buf.Slice(160, 32), p.Relay);
        return Keccak.Hash(buf);
    }

    public static Hash32 HashStruct(HeaderRequest r)
    {
        ArgumentNullException.ThrowIfNull(r);
        Span<byte> buf = stackalloc byte[3 * 32];
        buf.Clear();
        HeaderRequestTypeHash.Span.CopyTo(buf);
        Abi.WriteUInt64(buf.Slice(32, 32), r.Slot);
        Abi.WriteAddress(buf.Slice(64, 32), r.Proposer);
        return Keccak.Hash(buf);
    }

    public static Hash32 HashStruct(BidReceipt r)
    {
        ArgumentNullException.ThrowIfNull(r);
        Span<byte> buf = stackalloc byte[3 * 32];
        buf.Clear();
        BidReceiptTypeHash.Span.CopyTo(buf);
        r.HeaderHash.Span.CopyTo(buf.Slice(32, 32));
        Abi.WriteUInt64(buf.Slice(64, 32), r.ReceivedAtMs);
        return Keccak.Hash(buf);
    }

    public static Hash32 HashStruct(AuctionResult r)
    {
        ArgumentNullException.ThrowIfNull(r);
        Span<byte> buf = stackalloc byte[6 * 32];
        buf.Clear();
        AuctionResultTypeHash.Span.CopyTo(buf);
        Abi.WriteUInt64(buf.Slice(32, 32), r.Slot);
        r.HeaderHash.Span.CopyTo(buf.Slice(64, 32));
        Abi.WriteUInt256(buf.Slice(96, 32), r.Price);
        r.BidsRoot.Span.CopyTo(buf.Slice(128, 32));
        Abi.WriteUInt64(buf.Slice(160, 32), r.BidCount);
        return Keccak.Hash(buf);
    }

    /// <summary>The signing digest keccak(0x1901 || domainSeparator || structHash).</summary>
    public static Hash32 Digest(Eip712Domain domain, Hash32 structHash)
    {
        ArgumentNullException.ThrowIfNull(domain);
        Span<byte> buf = stackalloc byte[66];
        buf[0] = 0x19;
        buf[1] = 0x01;
        domain.Separator.Span.CopyTo(buf[2..]);
        structHash.Span.CopyTo(buf[34..]);
        return Keccak.Hash(buf);
    }

    public static Hash32 Digest(Eip712Domain domain, Header h) => Digest(domain, HashStruct(h));
    public static Hash32 Digest(Eip712Domain domain, Proposal p) => Digest(domain, HashStruct(p));
    public static Hash32 Digest(Eip712Domain domain, HeaderRequest r) => Digest(domain, HashStruct(r));
    public static Hash32 Digest(Eip712Domain domain, BidReceipt r) => Digest(domain, HashStruct(r));
    public static Hash32 Digest(Eip712Domain domain, AuctionResult r) => Digest(domain, HashStruct(r));
}

/// <summary>ABI words for static types (big-endian, left-padded).</summary>
internal static class Abi
{
    public static readonly BigInteger MaxUInt256 = (BigInteger.One << 256) - 1;

    public static void WriteUInt64(Span<byte> word, ulong value)
    {
        word[..24].Clear();
        BinaryPrimitives.WriteUInt64BigEndian(word[24..], value);
    }

    public static void WriteUInt256(Span<byte> word, BigInteger value)
    {
        if (value.Sign < 0 || value > MaxUInt256) throw new ArgumentOutOfRangeException(nameof(value), "not a uint256");
        word.Clear();
        var n = value.GetByteCount(isUnsigned: true);
        if (!value.TryWriteBytes(word[(32 - n)..], out _, isUnsigned: true, isBigEndian: true))
            throw new InvalidOperationException("uint256 write failed");
    }

    public static void WriteAddress(Span<byte> word, Address a)
    {
        word[..12].Clear();
        a.Span.CopyTo(word[12..]);
    }
}
