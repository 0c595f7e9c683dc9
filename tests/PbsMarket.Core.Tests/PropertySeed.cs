using FsCheck;
using FsCheck.Fluent;
using Microsoft.FSharp.Core;

namespace PbsMarket.Core.Tests;

/// <summary>
/// The seed of the property tests: PBS_FSCHECK_SEED when set (to replay a run), otherwise a fresh random one.
/// Each property logs the seed it ran with (test output, and FsCheck's own failure message carries it too), so a
/// failure can be replayed with <c>PBS_FSCHECK_SEED=&lt;seed&gt; scripts/test.sh --filter FullyQualifiedName~AuctionPropertyTests</c>.
/// </summary>
public static class PropertySeed
{
    public static ulong Value { get; } = ulong.TryParse(Environment.GetEnvironmentVariable("PBS_FSCHECK_SEED"), out var s)
        ? s
        : (ulong)Random.Shared.NextInt64(1, long.MaxValue);

    /// <summary>A config that replays <see cref="Value"/> (logged), throwing on failure with the seed in the message.</summary>
    public static Config MakeConfig(int maxTest)
    {
        var line = $"FsCheck seed {Value} (replay: PBS_FSCHECK_SEED={Value})";
        TestContext.Current.TestOutputHelper?.WriteLine(line);
        Console.WriteLine(line);
        return Config.QuickThrowOnFailure.WithMaxTest(maxTest)
            .WithReplay(FSharpOption<Replay>.Some(new Replay(new Rnd(Value), FSharpOption<int>.None)));
    }

    /// <summary>Runs a property, and on failure says which seed replays it.</summary>
    public static void Run(int maxTest, Property property)
    {
        try
        {
            Check.One(MakeConfig(maxTest), property);
        }
        catch (Exception e)
        {
            throw new InvalidOperationException($"property failed with PBS_FSCHECK_SEED={Value} (set it to replay):\n{e.Message}", e);
        }
    }
}
