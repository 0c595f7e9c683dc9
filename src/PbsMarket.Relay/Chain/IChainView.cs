using PbsMarket.Core;

namespace PbsMarket.Relay.Chain;

/// <summary>What the relay knows of L1: the proposer set per epoch and each builder's escrowed collateral.</summary>
public interface IChainView
{
    /// <summary>The ordered active proposer set of an epoch, or null when not (yet) known.</summary>
    IReadOnlyList<Address>? ProposerSet(ulong epoch);

    /// <summary>The builder's collateral in the L1 escrow (wei), fetched on first use.</summary>
    ValueTask<BigInteger> CollateralAsync(Address builder, CancellationToken ct);

    /// <summary>The L1 inbox's head (the last header posted, with its slot), or null until it has been read.</summary>
    ChainHead? InboxHead { get; }

    /// <summary>Null when healthy; otherwise why L1 data is not usable right now.</summary>
    string? Problem { get; }
}
