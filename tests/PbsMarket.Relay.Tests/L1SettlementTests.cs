using System.Text.Json;
using PbsMarket.Core;
using PbsMarket.L1;
using PbsMarket.Testing;
using PbsMarket.Testing.Market;

namespace PbsMarket.Relay.Tests;

/// <summary>A header proposed through the relay reaches L1 and is paid for; equivocation evidence slashes on L1.</summary>
/// <remarks>3 s slots: the proposal must land before the next auction closes, on a loaded machine too.</remarks>
public sealed class L1SettlementTests(TestServers servers) : MarketTest(servers, slotMs: 3000)
{
    InboxClient _inbox = null!;

    public override async ValueTask InitializeAsync()
    {
        await base.InitializeAsync();
        _inbox = new InboxClient(L1Rpc.Connect(Market.Anvil.RpcUrl), Market.Deployment);
    }

    [Fact]
    public async Task A_proposed_header_is_posted_settled_and_an_equivocation_slashes_the_bond()
    {
        var client = Relay.Client;
        var a = await Market.NextAuctionAsync(client, 500);
        var winnerKey = TestMarket.Builders[1];
        var loserKey = TestMarket.Builders[0];
        var loser = TestMarket.Bid(a, loserKey, 40_000);
        var winner = TestMarket.Bid(a, winnerKey, 90_000);
        var loserReceipt = await client.SubmitAsync(loser.Header, loser.Signature, loser.Payload);
        var winnerReceipt = await client.SubmitAsync(winner.Header, winner.Signature, winner.Payload);
        var proposer = Market.ProposerOf(a.Slot);
        var escrowBefore = await _inbox.EscrowBalanceAsync(winnerKey.Address, TestMarket.RelaySigner.Address);
        var earningsBefore = await _inbox.EarningsOfAsync(proposer.Address);
        var fromBlock = (ulong)(await _inbox.Web3.Eth.Blocks.GetBlockNumber.SendRequestAsync()).Value;

        await Market.WaitClosedAsync(a.Slot);
        var (status, answer) = await client.PostRawAsync("relay/v1/proposer/proposals", await ProposalBodyAsync(a.Slot, winnerReceipt.HeaderHash, proposer));
        Assert.True(status == 200, answer);

        // The relay's poster gets it into the inbox.
        // Each wait has its own generous deadline (L1 blocks come every second; a loaded machine is slower).
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (await _inbox.HeaderOfSlotAsync(a.Slot) == Hash32.Zero && DateTime.UtcNow < deadline) await Task.Delay(200);
        Assert.Equal(winnerReceipt.HeaderHash, await _inbox.HeaderOfSlotAsync(a.Slot));
        var logs = await _inbox.GetHeaderPostedAsync(fromBlock);
        var posted = Assert.Single(logs, l => l.Slot == a.Slot);
        Assert.Equal(winnerReceipt.HeaderHash, posted.HeaderHash);
        Assert.Equal(proposer.Address, posted.Proposer);
        Assert.Equal(winnerKey.Address, posted.Builder);
        Assert.Equal(new BigInteger(40_000), posted.Price); // second price
        Assert.Equal(BidsMerkle.Root([(loserReceipt.HeaderHash, loserReceipt.ReceivedAtMs), (winnerReceipt.HeaderHash, winnerReceipt.ReceivedAtMs)]), posted.BidsRoot);
        Assert.Equal(escrowBefore - 40_000, await _inbox.EscrowBalanceAsync(winnerKey.Address, TestMarket.RelaySigner.Address));
        Assert.Equal(earningsBefore + 40_000, await _inbox.EarningsOfAsync(proposer.Address));

        // The data API reports the slot posted with its L1 transaction.
        string? l1Tx = null;
        deadline = DateTime.UtcNow.AddSeconds(60);
        while (l1Tx is null && DateTime.UtcNow < deadline)
        {
            using var slot = await client.GetJsonAsync($"relay/v1/data/slots/{a.Slot}");
            if (slot.RootElement.GetProperty("status").GetString() == "posted") l1Tx = slot.RootElement.GetProperty("l1_tx_hash").GetString();
            else await Task.Delay(100);
        }
        Assert.Equal(posted.TxHash, l1Tx);

        // The proposer signs a second header for its slot: refused, kept as evidence, reported to L1, bond burned.
        var (eqStatus, _) = await client.PostRawAsync("relay/v1/proposer/proposals", await ProposalBodyAsync(a.Slot, loserReceipt.HeaderHash, proposer));
        Assert.Equal(409, eqStatus);
        deadline = DateTime.UtcNow.AddSeconds(60);
        while ((await _inbox.ProposerInfoAsync(proposer.Address)).Status != ProposerStatus.Slashed && DateTime.UtcNow < deadline) await Task.Delay(200);
        Assert.Equal(ProposerStatus.Slashed, (await _inbox.ProposerInfoAsync(proposer.Address)).Status);
    }

}
