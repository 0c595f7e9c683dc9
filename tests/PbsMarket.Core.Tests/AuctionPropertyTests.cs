using System.Numerics;
using FsCheck;
using FsCheck.Fluent;

namespace PbsMarket.Core.Tests;

public class AuctionPropertyTests
{
    private static readonly Hash32 Head = Keccak.Hash("head"u8);
    private static readonly Hash32 OldHead = Keccak.Hash("old head"u8);
    private static readonly Address[] Builders = Enumerable.Range(1, 4).Select(i => Address.FromBytes(Enumerable.Repeat((byte)i, 20).ToArray())).ToArray();

    // Seeded from PBS_FSCHECK_SEED or at random, and logged: see PropertySeed.

    /// <summary>Small ranges so that ties in value, time and builder are common.</summary>
    private static readonly Gen<(int Builder, int Value, int Time, bool OnHead, int Salt)> OneBid =
        from b in Gen.Choose(0, Builders.Length - 1)
        from v in Gen.Choose(0, 20)
        from t in Gen.Choose(0, 10)
        from p in Gen.Choose(0, 4)
        from s in Gen.Choose(0, 1_000_000)
        select (b, v, t, p != 0, s);

    private static readonly Gen<AcceptedBid[]> Bids =
        Gen.ArrayOf(OneBid).Select(raw => raw.Select((r, i) => new AcceptedBid(
            Keccak.Hash(BitConverter.GetBytes((long)r.Salt << 20 | (long)i)),
            Builders[r.Builder], r.Value, (ulong)r.Time, r.OnHead ? Head : OldHead, i, 21_000, 1)).ToArray());

    private static readonly Gen<(AcceptedBid[] Bids, int Reserve, int Seed)> Cases =
        from b in Bids from r in Gen.Choose(0, 12) from s in Gen.Choose(0, int.MaxValue - 1) select (b, r, s);

    private static void ForAll(Func<(AcceptedBid[] Bids, int Reserve, int Seed), bool> property) =>
        PropertySeed.Run(300, Prop.ForAll(Cases.ToArbitrary(), property));

    [Fact]
    public void Winner_never_below_reserve_and_on_the_head() => ForAll(c =>
    {
        foreach (var rule in new[] { PriceRule.FirstPrice, PriceRule.SecondPrice })
        {
            var o = AuctionRules.Resolve(c.Bids, Head, c.Reserve, rule);
            if (o.Winner is { } w && (w.Value < c.Reserve || w.ParentHash != Head)) return false;
            if (o.Eligible.Any(b => b.Value < c.Reserve || b.ParentHash != Head)) return false;
        }
        return true;
    });

    [Fact]
    public void Price_between_reserve_and_winner_value() => ForAll(c =>
    {
        foreach (var rule in new[] { PriceRule.FirstPrice, PriceRule.SecondPrice })
        {
            var o = AuctionRules.Resolve(c.Bids, Head, c.Reserve, rule);
            if (o.Winner is null) { if (!o.Price.IsZero) return false; continue; }
            if (o.Price > o.Winner.Value || o.Price < c.Reserve) return false;
        }
        return true;
    });

    [Fact]
    public void Second_price_never_exceeds_first_price_and_same_winner() => ForAll(c =>
    {
        var first = AuctionRules.Resolve(c.Bids, Head, c.Reserve, PriceRule.FirstPrice);
        var second = AuctionRules.Resolve(c.Bids, Head, c.Reserve, PriceRule.SecondPrice);
        return second.Price <= first.Price && Equals(first.Winner, second.Winner);
    });

    [Fact]
    public void Outcome_independent_of_presentation_order() => ForAll(c =>
    {
        var shuffled = c.Bids.ToArray();
        new Random(c.Seed).Shuffle(shuffled);
        foreach (var rule in new[] { PriceRule.FirstPrice, PriceRule.SecondPrice })
        {
            var a = AuctionRules.Resolve(c.Bids, Head, c.Reserve, rule);
            var b = AuctionRules.Resolve(shuffled, Head, c.Reserve, rule);
            if (!Equals(a.Winner, b.Winner) || a.Price != b.Price || !a.Eligible.SequenceEqual(b.Eligible)) return false;
        }
        return BidsMerkle.Root(c.Bids.Select(b => (b.HeaderHash, b.ReceivedAtMs))) ==
               BidsMerkle.Root(shuffled.Select(b => (b.HeaderHash, b.ReceivedAtMs)));
    });

    [Fact]
    public void A_builders_earlier_bids_never_win_once_it_bid_again() => ForAll(c =>
    {
        var o = AuctionRules.Resolve(c.Bids, Head, c.Reserve, PriceRule.FirstPrice);
        if (o.Winner is null) return true;
        var latest = c.Bids.Where(b => b.Builder == o.Winner.Builder).MaxBy(b => b.Sequence)!;
        return ReferenceEquals(latest, o.Winner) && o.Eligible.Select(b => b.Builder).Distinct().Count() == o.Eligible.Count;
    });

    [Fact]
    public void Winner_ranks_first_among_eligible() => ForAll(c =>
    {
        var o = AuctionRules.Resolve(c.Bids, Head, c.Reserve, PriceRule.SecondPrice);
        if (o.Winner is null) return o.Eligible.Count == 0;
        var best = o.Eligible.Max(b => b.Value);
        var second = o.Eligible.Where(b => b != o.Winner).Select(b => b.Value).DefaultIfEmpty(BigInteger.Zero).Max();
        return o.Winner.Value == best && o.Price == BigInteger.Max(second, c.Reserve) && o.Eligible.All(b => AuctionRules.Rank(o.Winner, b) <= 0);
    });

    [Fact]
    public void Root_changes_when_any_bid_changes()
    {
        var gen = from bids in Bids.Where(b => b.Length > 0)
                  from index in Gen.Choose(0, 1_000_000)
                  from changeTime in Gen.Elements(true, false)
                  select (bids, index, changeTime);
        PropertySeed.Run(300, Prop.ForAll(gen.ToArbitrary(), c =>
        {
            var leaves = c.bids.Select(b => (b.HeaderHash, b.ReceivedAtMs)).ToList();
            var i = c.index % leaves.Count;
            var changed = leaves.ToList();
            changed[i] = c.changeTime ? (leaves[i].HeaderHash, leaves[i].ReceivedAtMs + 1) : (Keccak.Hash(leaves[i].HeaderHash.Span), leaves[i].ReceivedAtMs);
            return BidsMerkle.Root(leaves) != BidsMerkle.Root(changed);
        }));
    }

    [Fact]
    public void Every_proof_verifies_and_wrong_leaf_does_not() => PropertySeed.Run(60, Prop.ForAll(Bids.ToArbitrary(), bids =>
    {
        var leaves = bids.Select(b => (b.HeaderHash, b.ReceivedAtMs)).ToList();
        var tree = BidsMerkle.Tree(leaves);
        var root = BidsMerkle.Root(leaves);
        foreach (var (h, t) in leaves)
        {
            var proof = BidsMerkle.ProofFromTree(tree, BidsMerkle.LeafHash(h, t))!;
            if (!BidsMerkle.Verify(root, h, t, proof) || BidsMerkle.Verify(root, h, t + 1, proof)) return false;
        }
        return true;
    }));
}

public class AuctionRuleExamples
{
    private static readonly Hash32 Head = Keccak.Hash("head"u8);
    private static readonly Address A = Address.Parse("0x" + new string('a', 40));
    private static readonly Address B = Address.Parse("0x" + new string('b', 40));
    private static readonly Address C = Address.Parse("0x" + new string('c', 40));

    private static AcceptedBid Bid(Address builder, int value, ulong at, long seq, Hash32? parent = null, string salt = "") =>
        new(Keccak.Hash(System.Text.Encoding.UTF8.GetBytes($"{builder}{value}{at}{seq}{salt}")), builder, value, at, parent ?? Head, seq, 21_000, 1);

    [Fact]
    public void No_bids_no_winner()
    {
        var o = AuctionRules.Resolve([], Head, 0, PriceRule.SecondPrice);
        Assert.Null(o.Winner);
        Assert.Equal(BigInteger.Zero, o.Price);
        Assert.Equal(Hash32.Zero, BidsMerkle.Root([]));
    }

    [Fact]
    public void Second_price_is_the_best_other_builder_or_reserve()
    {
        var bids = new[] { Bid(A, 10, 1, 1), Bid(B, 7, 2, 2), Bid(C, 3, 3, 3) };
        Assert.Equal(7, AuctionRules.Resolve(bids, Head, 5, PriceRule.SecondPrice).Price);
        Assert.Equal(10, AuctionRules.Resolve(bids, Head, 5, PriceRule.FirstPrice).Price);
        Assert.Equal(8, AuctionRules.Resolve(bids, Head, 8, PriceRule.SecondPrice).Price);
        // The winner's own earlier, higher-than-others bid does not set its price.
        var own = new[] { Bid(A, 9, 1, 1), Bid(A, 10, 2, 2), Bid(B, 4, 3, 3) };
        Assert.Equal(4, AuctionRules.Resolve(own, Head, 0, PriceRule.SecondPrice).Price);
    }

    [Fact]
    public void Latest_bid_replaces_even_a_higher_earlier_one()
    {
        var bids = new[] { Bid(A, 100, 1, 1), Bid(B, 50, 2, 2), Bid(A, 10, 3, 3) };
        var o = AuctionRules.Resolve(bids, Head, 0, PriceRule.FirstPrice);
        Assert.Equal(B, o.Winner!.Builder);
        Assert.Equal(2, o.Eligible.Count);
    }

    [Fact]
    public void Latest_bid_on_an_old_head_drops_the_builder_out()
    {
        var old = Keccak.Hash("old"u8);
        var bids = new[] { Bid(A, 100, 1, 1), Bid(A, 100, 2, 2, old), Bid(B, 5, 3, 3) };
        var o = AuctionRules.Resolve(bids, Head, 0, PriceRule.FirstPrice);
        Assert.Equal(B, o.Winner!.Builder);
    }

    [Fact]
    public void Ties_go_to_the_earlier_bid_then_the_lower_hash()
    {
        var early = Bid(A, 10, 5, 2);
        var late = Bid(B, 10, 6, 1);
        Assert.Same(early, AuctionRules.Resolve([late, early], Head, 0, PriceRule.FirstPrice).Winner);
        var x = Bid(A, 10, 5, 1, salt: "x");
        var y = Bid(B, 10, 5, 2, salt: "y");
        var lower = x.HeaderHash < y.HeaderHash ? x : y;
        Assert.Same(lower, AuctionRules.Resolve([x, y], Head, 0, PriceRule.FirstPrice).Winner);
        // Second price on a tie: the loser bid the same, so the winner pays its value.
        Assert.Equal(10, AuctionRules.Resolve([x, y], Head, 0, PriceRule.SecondPrice).Price);
    }

    [Fact]
    public void Under_reserve_is_excluded()
    {
        var o = AuctionRules.Resolve([Bid(A, 4, 1, 1)], Head, 5, PriceRule.FirstPrice);
        Assert.Null(o.Winner);
        Assert.Empty(o.Eligible);
    }

    [Fact]
    public void Price_rule_wire_names()
    {
        Assert.Equal("first_price", PriceRule.FirstPrice.ToWire());
        Assert.True(AuctionRules.TryParsePriceRule("second_price", out var r));
        Assert.Equal(PriceRule.SecondPrice, r);
        Assert.False(AuctionRules.TryParsePriceRule("Second_Price", out _));
    }
}
