namespace PbsMarket.Builder.Demo;

/// <summary>One bid a strategy wants to place: when (unix ms) and how much (wei).</summary>
public readonly record struct PlannedBid(long AtMs, BigInteger Value);

/// <summary>How much a demo builder bids and when, given the auction window and what its block is worth.</summary>
public interface IBidStrategy
{
    string Name { get; }
    IReadOnlyList<PlannedBid> Plan(long opensAtMs, long closesAtMs, BigInteger blockValue, BigInteger reserve);
}

public static class BidStrategies
{
    public static readonly string[] Names = ["steady", "sniper", "incremental"];

    public static IBidStrategy Create(string name) => name.ToLowerInvariant() switch
    {
        "steady" => new SteadyStrategy(),
        "sniper" => new SniperStrategy(),
        "incremental" => new IncrementalStrategy(),
        _ => throw new ArgumentException($"unknown strategy \"{name}\" (one of: {string.Join(", ", Names)})", nameof(name)),
    };

    internal static BigInteger Percent(BigInteger v, int percent) => v * percent / 100;
    internal static BigInteger AtLeast(BigInteger v, BigInteger reserve) => v < reserve ? reserve : v;
}

/// <summary>Bids once, early (100 ms into the window), half of its block's value.</summary>
public sealed class SteadyStrategy(int percent = 50, long delayMs = 100) : IBidStrategy
{
    public string Name => "steady";
    public IReadOnlyList<PlannedBid> Plan(long opensAtMs, long closesAtMs, BigInteger blockValue, BigInteger reserve) =>
        [new(opensAtMs + delayMs, BidStrategies.AtLeast(BidStrategies.Percent(blockValue, percent), reserve))];
}

/// <summary>Bids once, late (<paramref name="leadMs"/> before the close), slightly above what it expects the others to
/// bid (55% of its own block's value, plus 1 wei).</summary>
public sealed class SniperStrategy(int percent = 55, long leadMs = 120) : IBidStrategy
{
    public string Name => "sniper";
    public IReadOnlyList<PlannedBid> Plan(long opensAtMs, long closesAtMs, BigInteger blockValue, BigInteger reserve) =>
        [new(Math.Max(opensAtMs, closesAtMs - leadMs), BidStrategies.AtLeast(BidStrategies.Percent(blockValue, percent) + 1, reserve))];
}

/// <summary>Starts at 20% of its block's value and raises by 10 points every <paramref name="stepMs"/> up to a cap of 70%,
/// stopping 60 ms before the close.</summary>
public sealed class IncrementalStrategy(int startPercent = 20, int stepPercent = 10, int capPercent = 70, long stepMs = 200) : IBidStrategy
{
    public string Name => "incremental";
    public IReadOnlyList<PlannedBid> Plan(long opensAtMs, long closesAtMs, BigInteger blockValue, BigInteger reserve)
    {
        var bids = new List<PlannedBid>();
        var percent = startPercent;
        for (var at = opensAtMs + 50; at < closesAtMs - 60 && percent <= capPercent; at += stepMs, percent += stepPercent)
            bids.Add(new(at, BidStrategies.AtLeast(BidStrategies.Percent(blockValue, percent), reserve)));
        return bids;
    }
}
