using PbsMarket.Core;
using PbsMarket.L1;

namespace PbsMarket.L2.Tests;

/// <summary>A relay's head is checked like a header L1 takes before the L2 node executes it ahead of L1.</summary>
public sealed class ProposedHeadsTests
{
    static readonly DeployedMarket Market = new(31337, "0x" + new string('1', 40), "0x" + new string('2', 40), "0x" + new string('3', 40), 901,
        GenesisMs: 1_700_000_000_000, SlotMs: 2000, SlotsPerEpoch: 32, MinBond: "1", ExitDelaySeconds: 1, WithdrawalDelaySeconds: 1, GenesisProposers: [], DeployedAtBlock: 0);

    static async Task<string?> RefusalOf(Func<Header, Header> tweak)
    {
        var builder = ProtocolKey.FromHex(PbsMarket.LocalServers.AnvilNode.DevKeys[5]);
        var domain = Eip712Domain.PbsMarket(31337, Address.Parse(Market.Inbox));
        var h = tweak(new Header(901, 10, 1, Hash32.Zero, 1_700_000_020_000, 30_000_000, 0, Keccak.Hash(PayloadCodec.Empty), builder.Address, builder.Address, 0));
        var sig = builder.Sign(Eip712.Digest(domain, h));
        // The inbox is never asked: each of these fails before the schedule is read (the URL leads nowhere).
        var inbox = new InboxClient(L1Rpc.Connect("http://127.0.0.1:9"), Market);
        using var http = new HttpClient();
        var heads = new ProposedHeads(http, domain, Market, inbox, 1 << 20, TimeSpan.FromSeconds(1));
        var (_, refusal) = await heads.CheckAsync(new HeadAnnouncement(h, sig, sig, PayloadCodec.Empty), CancellationToken.None);
        return refusal;
    }

    [Fact]
    public async Task A_head_L1_would_refuse_for_its_own_fields_is_not_executed()
    {
        Assert.Contains("is not the start of slot", await RefusalOf(h => h with { TimestampMs = h.TimestampMs + 1 }), StringComparison.Ordinal);
        Assert.Contains("exceeds gas_limit", await RefusalOf(h => h with { GasUsed = h.GasLimit + 1 }), StringComparison.Ordinal);
        Assert.Contains("has not started", await RefusalOf(h => h with { Slot = 1_000_000_000, TimestampMs = 1_700_000_000_000 + 1_000_000_000UL * 2000 }), StringComparison.Ordinal);
        Assert.Contains("l2_chain_id", await RefusalOf(h => h with { L2ChainId = 902 }), StringComparison.Ordinal);
    }
}
