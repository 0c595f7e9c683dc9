using System.Net;
using System.Text;
using System.Text.Json;
using PbsMarket.Builder;
using PbsMarket.Core;
using PbsMarket.Testing;
using PbsMarket.Testing.Market;

namespace PbsMarket.Relay.Tests;

/// <summary>One slot end to end through HTTP: bids, close, header to the proposer, proposal, head, data API.</summary>
/// <remarks>3 s slots: the proposal must land before the next auction closes, on a loaded machine too.</remarks>
public sealed class AuctionFlowTests(TestServers servers) : MarketTest(servers, slotMs: 3000)
{
    [Fact]
    public async Task A_slot_runs_from_bids_to_proposal()
    {
        var client = Relay.Client;
        var a = await Market.NextAuctionAsync(client);
        Assert.Equal(Market.ProposerOf(a.Slot).Address, a.Proposer);

        var receipts = new List<(ProtocolKey Builder, BigInteger Value, BidReceiptResponse Receipt)>();
        BigInteger[] values = [5_000, 9_000, 7_000];
        for (var i = 0; i < 3; i++)
        {
            var (h, s, p) = TestMarket.Bid(a, TestMarket.Builders[i], values[i]);
            var receipt = await client.SubmitAsync(h, s, p);
            Assert.Equal(Eip712.HashStruct(h), receipt.HeaderHash);
            Assert.True(BidSigner.VerifyReceipt(a.Domain, receipt, TestMarket.RelaySigner.Address));
            receipts.Add((TestMarket.Builders[i], values[i], receipt));
        }
        // The same bid again: the same receipt.
        var (h0, s0, p0) = TestMarket.Bid(a, TestMarket.Builders[0], values[0]);
        var again = await client.SubmitAsync(h0, s0, p0);
        Assert.Equal(receipts[0].Receipt, again);

        // Before the close the proposer is told to come back; anyone else is refused.
        var proposer = Market.ProposerOf(a.Slot);
        var early = await GetHeaderAsync(a.Slot, proposer);
        Assert.Equal(425, (int)early.StatusCode);
        var stranger = TestMarket.Builders[0];
        await Market.WaitClosedAsync(a.Slot);
        var refused = await GetHeaderAsync(a.Slot, stranger);
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Contains("not_proposer", await refused.Content.ReadAsStringAsync());

        var response = await GetHeaderAsync(a.Slot, proposer);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var root = doc.RootElement;
        var winnerHash = Hash32.Parse(root.GetProperty("header_hash").GetString()!);
        Assert.Equal(receipts[1].Receipt.HeaderHash, winnerHash);
        Assert.Equal("7000", root.GetProperty("price").GetString()); // second price
        Assert.Equal("3", root.GetProperty("bid_count").GetString());
        var bidsRoot = Hash32.Parse(root.GetProperty("bids_root").GetString()!);
        Assert.Equal(BidsMerkle.Root(receipts.Select(r => (r.Receipt.HeaderHash, r.Receipt.ReceivedAtMs))), bidsRoot);
        var relaySig = Signature.Parse(root.GetProperty("relay_signature").GetString()!);
        Assert.True(SignatureRecovery.Verify(Eip712.Digest(a.Domain, new AuctionResult(a.Slot, winnerHash, 7000, bidsRoot, 3)), relaySig, TestMarket.RelaySigner.Address));

        // Propose: the payload comes back and the head moves.
        var proposal = await ProposalBodyAsync(a.Slot, winnerHash, proposer);
        var (status, body) = await client.PostRawAsync("relay/v1/proposer/proposals", proposal);
        Assert.Equal(200, status);
        Assert.Equal("0xc0", JsonDocument.Parse(body).RootElement.GetProperty("payload").GetString());
        var (statusAgain, bodyAgain) = await client.PostRawAsync("relay/v1/proposer/proposals", proposal);
        Assert.Equal((200, body), (statusAgain, bodyAgain));

        var next = await Market.NextAuctionAsync(client, 100);
        Assert.Equal(winnerHash, next.ParentHash);
        Assert.Equal(a.Number + 1, next.Number);

        // The head is served whole, so a proposer can verify it rather than trust it.
        using (var headDoc = await client.GetJsonAsync("relay/v1/proposer/head"))
        {
            var head = headDoc.RootElement;
            Assert.Equal(winnerHash.ToString(), head.GetProperty("hash").GetString());
            Assert.Equal(a.Slot.ToString(), head.GetProperty("slot").GetString());
            var header = Wire.ParseHeader(head.GetProperty("header")).Value;
            Assert.Equal(winnerHash, Eip712.HashStruct(header));
            Assert.True(SignatureRecovery.Verify(Eip712.Digest(a.Domain, header), Signature.Parse(head.GetProperty("builder_signature").GetString()!), header.Builder));
            var signed = SettlementRules.ProposalFor(a.Slot, winnerHash, Wire.ParseSettlementOf(head).Value!, TestMarket.RelaySigner.Address);
            Assert.True(SignatureRecovery.Verify(Eip712.Digest(a.Domain, signed), Signature.Parse(head.GetProperty("proposal_signature").GetString()!), proposer.Address));
            Assert.Equal(header.PayloadHash, Keccak.Hash(Convert.FromHexString(head.GetProperty("payload").GetString()![2..])));
        }

        // A different header signed for the same slot is equivocation, refused and kept.
        var (eqStatus, eqBody) = await client.PostRawAsync("relay/v1/proposer/proposals", await ProposalBodyAsync(a.Slot, receipts[0].Receipt.HeaderHash, proposer));
        Assert.Equal(409, eqStatus);
        Assert.Contains("equivocation", eqBody);

        // Every builder can check its bid is in the root.
        foreach (var r in receipts) Assert.True(await client.VerifyInclusionAsync(a.Slot, r.Receipt));
        using var slotDoc = await client.GetJsonAsync($"relay/v1/data/slots/{a.Slot}");
        // Proposed, or already posted if the relay's L1 poster was quick.
        Assert.Contains(slotDoc.RootElement.GetProperty("status").GetString(), new[] { "proposed", "posted" });
        Assert.Equal(winnerHash.ToString(), slotDoc.RootElement.GetProperty("winner").GetProperty("header_hash").GetString());
    }


    async Task<HttpResponseMessage> GetHeaderAsync(ulong slot, ProtocolKey signer)
    {
        using var http = new HttpClient();
        var request = new HttpRequestMessage(HttpMethod.Get, $"{Relay.Url}/relay/v1/proposer/header/{slot}");
        request.Headers.Add("X-Pbs-Signature", signer.Sign(Eip712.Digest(Market.Domain, new HeaderRequest(slot, Market.ProposerOf(slot).Address))).ToString());
        return await http.SendAsync(request);
    }
}
