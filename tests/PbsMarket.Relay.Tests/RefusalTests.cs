using System.Text;
using System.Text.Json;
using PbsMarket.Builder;
using PbsMarket.Core;
using PbsMarket.Testing;
using PbsMarket.Testing.Market;

namespace PbsMarket.Relay.Tests;

/// <summary>Every refusal code, reached through HTTP; refused bids leave no trace in the auction.</summary>
/// <remarks>3 s slots: some 70 requests go into one auction, which must stay open for all of them on a loaded machine.</remarks>
public sealed class RefusalTests(TestServers servers) : MarketTest(servers, slotMs: 3000)
{
    async Task<(int Status, string Code, string Detail)> PostAsync(byte[] body, string contentType = "application/json")
    {
        var (status, text) = await Relay.Client.PostRawAsync("relay/v1/builder/bids", body, contentType);
        using var doc = JsonDocument.Parse(text);
        return (status, doc.RootElement.GetProperty("code").GetString()!, doc.RootElement.GetProperty("detail").GetString()!);
    }

    static byte[] Encode((Header Header, Signature Signature, byte[] Payload) bid) =>
        Wire.ToUtf8(new BidSubmission(bid.Header, bid.Signature, bid.Payload), Wire.WriteBidSubmission);

    [Fact]
    public async Task Each_bad_bid_gets_its_code_and_changes_nothing()
    {
        var a = await Market.NextAuctionAsync(Relay.Client, 2500);
        var b0 = TestMarket.Builders[0];
        var valid = TestMarket.Bid(a, b0, 5_000);
        var refusedHashes = new List<Hash32>();

        (string Name, Func<byte[]> Body, int Status, string Code)[] cases =
        [
            ("not json", () => "{nope"u8.ToArray(), 400, "malformed"),
            ("unknown field", () => Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(Encode(valid)).Replace("\"payload\"", "\"extra\":1,\"payload\"")), 400, "malformed"),
            ("negative value", () => Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(Encode(valid)).Replace("\"value\":\"5000\"", "\"value\":\"-5\"")), 400, "malformed"),
            ("wrong slot", () => Encode(TestMarket.Bid(a, b0, 5_000, tweak: h => h with { Slot = a.Slot + 2, TimestampMs = h.TimestampMs + 2 * (ulong)Market.SlotLengthMs })), 400, "wrong_slot"),
            ("closed slot", () => Encode(TestMarket.Bid(a, b0, 5_000, tweak: h => h with { Slot = a.Slot - 1, TimestampMs = h.TimestampMs - (ulong)Market.SlotLengthMs })), 409, "auction_closed"),
            ("wrong timestamp", () => Encode(TestMarket.Bid(a, b0, 5_000, tweak: h => h with { TimestampMs = h.TimestampMs + 1 })), 400, "wrong_timestamp"),
            ("stale parent", () => Encode(TestMarket.Bid(a, b0, 5_000, tweak: h => h with { ParentHash = Keccak.Hash("elsewhere"u8) })), 409, "stale_parent"),
            ("wrong number", () => Encode(TestMarket.Bid(a, b0, 5_000, tweak: h => h with { Number = h.Number + 1 })), 409, "stale_parent"),
            ("wrong proposer", () => Encode(TestMarket.Bid(a, b0, 5_000, tweak: h => h with { Proposer = b0.Address })), 400, "wrong_proposer"),
            ("wrong l2 chain", () => Encode(TestMarket.Bid(a, b0, 5_000, tweak: h => h with { L2ChainId = 902 })), 400, "wrong_chain_id"),
            ("gas limit above max", () => Encode(TestMarket.Bid(a, b0, 5_000, tweak: h => h with { GasLimit = 40_000_000 })), 400, "gas_limit_exceeded"),
            ("gas used above limit", () => Encode(TestMarket.Bid(a, b0, 5_000, tweak: h => h with { GasUsed = h.GasLimit + 1 })), 400, "gas_limit_exceeded"),
            ("payload hash", () => Encode(TestMarket.Bid(a, b0, 5_000, tweak: h => h with { PayloadHash = Keccak.Hash("other"u8) })), 400, "payload_mismatch"),
            ("undecodable payload", () => Encode(TestMarket.Bid(a, b0, 5_000, payload: [0xc3, 0x01, 0x02, 0x03])), 400, "invalid_payload"),
            ("gas used without txs", () => Encode(TestMarket.Bid(a, b0, 5_000, gasUsed: 100)), 400, "invalid_gas"),
            ("below reserve", () => Encode(TestMarket.Bid(a, b0, 999)), 400, "below_reserve"),
            ("signed by another key", () =>
            {
                var h = a.HeaderFor(b0.Address, PayloadCodec.Empty, 0, 5_000);
                return Encode((h, TestMarket.Builders[1].Sign(Eip712.Digest(a.Domain, h)), PayloadCodec.Empty));
            }, 400, "invalid_signature"),
            ("above collateral", () => Encode(TestMarket.Bid(a, b0, TestMarket.Collateral + 1)), 402, "insufficient_collateral"),
        ];
        foreach (var c in cases)
        {
            var body = c.Body();
            var (status, code, detail) = await PostAsync(body);
            Assert.True((c.Status, c.Code) == (status, code), $"{c.Name}: expected {c.Status} {c.Code}, got {status} {code} ({detail})");
            Assert.DoesNotContain("   at ", detail); // never a stack trace
            var parsed = Wire.ParseBidSubmission(body, new WireLimits(1 << 20));
            if (parsed.IsOk) refusedHashes.Add(Eip712.HashStruct(parsed.Value.Header));
        }

        var (mtStatus, mtCode, _) = await PostAsync(Encode(valid), "text/plain");
        Assert.Equal((415, "unsupported_media_type"), (mtStatus, mtCode));
        var huge = new byte[300_000];
        Array.Fill(huge, (byte)' ');
        var (bigStatus, bigCode, _) = await PostAsync(huge);
        Assert.Equal((413, "payload_too_large"), (bigStatus, bigCode));

        // The per-builder limit (50 in this market): refusals above it use no quota and change nothing.
        var b2 = TestMarket.Builders[2];
        var accepted = new List<BidReceiptResponse>();
        for (var i = 0; i < 50; i++)
        {
            var bid = TestMarket.Bid(a, b2, 2_000 + i);
            accepted.Add(await Relay.Client.SubmitAsync(bid.Header, bid.Signature, bid.Payload));
        }
        var over = TestMarket.Bid(a, b2, 9_999);
        var (rlStatus, rlCode, _) = await PostAsync(Encode(over));
        Assert.Equal((429, "rate_limited"), (rlStatus, rlCode));
        refusedHashes.Add(Eip712.HashStruct(over.Header));
        // A resend of an accepted bid is still answered with its receipt.
        var first = TestMarket.Bid(a, b2, 2_000);
        Assert.Equal(accepted[0], await Relay.Client.SubmitAsync(first.Header, first.Signature, first.Payload));

        await Market.WaitClosedAsync(a.Slot);
        using var doc = await Relay.Client.GetJsonAsync($"relay/v1/data/slots/{a.Slot}");
        var slot = doc.RootElement;
        Assert.Equal("50", slot.GetProperty("bid_count").GetString());
        var shown = slot.GetProperty("bids").EnumerateArray().Select(b => Hash32.Parse(b.GetProperty("header_hash").GetString()!)).ToHashSet();
        Assert.True(accepted.All(r => shown.Contains(r.HeaderHash)));
        Assert.DoesNotContain(shown, refusedHashes.Contains);
        Assert.Equal(accepted[^1].HeaderHash.ToString(), slot.GetProperty("winner").GetProperty("header_hash").GetString());
    }

    [Fact]
    public async Task Bad_proposer_requests_are_refused_with_codes()
    {
        var a = await Market.NextAuctionAsync(Relay.Client, 1500);
        using var http = new HttpClient();
        var noSig = await http.GetAsync($"{Relay.Url}/relay/v1/proposer/header/{a.Slot}");
        Assert.Equal(403, (int)noSig.StatusCode);
        var badSlot = await http.GetAsync($"{Relay.Url}/relay/v1/proposer/header/01");
        Assert.Equal(400, (int)badSlot.StatusCode);
        Assert.Contains("malformed", await badSlot.Content.ReadAsStringAsync());

        // A proposal signed by someone other than the slot's proposer.
        var stranger = TestMarket.Builders[0];
        var hash = Keccak.Hash("x"u8);
        var body = Wire.ToUtf8(ProposalSubmission.Of(Proposal.Fallback(a.Slot, hash), stranger.Sign(Eip712.Digest(Market.Domain, Proposal.Fallback(a.Slot, hash)))), Wire.WriteProposalSubmission);
        var (status, text) = await Relay.Client.PostRawAsync("relay/v1/proposer/proposals", body);
        Assert.Equal(403, status);
        Assert.Contains("not_proposer", text);
        var (st2, text2) = await Relay.Client.PostRawAsync("relay/v1/proposer/proposals", "{\"slot\":\"1\"}"u8.ToArray());
        Assert.Equal(400, st2);
        Assert.Contains("malformed", text2);

        var (limitStatus, limitText) = await Relay.Client.PostRawAsync("relay/v1/data/slots?limit=0", []);
        Assert.Equal(405, limitStatus); // GET only
        Assert.NotNull(limitText);
        var list = await http.GetAsync($"{Relay.Url}/relay/v1/data/slots?limit=500");
        Assert.Equal(400, (int)list.StatusCode);
    }
}
