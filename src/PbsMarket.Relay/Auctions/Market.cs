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

    /// <summary>The slot's scheduled proposer, or null while L1 has not told us the epoch's set.</summary>
    public Address? ProposerOf(ulong slot, IChainView chain)
    {
        var set = chain.ProposerSet(EpochOf(slot));
        return set is { Count: > 0 } ? ProposerSchedule.ProposerFor(slot, set) : null;
    }
}
