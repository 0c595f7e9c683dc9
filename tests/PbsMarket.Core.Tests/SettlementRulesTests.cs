using System.Numerics;
using FsCheck;
using FsCheck.Fluent;

namespace PbsMarket.Core.Tests;

/// <summary>The settlement rules L1 applies (docs/settlement.md), and that every auction outcome satisfies them.</summary>
public class SettlementRulesTests
{
    private static readonly Eip712Domain Domain = Eip712Domain.PbsMarket(31337, Address.Parse("0x5fbdb2315678afecb367f032d93f642f64180aa3"));
    private static readonly Hash32 Head = Keccak.Hash("head"u8);
    private static readonly ProtocolKey Proposer = ProtocolKey.Generate();
    private static readonly ProtocolKey[] Builders = [.. Enumerable.Range(0, 4).Select(_ => ProtocolKey.Generate())];

    private static Header HeaderOf(ProtocolKey builder, BigInteger value, int salt) =>
        new(42069, 5, 2, Head, 10_000, 30_000_000, 21_000, Keccak.Hash(BitConverter.GetBytes(salt)), builder.Address, Proposer.Address, value);

    private sealed record SignedBid(Header Header, Signature Signature, AcceptedBid Accepted);

    private static List<SignedBid> Sign(IEnumerable<(int Builder, int Value)> raw)
    {
        var bids = new List<SignedBid>();
        var i = 0;
        foreach (var (b, v) in raw)
        {
            var h = HeaderOf(Builders[b], v, i);
            bids.Add(new SignedBid(h, Builders[b].Sign(Eip712.Digest(Domain, h)),
                new AcceptedBid(h.Hash(), h.Builder, v, (ulong)(1000 + i), Head, i, h.GasUsed, 1)));
            i++;
        }
        return bids;
    }

    /// <summary>The settlement the relay builds for an outcome (the relay's own code path uses the same Core calls).</summary>
    private static Settlement SettlementOf(IReadOnlyList<SignedBid> bids, AuctionOutcome o, PriceRule rule, BigInteger reserve)
    {
        var leaves = bids.Select(b => (b.Accepted.HeaderHash, b.Accepted.ReceivedAtMs)).ToList();
        var root = BidsMerkle.Root(leaves);
        RunnerUpEvidence? evidence = null;
        if (o.RunnerUp(rule, reserve) is { } r)
        {
            var signed = bids.Single(b => b.Accepted == r);
            evidence = new RunnerUpEvidence(signed.Header.GasLimit, signed.Header.GasUsed, signed.Header.PayloadHash, signed.Header.Builder,
                r.ReceivedAtMs, signed.Signature, BidsMerkle.Proof(leaves, r.HeaderHash, r.ReceivedAtMs)!);
        }
        return new Settlement(o.Price, root, (uint)bids.Count, Signature.Parse("0x" + new string('1', 128) + "1b"), evidence);
    }

    private static readonly Gen<(int Builder, int Value)[]> RawBids =
        Gen.NonEmptyListOf(from b in Gen.Choose(0, Builders.Length - 1) from v in Gen.Choose(0, 20) select (b, v)).Select(l => l.Take(8).ToArray());

    [Fact]
    public void Every_auction_outcome_settles_under_the_L1_rules_and_no_other_price_does() =>
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(60), Prop.ForAll(RawBids.ToArbitrary(), Gen.Choose(0, 10).ToArbitrary(), (raw, reserveInt) =>
        {
            BigInteger reserve = reserveInt;
            var bids = Sign(raw);
            foreach (var rule in new[] { PriceRule.FirstPrice, PriceRule.SecondPrice })
            {
                var o = AuctionRules.Resolve(bids.Select(b => b.Accepted).ToList(), Head, reserve, rule);
                if (o.Winner is null) continue;
                var winner = bids.Single(b => b.Accepted == o.Winner).Header;
                var s = SettlementOf(bids, o, rule, reserve);
                var relay = Address.Parse("0x" + new string('7', 40));
                if (SettlementRules.Check(Domain, rule, reserve, winner, s, relay) is { } e) throw new Exception($"{rule}: {e}");
                // Any other price is refused, with or without the evidence.
                foreach (var other in new[] { BigInteger.Zero, o.Price - 1, o.Price + 1, winner.Value })
                {
                    if (other == o.Price || other < 0) continue;
                    if (SettlementRules.Check(Domain, rule, reserve, winner, s with { Price = other }, relay) is null)
                        throw new Exception($"{rule}: price {other} accepted, auction's is {o.Price}");
                }
            }
            return true;
        }));

    [Fact]
    public void Second_price_evidence_of_the_winners_own_builder_or_outside_the_root_is_refused()
    {
        var bids = Sign([(0, 10), (0, 9), (1, 7)]);
        var o = AuctionRules.Resolve(bids.Select(b => b.Accepted).ToList(), Head, 2, PriceRule.SecondPrice);
        var winner = bids.Single(b => b.Accepted == o.Winner).Header;
        var s = SettlementOf(bids, o, PriceRule.SecondPrice, 2);
        Assert.Equal(7, o.Price);
        var relay = Address.Parse("0x" + new string('7', 40));
        Assert.Null(SettlementRules.Check(Domain, PriceRule.SecondPrice, 2, winner, s, relay));

        // The winner's own earlier bid (9) as runner-up: same builder.
        var own = bids[1];
        var ownEvidence = s.RunnerUp! with { GasLimit = own.Header.GasLimit, PayloadHash = own.Header.PayloadHash, Builder = own.Header.Builder,
            ReceivedAtMs = own.Accepted.ReceivedAtMs, BuilderSignature = own.Signature };
        Assert.Equal(SettlementRules.BadRunnerUp, SettlementRules.Check(Domain, PriceRule.SecondPrice, 2, winner, s with { Price = 9, RunnerUp = ownEvidence }, relay)?.Code);
        // Another bids root: the proof fails.
        Assert.Equal(SettlementRules.BadRunnerUp, SettlementRules.Check(Domain, PriceRule.SecondPrice, 2, winner, s with { BidsRoot = Keccak.Hash("x"u8) }, relay)?.Code);
        // Evidence re-signed by nobody: the signature fails.
        Assert.Equal(SettlementRules.BadRunnerUp, SettlementRules.Check(Domain, PriceRule.SecondPrice, 2, winner,
            s with { RunnerUp = s.RunnerUp! with { BuilderSignature = ProtocolKey.Generate().Sign(Keccak.Hash("y"u8)) } }, relay)?.Code);
        // No evidence: only the reserve.
        Assert.Equal(SettlementRules.WrongPrice, SettlementRules.Check(Domain, PriceRule.SecondPrice, 2, winner, s with { RunnerUp = null }, relay)?.Code);
        Assert.Null(SettlementRules.Check(Domain, PriceRule.SecondPrice, 2, winner, s with { Price = 2, RunnerUp = null }, relay));
    }

    [Fact]
    public void A_block_without_an_auction_result_settles_only_as_the_proposers_own_at_nothing()
    {
        var own = HeaderOf(Builders[0], 0, 1) with { Builder = Proposer.Address, Proposer = Proposer.Address };
        Assert.Null(SettlementRules.Check(Domain, PriceRule.SecondPrice, 5, own, Settlement.None, Address.Zero));
        Assert.Equal(SettlementRules.MissingAuctionResult, SettlementRules.Check(Domain, PriceRule.SecondPrice, 5, own, Settlement.None with { Price = 1 }, Address.Zero)?.Code);
        var stolen = HeaderOf(Builders[0], 10, 1);
        Assert.Equal(SettlementRules.MissingAuctionResult, SettlementRules.Check(Domain, PriceRule.FirstPrice, 0, stolen, Settlement.None, Address.Zero)?.Code);
        Assert.Equal(Proposal.Fallback(5, own.Hash()), SettlementRules.ProposalFor(5, own.Hash(), Settlement.None, Address.Zero));
    }

    [Fact]
    public void Expected_price_follows_the_rule()
    {
        Assert.Equal(10, SettlementRules.ExpectedPrice(PriceRule.FirstPrice, 3, 10, 7));
        Assert.Equal(7, SettlementRules.ExpectedPrice(PriceRule.SecondPrice, 3, 10, 7));
        Assert.Equal(3, SettlementRules.ExpectedPrice(PriceRule.SecondPrice, 3, 10, null));
        Assert.True(SettlementRules.NeedsRunnerUp(PriceRule.SecondPrice, 3, 7));
        Assert.False(SettlementRules.NeedsRunnerUp(PriceRule.SecondPrice, 3, 3));
        Assert.False(SettlementRules.NeedsRunnerUp(PriceRule.FirstPrice, 3, 7));
        Assert.Equal(SettlementRules.BelowReserve, SettlementRules.CheckPrice(PriceRule.FirstPrice, 11, 10, 10, null)?.Code);
    }
}
