using PbsMarket.Core;
using PbsMarket.Relay.Chain;

namespace PbsMarket.Relay.Auctions;

/// <summary>The market's fixed parameters and clock, shared by every part of the relay.</summary>
public sealed class Market
{
    public Market(RelayOptions o, TimeProvider time)
    {
        Options = o;
        Clock = new SlotClock(time, (ulong)o.GenesisMs, (ulong)o.SlotMs, (ulong)o.CloseOffsetMs);
        Domain = Eip712Domain.PbsMarket(o.L1ChainId, Address.Parse(o.Inbox));
        Reserve = o.Reserve;
        L2ChainId = o.L2ChainId;
    }

    public RelayOptions Options { get; }
    public SlotClock Clock { get; }
    public Eip712Domain Domain { get; }
    public BigInteger Reserve { get; }
    public BigInteger L2ChainId { get; }
    public PriceRule PriceRule => Options.PriceRule;

    public ulong EpochOf(ulong slot) => slot / (ulong)Options.SlotsPerEpoch;

    /// <summary>
    /// The slot's scheduled proposer: the seeded draw from the epoch's set (ProposerSchedule, as L1's proposerForSlot),
    /// or null while L1 has not told us the epoch's set and seed, and for a slashed proposer (its slots are empty).
    /// </summary>
    public Address? ProposerOf(ulong slot, IChainView chain)
    {
        var epoch = EpochOf(slot);
        var set = chain.ProposerSet(epoch);
        if (set is not { Count: > 0 } || chain.Seed(epoch) is not { } seed) return null;
        var drawn = ProposerSchedule.ProposerFor(slot, seed, set);
        return chain.ProposerStanding(drawn) is { Slashed: true } ? null : drawn;
    }

    /// <summary>
    /// An auction opened before its proposer was slashed is neither served nor bid on once the relay knows (its slots stay
    /// empty, as for auctions never opened): the refusal, or null while the auction's proposer is in good standing.
    /// </summary>
    public Api.Rejection? ProposerGone(ulong slot, Address auctionProposer, IChainView chain) =>
        chain.ProposerStanding(auctionProposer) is { Slashed: true }
            ? new Api.Rejection("unavailable", $"the auction for slot {slot} is not open on this relay (slot {slot}'s proposer {auctionProposer} is slashed: its slots stay empty)")
            : null;

    /// <summary>Why <see cref="ProposerOf"/> has no proposer for the slot, in words for refusals and missed slots.</summary>
    public string NoProposerReason(ulong slot, IChainView chain)
    {
        var epoch = EpochOf(slot);
        var set = chain.ProposerSet(epoch);
        if (set is not { Count: > 0 } || chain.Seed(epoch) is not { } seed)
            return $"the proposer set of epoch {epoch} is not known yet (L1: {chain.Problem ?? "syncing"})";
        var drawn = ProposerSchedule.ProposerFor(slot, seed, set);
        return chain.ProposerStanding(drawn) is { Slashed: true }
            ? $"slot {slot}'s proposer {drawn} is slashed: its slots stay empty"
            : $"slot {slot}'s proposer is not known yet";
    }
}
