using System.Numerics;

namespace PbsMarket.Core;

/// <summary>An L2 block header; its hash is the EIP-712 hashStruct (see <see cref="Eip712.HashStruct(Header)"/>).</summary>
public sealed record Header(
    BigInteger L2ChainId,
    ulong Slot,
    ulong Number,
    Hash32 ParentHash,
    ulong TimestampMs,
    ulong GasLimit,
    ulong GasUsed,
    Hash32 PayloadHash,
    Address Builder,
    Address Proposer,
    BigInteger Value)
{
    /// <summary>The header hash (the L2 block hash) = EIP-712 hashStruct(Header).</summary>
    public Hash32 Hash() => Eip712.HashStruct(this);
}

/// <summary>
/// Signed by the proposer of a slot to commit to one header and the settlement it accepted (protocol version 2):
/// the price and bids root of the auction, and the relay that signed its <see cref="AuctionResult"/>. A block
/// without an auction (the proposer's own fallback block) has price 0, bids root 0 and relay 0.
/// </summary>
public sealed record Proposal(ulong Slot, Hash32 HeaderHash, BigInteger Price, Hash32 BidsRoot, Address Relay)
{
    /// <summary>The proposal of a block no auction produced (price 0, bids root 0, relay 0).</summary>
    public static Proposal Fallback(ulong slot, Hash32 headerHash) => new(slot, headerHash, BigInteger.Zero, Hash32.Zero, Address.Zero);

    /// <summary>True for a proposal without a relay's settlement.</summary>
    public bool IsFallback => Relay.IsZero;
}

/// <summary>Signed by a proposer to ask the relay for its slot's winning header.</summary>
public sealed record HeaderRequest(ulong Slot, Address Proposer);

/// <summary>Signed by the relay for every accepted bid.</summary>
public sealed record BidReceipt(Hash32 HeaderHash, ulong ReceivedAtMs);

/// <summary>Signed by the relay for every closed auction.</summary>
public sealed record AuctionResult(ulong Slot, Hash32 HeaderHash, BigInteger Price, Hash32 BidsRoot, uint BidCount);

/// <summary>An error with a stable machine-readable code and a precise human message.</summary>
public sealed record ProtocolError(string Code, string Message)
{
    public override string ToString() => $"{Code}: {Message}";
}

/// <summary>Error codes produced by the core.</summary>
public static class ErrorCodes
{
    public const string Malformed = "malformed";
    public const string PayloadTooLarge = "payload_too_large";
    public const string InvalidPayload = "invalid_payload";
    public const string WrongChainId = "wrong_chain_id";
    public const string GasLimitExceeded = "gas_limit_exceeded";
    public const string InvalidGas = "invalid_gas";
    public const string OutOfRange = "out_of_range";
    public const string Unpostable = "unpostable";
    public const string StaleParent = "stale_parent";
    public const string FutureSlot = "future_slot";
    public const string TooEarly = "too_early";
    public const string TooLate = "too_late";
    public const string NotAfterHead = "not_after_head";
}
