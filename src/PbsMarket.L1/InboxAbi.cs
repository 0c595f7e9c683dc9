using Nethereum.ABI.FunctionEncoding.Attributes;
using Nethereum.Contracts;
using PbsMarket.Core;

namespace PbsMarket.L1;

// Nethereum DTOs for the Inbox, registry and escrow ABIs (contracts/src, docs/contracts.md).

/// <summary>The Solidity <c>Header</c> struct.</summary>
[Struct("Header")]
public sealed class HeaderDto
{
    [Parameter("uint256", "l2ChainId", 1)] public BigInteger L2ChainId { get; set; }
    [Parameter("uint64", "slot", 2)] public ulong Slot { get; set; }
    [Parameter("uint64", "number", 3)] public ulong Number { get; set; }
    [Parameter("bytes32", "parentHash", 4)] public byte[] ParentHash { get; set; } = new byte[32];
    [Parameter("uint64", "timestampMs", 5)] public ulong TimestampMs { get; set; }
    [Parameter("uint64", "gasLimit", 6)] public ulong GasLimit { get; set; }
    [Parameter("uint64", "gasUsed", 7)] public ulong GasUsed { get; set; }
    [Parameter("bytes32", "payloadHash", 8)] public byte[] PayloadHash { get; set; } = new byte[32];
    [Parameter("address", "builder", 9)] public string Builder { get; set; } = "";
    [Parameter("address", "proposer", 10)] public string Proposer { get; set; } = "";
    [Parameter("uint256", "value", 11)] public BigInteger Value { get; set; }

    public static HeaderDto From(Header h) => new()
    {
        L2ChainId = h.L2ChainId, Slot = h.Slot, Number = h.Number, ParentHash = h.ParentHash.ToArray(), TimestampMs = h.TimestampMs,
        GasLimit = h.GasLimit, GasUsed = h.GasUsed, PayloadHash = h.PayloadHash.ToArray(), Builder = h.Builder.ToString(),
        Proposer = h.Proposer.ToString(), Value = h.Value,
    };

    public Header ToHeader() => new(L2ChainId, Slot, Number, Hash32.FromBytes(ParentHash), TimestampMs, GasLimit, GasUsed,
        Hash32.FromBytes(PayloadHash), Address.Parse(Builder), Address.Parse(Proposer), Value);
}

/// <summary>The Solidity <c>PostedHeader</c> struct.</summary>
[Struct("PostedHeader")]
public sealed class PostedHeaderDto
{
    [Parameter("tuple", "header", 1, "Header")] public HeaderDto Header { get; set; } = new();
    [Parameter("bytes", "builderSignature", 2)] public byte[] BuilderSignature { get; set; } = [];
    [Parameter("bytes", "proposalSignature", 3)] public byte[] ProposalSignature { get; set; } = [];
    [Parameter("bytes", "payload", 4)] public byte[] Payload { get; set; } = [];
    [Parameter("uint256", "price", 5)] public BigInteger Price { get; set; }
    [Parameter("bytes32", "bidsRoot", 6)] public byte[] BidsRoot { get; set; } = new byte[32];
}

/// <summary><c>postHeaders(PostedHeader[])</c>, selector 0xa36bfedb.</summary>
[Function("postHeaders")]
public sealed class PostHeadersFunction : FunctionMessage
{
    [Parameter("tuple[]", "items", 1, "PostedHeader[]")] public List<PostedHeaderDto> Items { get; set; } = [];

    public static PostHeadersFunction From(IEnumerable<PostItem> items) => new() { Items = [.. items.Select(i => i.ToDto())] };
}

[Function("reportEquivocation", "uint256")]
public sealed class ReportEquivocationFunction : FunctionMessage
{
    [Parameter("uint64", "slot", 1)] public ulong Slot { get; set; }
    [Parameter("bytes32", "headerHashA", 2)] public byte[] HeaderHashA { get; set; } = new byte[32];
    [Parameter("bytes", "sigA", 3)] public byte[] SigA { get; set; } = [];
    [Parameter("bytes32", "headerHashB", 4)] public byte[] HeaderHashB { get; set; } = new byte[32];
    [Parameter("bytes", "sigB", 5)] public byte[] SigB { get; set; } = [];
}

[Function("hashHeader", "bytes32")]
public sealed class HashHeaderFunction : FunctionMessage
{
    [Parameter("tuple", "h", 1, "Header")] public HeaderDto H { get; set; } = new();
}

[Function("headerDigest", "bytes32")]
public sealed class HeaderDigestFunction : FunctionMessage
{
    [Parameter("tuple", "h", 1, "Header")] public HeaderDto H { get; set; } = new();
}

[Function("proposalDigest", "bytes32")]
public sealed class ProposalDigestFunction : FunctionMessage
{
    [Parameter("uint64", "slot", 1)] public ulong Slot { get; set; }
    [Parameter("bytes32", "headerHash", 2)] public byte[] HeaderHash { get; set; } = new byte[32];
}

[Function("recoverSigner", "address")]
public sealed class RecoverSignerFunction : FunctionMessage
{
    [Parameter("bytes32", "digest", 1)] public byte[] Digest { get; set; } = new byte[32];
    [Parameter("bytes", "signature", 2)] public byte[] Signature { get; set; } = [];
}

[Function("domainSeparator", "bytes32")] public sealed class DomainSeparatorFunction : FunctionMessage;
[Function("lastPostedSlot", "uint64")] public sealed class LastPostedSlotFunction : FunctionMessage;
[Function("headerCount", "uint64")] public sealed class HeaderCountFunction : FunctionMessage;
[Function("currentSlot", "uint64")] public sealed class CurrentSlotFunction : FunctionMessage;
[Function("head", typeof(HeadOutput))] public sealed class HeadFunction : FunctionMessage;

[Function("bidsRootOfSlot", "bytes32")]
public sealed class BidsRootOfSlotFunction : FunctionMessage
{
    [Parameter("uint64", "slot", 1)] public ulong Slot { get; set; }
}

[Function("headerInfo", typeof(HeaderInfoOutput))]
public sealed class HeaderInfoFunction : FunctionMessage
{
    [Parameter("bytes32", "headerHash", 1)] public byte[] HeaderHash { get; set; } = new byte[32];
}

[FunctionOutput]
public sealed class HeadOutput : IFunctionOutputDTO
{
    [Parameter("bytes32", "headerHash", 1)] public byte[] HeaderHash { get; set; } = new byte[32];
    [Parameter("uint64", "number", 2)] public ulong Number { get; set; }
}

[FunctionOutput]
public sealed class HeaderInfoOutput : IFunctionOutputDTO
{
    [Parameter("bool", "known", 1)] public bool Known { get; set; }
    [Parameter("uint64", "slot", 2)] public ulong Slot { get; set; }
    [Parameter("uint64", "number", 3)] public ulong Number { get; set; }
}

// ---- registry ----

[Function("proposerForSlot", "address")]
public sealed class ProposerForSlotFunction : FunctionMessage
{
    [Parameter("uint64", "slot", 1)] public ulong Slot { get; set; }
}

[Function("proposerInfo", typeof(ProposerInfoOutput))]
public sealed class ProposerInfoFunction : FunctionMessage
{
    [Parameter("address", "proposer", 1)] public string Proposer { get; set; } = "";
}

[FunctionOutput]
public sealed class ProposerInfoOutput : IFunctionOutputDTO
{
    [Parameter("uint256", "bond", 1)] public BigInteger Bond { get; set; }
    [Parameter("uint8", "status", 2)] public byte Status { get; set; }
    [Parameter("uint64", "activationEpoch", 3)] public ulong ActivationEpoch { get; set; }
    [Parameter("uint64", "exitEpoch", 4)] public ulong ExitEpoch { get; set; }
    [Parameter("uint64", "withdrawableAt", 5)] public ulong WithdrawableAt { get; set; }
}

[Function("join")] public sealed class JoinFunction : FunctionMessage;
[Function("totalBurned", "uint256")] public sealed class TotalBurnedFunction : FunctionMessage;

// ---- escrow ----

[Function("earningsOf", "uint256")]
public sealed class EarningsOfFunction : FunctionMessage
{
    [Parameter("address", "payee", 1)] public string Payee { get; set; } = "";
}

[Function("deposit")] public sealed class DepositFunction : FunctionMessage;

// ---- events ----

[Event("HeaderPosted")]
public sealed class HeaderPostedEvent : IEventDTO
{
    [Parameter("uint64", "slot", 1, true)] public ulong Slot { get; set; }
    [Parameter("bytes32", "headerHash", 2, true)] public byte[] HeaderHash { get; set; } = new byte[32];
    [Parameter("address", "proposer", 3, true)] public string Proposer { get; set; } = "";
    [Parameter("address", "builder", 4, false)] public string Builder { get; set; } = "";
    [Parameter("uint256", "price", 5, false)] public BigInteger Price { get; set; }
    [Parameter("bytes32", "bidsRoot", 6, false)] public byte[] BidsRoot { get; set; } = new byte[32];
}

[Event("EquivocationReported")]
public sealed class EquivocationReportedEvent : IEventDTO
{
    [Parameter("uint64", "slot", 1, true)] public ulong Slot { get; set; }
    [Parameter("address", "proposer", 2, true)] public string Proposer { get; set; } = "";
    [Parameter("address", "reporter", 3, true)] public string Reporter { get; set; } = "";
    [Parameter("bytes32", "headerHashA", 4, false)] public byte[] HeaderHashA { get; set; } = new byte[32];
    [Parameter("bytes32", "headerHashB", 5, false)] public byte[] HeaderHashB { get; set; } = new byte[32];
    [Parameter("uint256", "burned", 6, false)] public BigInteger Burned { get; set; }
}

[Event("ProposerSlashed")]
public sealed class ProposerSlashedEvent : IEventDTO
{
    [Parameter("address", "proposer", 1, true)] public string Proposer { get; set; } = "";
    [Parameter("address", "reporter", 2, true)] public string Reporter { get; set; } = "";
    [Parameter("uint256", "burned", 3, false)] public BigInteger Burned { get; set; }
    [Parameter("uint64", "exitEpoch", 4, false)] public ulong ExitEpoch { get; set; }
}

/// <summary>One proposed header ready for <c>postHeaders</c>.</summary>
public sealed record PostItem(Header Header, Signature BuilderSignature, Signature ProposalSignature, byte[] Payload, BigInteger Price, Hash32 BidsRoot)
{
    public ulong Slot => Header.Slot;

    public PostedHeaderDto ToDto() => new()
    {
        Header = HeaderDto.From(Header), BuilderSignature = BuilderSignature.ToArray(), ProposalSignature = ProposalSignature.ToArray(),
        Payload = Payload, Price = Price, BidsRoot = BidsRoot.ToArray(),
    };
}

/// <summary>A decoded <c>HeaderPosted</c> log.</summary>
public sealed record HeaderPostedLog(ulong Slot, Hash32 HeaderHash, Address Proposer, Address Builder, BigInteger Price, Hash32 BidsRoot,
    string TxHash, ulong BlockNumber, ulong LogIndex);

public sealed record EquivocationReportedLog(ulong Slot, Address Proposer, Address Reporter, Hash32 HeaderHashA, Hash32 HeaderHashB, BigInteger Burned,
    string TxHash, ulong BlockNumber);

public sealed record ProposerSlashedLog(Address Proposer, Address Reporter, BigInteger Burned, ulong ExitEpoch, string TxHash, ulong BlockNumber);

/// <summary>Registry status of a proposer (proposerInfo).</summary>
public enum ProposerStatus : byte { None = 0, Active = 1, Exiting = 2, Slashed = 3 }

public sealed record ProposerInfo(BigInteger Bond, ProposerStatus Status, ulong ActivationEpoch, ulong ExitEpoch, ulong WithdrawableAt);
