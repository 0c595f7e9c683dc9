using System.Numerics;

namespace PbsMarket.Core;

/// <summary>
/// The runner-up evidence of a second-price settlement: the runner-up's own signed <see cref="Header"/> fields (the
/// rest are the winner's: l2ChainId, slot, number, parentHash, timestampMs, proposer; value = the price), when the
/// relay received it, and its Merkle proof in the bids root. L1 rebuilds the header exactly as
/// <see cref="SettlementRules.RunnerUpHeader"/> does.
/// </summary>
public sealed record RunnerUpEvidence(
    ulong GasLimit,
    ulong GasUsed,
    Hash32 PayloadHash,
    Address Builder,
    ulong ReceivedAtMs,
    Signature BuilderSignature,
    IReadOnlyList<Hash32> Proof);

/// <summary>What a proposed header settles at: the price and bids root a relay signed, and the runner-up evidence.</summary>
public sealed record Settlement(BigInteger Price, Hash32 BidsRoot, uint BidCount, Signature? RelaySignature, RunnerUpEvidence? RunnerUp)
{
    /// <summary>The settlement of a block no auction produced.</summary>
    public static Settlement None { get; } = new(BigInteger.Zero, Hash32.Zero, 0, null, null);
}

/// <summary>
/// The settlement rules of protocol version 2 (docs/settlement.md, "What L1 checks"), shared by the relay (which
/// prices the auction), the proposer client (which signs only a settlement L1 will accept) and anyone posting. The
/// Solidity twin is the inbox's price-rule and runner-up checks.
/// </summary>
public static class SettlementRules
{
    public const string WrongPrice = "wrong_price";
    public const string BelowReserve = "below_reserve";
    public const string MissingAuctionResult = "missing_auction_result";
    public const string BadRunnerUp = "bad_runner_up";

    /// <summary>
    /// The price L1 expects: first price = the winner's value; second price = the runner-up's value (the best of the
    /// other builders' eligible bids), or the reserve when there is none, and never below the reserve.
    /// </summary>
    public static BigInteger ExpectedPrice(PriceRule rule, BigInteger reserve, BigInteger winnerValue, BigInteger? runnerUpValue) => rule switch
    {
        PriceRule.FirstPrice => winnerValue,
        PriceRule.SecondPrice => runnerUpValue is { } r ? BigInteger.Max(r, reserve) : reserve,
        _ => throw new ArgumentOutOfRangeException(nameof(rule)),
    };

    /// <summary>
    /// Whether a settlement at <paramref name="price"/> must carry runner-up evidence: second price above the reserve
    /// (at the reserve, L1 needs none, so none is posted).
    /// </summary>
    public static bool NeedsRunnerUp(PriceRule rule, BigInteger reserve, BigInteger price) => rule == PriceRule.SecondPrice && price > reserve;

    /// <summary>
    /// L1's price-rule check (item check 8): null when <paramref name="price"/> is what L1 accepts for a winner of
    /// <paramref name="winnerValue"/> with (or without) a runner-up of <paramref name="runnerUpValue"/>.
    /// </summary>
    public static ProtocolError? CheckPrice(PriceRule rule, BigInteger reserve, BigInteger winnerValue, BigInteger price, BigInteger? runnerUpValue)
    {
        if (winnerValue < reserve) return new(BelowReserve, $"value {winnerValue} is below the reserve {reserve}");
        switch (rule)
        {
            case PriceRule.FirstPrice:
                if (runnerUpValue is not null) return new(BadRunnerUp, "a first-price settlement carries no runner-up");
                return price == winnerValue ? null : new(WrongPrice, $"first price: expected {winnerValue}, got {price}");
            case PriceRule.SecondPrice:
                if (runnerUpValue is not { } r)
                    return price == reserve ? null : new(WrongPrice, $"second price without a runner-up: expected the reserve {reserve}, got {price}");
                if (r < reserve) return new(WrongPrice, $"runner-up value {r} is below the reserve {reserve}");
                if (r > winnerValue) return new(WrongPrice, $"runner-up value {r} is above the winner's {winnerValue}");
                return price == r ? null : new(WrongPrice, $"second price: expected the runner-up's {r}, got {price}");
            default:
                throw new ArgumentOutOfRangeException(nameof(rule));
        }
    }

    /// <summary>The runner-up's header as L1 rebuilds it: the winner's slot fields, the evidence's own, value = price.</summary>
    public static Header RunnerUpHeader(Header winner, BigInteger price, RunnerUpEvidence e)
    {
        ArgumentNullException.ThrowIfNull(winner);
        ArgumentNullException.ThrowIfNull(e);
        return new Header(winner.L2ChainId, winner.Slot, winner.Number, winner.ParentHash, winner.TimestampMs, e.GasLimit, e.GasUsed,
            e.PayloadHash, e.Builder, winner.Proposer, price);
    }

    /// <summary>L1's runner-up check (item check 9): another builder's signed header for the same slot and parent, in the bids root.</summary>
    public static ProtocolError? CheckRunnerUp(Eip712Domain domain, Header winner, BigInteger price, Hash32 bidsRoot, RunnerUpEvidence e)
    {
        ArgumentNullException.ThrowIfNull(domain);
        ArgumentNullException.ThrowIfNull(e);
        if (e.Builder == winner.Builder) return new(BadRunnerUp, $"the runner-up's builder {e.Builder} is the winner's");
        var header = RunnerUpHeader(winner, price, e);
        var hash = header.Hash();
        if (!SignatureRecovery.Verify(Eip712.Digest(domain, hash), e.BuilderSignature, e.Builder))
            return new(BadRunnerUp, $"the runner-up's signature does not recover to {e.Builder}");
        if (!BidsMerkle.Verify(bidsRoot, hash, e.ReceivedAtMs, e.Proof))
            return new(BadRunnerUp, $"the runner-up {hash} is not a leaf of the bids root {bidsRoot}");
        return null;
    }

    /// <summary>
    /// Every settlement check L1 applies that does not need L1 state (the relay's registration and bond, and the
    /// escrow, are L1's): a fallback block settles at nothing; an auctioned one at the price rule's price, with the
    /// runner-up evidence it needs. <paramref name="relay"/> is the recovered signer of the AuctionResult (zero: none).
    /// </summary>
    public static ProtocolError? Check(Eip712Domain domain, PriceRule rule, BigInteger reserve, Header header, Settlement s, Address relay)
    {
        ArgumentNullException.ThrowIfNull(header);
        ArgumentNullException.ThrowIfNull(s);
        if (s.RelaySignature is null || relay.IsZero)
        {
            var ok = header.Builder == header.Proposer && s.Price.IsZero && s.BidsRoot.IsZero && s.BidCount == 0 && s.RunnerUp is null;
            return ok ? null : new(MissingAuctionResult, "without an auction result only the proposer's own block at price 0, bids root 0, no runner-up settles");
        }
        var runnerUpValue = s.RunnerUp is null ? (BigInteger?)null : s.Price;
        if (CheckPrice(rule, reserve, header.Value, s.Price, runnerUpValue) is { } priceError) return priceError;
        return s.RunnerUp is null ? null : CheckRunnerUp(domain, header, s.Price, s.BidsRoot, s.RunnerUp);
    }

    /// <summary>The signer of a settlement's AuctionResult for <paramref name="headerHash"/>, or zero when unsigned or invalid.</summary>
    public static Address RelayOf(Eip712Domain domain, ulong slot, Hash32 headerHash, Settlement s)
    {
        ArgumentNullException.ThrowIfNull(s);
        if (s.RelaySignature is not { } sig) return Address.Zero;
        var digest = Eip712.Digest(domain, new AuctionResult(slot, headerHash, s.Price, s.BidsRoot, s.BidCount));
        return SignatureRecovery.TryRecover(digest, sig, out var signer) ? signer : Address.Zero;
    }

    /// <summary>The proposal a proposer signs for a header settled as <paramref name="s"/> by <paramref name="relay"/>.</summary>
    public static Proposal ProposalFor(ulong slot, Hash32 headerHash, Settlement s, Address relay) =>
        relay.IsZero ? Proposal.Fallback(slot, headerHash) : new Proposal(slot, headerHash, s.Price, s.BidsRoot, relay);
}
