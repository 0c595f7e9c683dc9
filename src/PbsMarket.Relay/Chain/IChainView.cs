using PbsMarket.Core;

namespace PbsMarket.Relay.Chain;

/// <summary>What the relay knows of L1: the proposer set, seed and bonds per epoch, and each builder's collateral at this relay.</summary>
public interface IChainView
{
    /// <summary>The ordered active proposer set of an epoch, or null when not (yet) known.</summary>
    IReadOnlyList<Address>? ProposerSet(ulong epoch);

    /// <summary>The schedule seed of an epoch (L1's seedOf), or null when not (yet) known.</summary>
    Hash32? Seed(ulong epoch);

    /// <summary>A proposer's L1 bond and whether it is slashed, or null when not known.</summary>
    (BigInteger Bond, bool Slashed)? ProposerStanding(Address proposer);

    /// <summary>
    /// The builder's collateral allocated to this relay in the L1 escrow (wei), and whether it is barred; fetched on first
    /// use, then refreshed every half slot, and read again (at that block or later) when it was read at an L1 block before
    /// <paramref name="atLeastBlock"/> (the ledger released debts L1 had decided by that block, so it may have charged them).
    /// </summary>
    ValueTask<(BigInteger Collateral, bool Barred)> CollateralAsync(Address builder, ulong atLeastBlock, CancellationToken ct);

    /// <summary>The L1 inbox's head (the last header posted, with its slot), or null until it has been read.</summary>
    ChainHead? InboxHead { get; }

    /// <summary>Null when healthy; otherwise why L1 data is not usable right now.</summary>
    string? Problem { get; }
}
