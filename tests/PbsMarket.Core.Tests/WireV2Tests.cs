using System.Numerics;

namespace PbsMarket.Core.Tests;

/// <summary>The version-2 wire forms: proposals that say what was signed, heads that carry their settlement.</summary>
public class WireV2Tests
{
    static readonly Header H = new(901, 7, 3, Keccak.Hash("p"u8), 14_000, 30_000_000, 21_000, Keccak.Hash([0xc0]),
        Address.Parse("0x" + new string('1', 40)), Address.Parse("0x" + new string('2', 40)), 90_000);
    static readonly Signature Sig = Signature.Parse("0x" + new string('1', 128) + "1b");

    [Fact]
    public void A_proposal_submission_round_trips_with_its_settlement_and_refuses_a_partial_one()
    {
        var p = new Proposal(7, H.Hash(), 55_000, Keccak.Hash("root"u8), Address.Parse("0x" + new string('3', 40)));
        var bytes = Wire.ToUtf8(ProposalSubmission.Of(p, Sig), Wire.WriteProposalSubmission);
        var back = Wire.ParseProposalSubmission(bytes);
        Assert.True(back.IsOk, back.ToString());
        Assert.Equal(p, back.Value.Proposal);
        var bare = Wire.ParseProposalSubmission(Wire.ToUtf8(new ProposalSubmission(7, H.Hash(), Sig), Wire.WriteProposalSubmission));
        Assert.Null(bare.Value.Proposal);
        var partial = Wire.ParseProposalSubmission(System.Text.Encoding.UTF8.GetBytes(
            $"{{\"slot\":\"7\",\"header_hash\":\"{H.Hash()}\",\"signature\":\"{Sig}\",\"price\":\"1\"}}"));
        Assert.Equal(ErrorCodes.Malformed, partial.Error?.Code);
        Assert.Contains("go together", partial.Error!.Message);
    }

    [Fact]
    public void A_head_announcement_round_trips_with_settlement_and_runner_up_and_without_them_is_an_own_block()
    {
        var runnerUp = new RunnerUpEvidence(30_000_000, 21_000, Keccak.Hash("x"u8), Address.Parse("0x" + new string('4', 40)), 1234, Sig,
            [Keccak.Hash("a"u8), Keccak.Hash("b"u8)]);
        var s = new Settlement(55_000, Keccak.Hash("root"u8), 3, Sig, runnerUp);
        var a = new HeadAnnouncement(H, Sig, Sig, [0xc0], s);
        var back = Wire.ParseHeadAnnouncement(Wire.ToUtf8(a, Wire.WriteHeadAnnouncement));
        Assert.True(back.IsOk, back.ToString());
        var got = back.Value.Settlement!;
        Assert.Equal((s.Price, s.BidsRoot, s.BidCount, s.RelaySignature), (got.Price, got.BidsRoot, got.BidCount, got.RelaySignature));
        Assert.Equal(runnerUp with { Proof = [] }, got.RunnerUp! with { Proof = [] });
        Assert.Equal(runnerUp.Proof, got.RunnerUp!.Proof);
        var own = Wire.ParseHeadAnnouncement(Wire.ToUtf8(a with { Settlement = null }, Wire.WriteHeadAnnouncement));
        Assert.True(own.IsOk);
        Assert.Null(own.Value.Settlement);
        Assert.Equal(Settlement.None, own.Value.SettlementOrNone);
        Assert.Equal(BigInteger.Zero, own.Value.SettlementOrNone.Price);
    }
}
