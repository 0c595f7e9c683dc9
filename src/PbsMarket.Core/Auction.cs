using System.Numerics;

namespace PbsMarket.Core;

/// <summary>A bid the relay accepted. <paramref name="Sequence"/> is the acceptance order (later = larger).</summary>
public sealed record AcceptedBid(
    Hash32 HeaderHash,
    Address Builder,
    BigInteger Value,
    ulong ReceivedAtMs,
    Hash32 ParentHash,
    long Sequence,
    ulong GasUsed,
    int TxCount);

public enum PriceRule
{
    FirstPrice,
    SecondPrice,
}

/// <summary>The auction's outcome: the winner (null when no eligible bid), the price it pays, and every eligible bid in rank order.</summary>
public sealed record AuctionOutcome(AcceptedBid? Winner, BigInteger Price, IReadOnlyList<AcceptedBid> Eligible)
{
    /// <summary>
    /// The bid whose signed header is the second-price evidence L1 needs (the best of the other builders' eligible
    /// bids), or null when the settlement needs none (first price, or a price at the reserve).
    /// </summary>
    public AcceptedBid? RunnerUp(PriceRule rule, BigInteger reserve) =>
        Winner is not null && Eligible.Count > 1 && SettlementRules.NeedsRunnerUp(rule, reserve, Price) ? Eligible[1] : null;
}

/// <summary>The pure auction rules.</summary>
public static class AuctionRules
{
    public static string ToWire(this PriceRule rule) => rule switch
    {
        PriceRule.FirstPrice => "first_price",
        PriceRule.SecondPrice => "second_price",
        _ => throw new ArgumentOutOfRangeException(nameof(rule)),
    };

    public static bool TryParsePriceRule(string? text, out PriceRule rule)
    {
        switch (text)
        {
            case "first_price": rule = PriceRule.FirstPrice; return true;
            case "second_price": rule = PriceRule.SecondPrice; return true;
            default: rule = default; return false;
        }
    }

    /// <summary>
    /// Resolves an auction.
    /// 1. Each builder's latest bid (largest Sequence; ties by later ReceivedAtMs, then higher header hash) replaces
    ///    all its earlier ones, whatever head they were built on, so a replaced bid never comes back.
    /// 2. A latest bid whose parent is not <paramref name="head"/> drops out (the builder then has no bid).
    ///    So does a latest bid in <paramref name="failed"/> (its block failed execution at the close, docs/l2.md): the
    ///    builder's earlier bids do not come back either.
    /// 3. Bids under <paramref name="reserve"/> are excluded.
    /// 4. Rank: higher value, then earlier ReceivedAtMs, then lower header hash (unsigned big-endian).
    /// 5. Price: first price = winner's value; second price = max(the best value among the other builders'
    ///    eligible bids, reserve) - never above the winner's value, since the winner ranks first.
    /// </summary>
    // Run once per slot over thousands of bids: compiled optimized at once rather than starting unoptimized (tier 0).
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public static AuctionOutcome Resolve(IReadOnlyCollection<AcceptedBid> bids, Hash32 head, BigInteger reserve, PriceRule rule,
        IReadOnlySet<Hash32>? failed = null)
    {
        ArgumentNullException.ThrowIfNull(bids);
        var latest = new Dictionary<Address, AcceptedBid>();
        foreach (var bid in bids)
        {
            if (!latest.TryGetValue(bid.Builder, out var current) || IsLater(bid, current)) latest[bid.Builder] = bid;
        }

        var eligible = new List<AcceptedBid>(latest.Count);
        foreach (var bid in latest.Values)
        {
            if (bid.ParentHash == head && bid.Value >= reserve && failed?.Contains(bid.HeaderHash) != true) eligible.Add(bid);
        }
        eligible.Sort(Rank);

        if (eligible.Count == 0) return new AuctionOutcome(null, BigInteger.Zero, eligible);
        var winner = eligible[0];
        var price = SettlementRules.ExpectedPrice(rule, reserve, winner.Value, eligible.Count > 1 ? eligible[1].Value : null);
        return new AuctionOutcome(winner, price, eligible);
    }

    /// <summary>Rank order: better bids first.</summary>
    public static int Rank(AcceptedBid a, AcceptedBid b)
    {
        var c = b.Value.CompareTo(a.Value);
        if (c != 0) return c;
        c = a.ReceivedAtMs.CompareTo(b.ReceivedAtMs);
        if (c != 0) return c;
        return a.HeaderHash.CompareTo(b.HeaderHash);
    }

    private static bool IsLater(AcceptedBid a, AcceptedBid b)
    {
        if (a.Sequence != b.Sequence) return a.Sequence > b.Sequence;
        if (a.ReceivedAtMs != b.ReceivedAtMs) return a.ReceivedAtMs > b.ReceivedAtMs;
        return a.HeaderHash.CompareTo(b.HeaderHash) > 0;
    }
}
