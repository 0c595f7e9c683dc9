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

/// <summary>The Solidity <c>Proposal</c> struct (protocol version 2).</summary>
[Struct("Proposal")]
public sealed class ProposalDto
{
    [Parameter("uint64", "slot", 1)] public ulong Slot { get; set; }
    [Parameter("bytes32", "headerHash", 2)] public byte[] HeaderHash { get; set; } = new byte[32];
    [Parameter("uint256", "price", 3)] public BigInteger Price { get; set; }
    [Parameter("bytes32", "bidsRoot", 4)] public byte[] BidsRoot { get; set; } = new byte[32];
    [Parameter("address", "relay", 5)] public string Relay { get; set; } = "";

    public static ProposalDto From(Proposal p) => new()
    {
        Slot = p.Slot, HeaderHash = p.HeaderHash.ToArray(), Price = p.Price, BidsRoot = p.BidsRoot.ToArray(), Relay = p.Relay.ToString(),
    };
}

/// <summary>The Solidity <c>AuctionResult</c> struct.</summary>
[Struct("AuctionResult")]
public sealed class AuctionResultDto
{
    [Parameter("uint64", "slot", 1)] public ulong Slot { get; set; }
    [Parameter("bytes32", "headerHash", 2)] public byte[] HeaderHash { get; set; } = new byte[32];
    [Parameter("uint256", "price", 3)] public BigInteger Price { get; set; }
    [Parameter("bytes32", "bidsRoot", 4)] public byte[] BidsRoot { get; set; } = new byte[32];
    [Parameter("uint32", "bidCount", 5)] public uint BidCount { get; set; }

    public static AuctionResultDto From(AuctionResult r) => new()
    {
        Slot = r.Slot, HeaderHash = r.HeaderHash.ToArray(), Price = r.Price, BidsRoot = r.BidsRoot.ToArray(), BidCount = r.BidCount,
    };
}

/// <summary>The Solidity <c>RunnerUp</c> struct: second-price evidence.</summary>
[Struct("RunnerUp")]
public sealed class RunnerUpDto
{
    [Parameter("uint64", "gasLimit", 1)] public ulong GasLimit { get; set; }
    [Parameter("uint64", "gasUsed", 2)] public ulong GasUsed { get; set; }
    [Parameter("bytes32", "payloadHash", 3)] public byte[] PayloadHash { get; set; } = new byte[32];
    [Parameter("address", "builder", 4)] public string Builder { get; set; } = "";
    [Parameter("uint64", "receivedAtMs", 5)] public ulong ReceivedAtMs { get; set; }
    [Parameter("bytes", "builderSignature", 6)] public byte[] BuilderSignature { get; set; } = [];
    [Parameter("bytes32[]", "proof", 7)] public List<byte[]> Proof { get; set; } = [];

    public static RunnerUpDto From(RunnerUpEvidence e) => new()
    {
        GasLimit = e.GasLimit, GasUsed = e.GasUsed, PayloadHash = e.PayloadHash.ToArray(), Builder = e.Builder.ToString(), ReceivedAtMs = e.ReceivedAtMs,
        BuilderSignature = e.BuilderSignature.ToArray(), Proof = [.. e.Proof.Select(p => p.ToArray())],
    };
}

/// <summary>The Solidity <c>PostedHeader</c> struct (protocol version 2).</summary>
[Struct("PostedHeader")]
public sealed class PostedHeaderDto
{
    [Parameter("tuple", "header", 1, "Header")] public HeaderDto Header { get; set; } = new();
    [Parameter("bytes", "builderSignature", 2)] public byte[] BuilderSignature { get; set; } = [];
    [Parameter("bytes", "proposalSignature", 3)] public byte[] ProposalSignature { get; set; } = [];
    [Parameter("bytes", "payload", 4)] public byte[] Payload { get; set; } = [];
    [Parameter("uint256", "price", 5)] public BigInteger Price { get; set; }
    [Parameter("bytes32", "bidsRoot", 6)] public byte[] BidsRoot { get; set; } = new byte[32];
    [Parameter("uint32", "bidCount", 7)] public uint BidCount { get; set; }
    [Parameter("bytes", "relaySignature", 8)] public byte[] RelaySignature { get; set; } = [];
    [Parameter("tuple[]", "runnerUp", 9, "RunnerUp[]")] public List<RunnerUpDto> RunnerUp { get; set; } = [];
}

/// <summary><c>postHeaders(PostedHeader[])</c>.</summary>
[Function("postHeaders")]
public sealed class PostHeadersFunction : FunctionMessage
{
    [Parameter("tuple[]", "items", 1, "PostedHeader[]")] public List<PostedHeaderDto> Items { get; set; } = [];

    public static PostHeadersFunction From(IEnumerable<PostItem> items) => new() { Items = [.. items.Select(i => i.ToDto())] };
}

/// <summary><c>reportEquivocation(Proposal a, bytes sigA, Proposal b, bytes sigB)</c>: two differing v2 proposals of one slot.</summary>
[Function("reportEquivocation", "uint256")]
public sealed class ReportEquivocationFunction : FunctionMessage
{
    [Parameter("tuple", "a", 1, "Proposal")] public ProposalDto A { get; set; } = new();
    [Parameter("bytes", "sigA", 2)] public byte[] SigA { get; set; } = [];
    [Parameter("tuple", "b", 3, "Proposal")] public ProposalDto B { get; set; } = new();
    [Parameter("bytes", "sigB", 4)] public byte[] SigB { get; set; } = [];
}

[Function("registerRelay")] public sealed class RegisterRelayFunction : FunctionMessage;

[Function("isRelay", "bool")]
public sealed class IsRelayFunction : FunctionMessage
{
    [Parameter("address", "relay", 1)] public string Relay { get; set; } = "";
}

[Function("PRICE_RULE", "uint8")] public sealed class PriceRuleFunction : FunctionMessage;
[Function("RESERVE_PRICE", "uint256")] public sealed class ReservePriceFunction : FunctionMessage;

[Function("proposalDigest", "bytes32")]
public sealed class ProposalDigestFunction : FunctionMessage
{
    [Parameter("tuple", "p", 1, "Proposal")] public ProposalDto P { get; set; } = new();
}

[Function("auctionResultDigest", "bytes32")]
public sealed class AuctionResultDigestFunction : FunctionMessage
{
    [Parameter("tuple", "a", 1, "AuctionResult")] public AuctionResultDto A { get; set; } = new();
}

[Function("bidsLeaf", "bytes32")]
public sealed class BidsLeafFunction : FunctionMessage
{
    [Parameter("bytes32", "headerHash", 1)] public byte[] HeaderHash { get; set; } = new byte[32];
    [Parameter("uint64", "receivedAtMs", 2)] public ulong ReceivedAtMs { get; set; }
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

[FunctionOutput]
public sealed class HeadOutput : IFunctionOutputDTO
{
    [Parameter("bytes32", "headerHash", 1)] public byte[] HeaderHash { get; set; } = new byte[32];
    [Parameter("uint64", "number", 2)] public ulong Number { get; set; }
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

[Function("drawnProposerForSlot", "address")]
public sealed class DrawnProposerForSlotFunction : FunctionMessage
{
    [Parameter("uint64", "slot", 1)] public ulong Slot { get; set; }
}

/// <summary>seedOf(epoch) = keccak256(abi.encode(R, uint256(epoch))).</summary>
[Function("seedOf", "bytes32")]
public sealed class SeedOfFunction : FunctionMessage
{
    [Parameter("uint64", "epoch", 1)] public ulong Epoch { get; set; }
}

[Function("seedIsFinal", "bool")]
public sealed class SeedIsFinalFunction : FunctionMessage
{
    [Parameter("uint64", "epoch", 1)] public ulong Epoch { get; set; }
}

/// <summary>recordSeed(): records prevrandao for currentEpoch() + 1 (first half of the current epoch only).</summary>
[Function("recordSeed", "uint64")] public sealed class RecordSeedFunction : FunctionMessage;

[Function("join")] public sealed class JoinFunction : FunctionMessage;
[Function("totalBurned", "uint256")] public sealed class TotalBurnedFunction : FunctionMessage;

// ---- escrow ----

[Function("earningsOf", "uint256")]
public sealed class EarningsOfFunction : FunctionMessage
{
    [Parameter("address", "payee", 1)] public string Payee { get; set; } = "";
}

/// <summary>deposit(relay): collateral allocated to one relay.</summary>
[Function("deposit")]
public sealed class DepositFunction : FunctionMessage
{
    [Parameter("address", "relay", 1)] public string Relay { get; set; } = "";
}

[Function("WITHDRAWAL_DELAY", "uint64")] public sealed class WithdrawalDelayFunction : FunctionMessage;

[Function("isBarred", "bool")]
public sealed class IsBarredFunction : FunctionMessage
{
    [Parameter("address", "builder", 1)] public string Builder { get; set; } = "";
}

[Function("totalShortfallOf", "uint256")]
public sealed class TotalShortfallOfFunction : FunctionMessage
{
    [Parameter("address", "builder", 1)] public string Builder { get; set; } = "";
}

// ---- events ----

[Event("HeaderPosted")]
public sealed class HeaderPostedEvent : IEventDTO
{
    [Parameter("uint64", "slot", 1, true)] public ulong Slot { get; set; }
    [Parameter("bytes32", "headerHash", 2, true)] public byte[] HeaderHash { get; set; } = new byte[32];
    [Parameter("address", "proposer", 3, true)] public string Proposer { get; set; } = "";
    [Parameter("address", "builder", 4, false)] public string Builder { get; set; } = "";
    [Parameter("address", "relay", 5, false)] public string Relay { get; set; } = "";
    [Parameter("uint256", "price", 6, false)] public BigInteger Price { get; set; }
    [Parameter("bytes32", "bidsRoot", 7, false)] public byte[] BidsRoot { get; set; } = new byte[32];
    [Parameter("bytes", "proposalSignature", 8, false)] public byte[] ProposalSignature { get; set; } = [];
}

[Event("Deposited")]
public sealed class DepositedEvent : IEventDTO
{
    [Parameter("address", "builder", 1, true)] public string Builder { get; set; } = "";
    [Parameter("address", "relay", 2, true)] public string Relay { get; set; } = "";
    [Parameter("address", "from", 3, false)] public string From { get; set; } = "";
    [Parameter("uint256", "amount", 4, false)] public BigInteger Amount { get; set; }
}

[Event("HeaderSkipped")]
public sealed class HeaderSkippedEvent : IEventDTO
{
    [Parameter("uint64", "slot", 1, true)] public ulong Slot { get; set; }
    [Parameter("bytes32", "headerHash", 2, true)] public byte[] HeaderHash { get; set; } = new byte[32];
}

[Event("EquivocationReported")]
public sealed class EquivocationReportedEvent : IEventDTO
{
    [Parameter("uint64", "slot", 1, true)] public ulong Slot { get; set; }
    [Parameter("address", "proposer", 2, true)] public string Proposer { get; set; } = "";
    [Parameter("address", "reporter", 3, true)] public string Reporter { get; set; } = "";
    [Parameter("bytes32", "proposalHashA", 4, false)] public byte[] ProposalHashA { get; set; } = new byte[32];
    [Parameter("bytes32", "proposalHashB", 5, false)] public byte[] ProposalHashB { get; set; } = new byte[32];
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

/// <summary>One proposed header ready for <c>postHeaders</c>, with everything L1 needs to judge its settlement.</summary>
public sealed record PostItem(Header Header, Signature BuilderSignature, Signature ProposalSignature, byte[] Payload, Settlement Settlement)
{
    public ulong Slot => Header.Slot;
    public BigInteger Price => Settlement.Price;
    public Hash32 BidsRoot => Settlement.BidsRoot;

    public PostedHeaderDto ToDto() => new()
    {
        Header = HeaderDto.From(Header), BuilderSignature = BuilderSignature.ToArray(), ProposalSignature = ProposalSignature.ToArray(),
        Payload = Payload, Price = Settlement.Price, BidsRoot = Settlement.BidsRoot.ToArray(), BidCount = Settlement.BidCount,
        RelaySignature = Settlement.RelaySignature is { } r ? r.ToArray() : [],
        RunnerUp = Settlement.RunnerUp is { } e ? [RunnerUpDto.From(e)] : [],
    };
}

/// <summary>A decoded <c>HeaderPosted</c> log (version 2: with the relay and the proposal signature, so that the log is equivocation evidence).</summary>
public sealed record HeaderPostedLog(ulong Slot, Hash32 HeaderHash, Address Proposer, Address Builder, Address Relay, BigInteger Price, Hash32 BidsRoot,
    Signature? ProposalSignature, string TxHash, ulong BlockNumber, ulong LogIndex)
{
    /// <summary>The Proposal the log's signature is over.</summary>
    public Proposal Proposal => new(Slot, HeaderHash, Price, BidsRoot, Relay);
}

public sealed record EquivocationReportedLog(ulong Slot, Address Proposer, Address Reporter, Hash32 ProposalHashA, Hash32 ProposalHashB, BigInteger Burned,
    string TxHash, ulong BlockNumber);

public sealed record ProposerSlashedLog(Address Proposer, Address Reporter, BigInteger Burned, ulong ExitEpoch, string TxHash, ulong BlockNumber);

/// <summary>Registry status of a proposer (proposerInfo).</summary>
public enum ProposerStatus : byte { None = 0, Active = 1, Exiting = 2, Slashed = 3 }

public sealed record ProposerInfo(BigInteger Bond, ProposerStatus Status, ulong ActivationEpoch, ulong ExitEpoch, ulong WithdrawableAt);
