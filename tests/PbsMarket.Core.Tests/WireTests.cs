using System.Numerics;
using System.Text;
using System.Text.Json.Nodes;

namespace PbsMarket.Core.Tests;

public class WireTests
{
    private static readonly ProtocolKey Builder = ProtocolKey.FromHex("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80");
    private static readonly Eip712Domain Domain = Eip712Domain.PbsMarket(31337, Address.Parse("0x5FbDB2315678afecb367f032d93F642f64180aa3"));

    private static BidSubmission ValidBid()
    {
        var payload = PayloadCodec.Empty;
        var h = new Header(42069, 5, 3, Keccak.Hash("p"u8), 1_700_000_010_000, 30_000_000, 0, Keccak.Hash(payload),
            Builder.Address, Address.Parse("0x70997970c51812dc3a010c7d01b50e0d17dc79c8"), BigInteger.Parse("1000000000000000000"));
        return new BidSubmission(h, Builder.Sign(Eip712.Digest(Domain, h)), payload);
    }

    private static byte[] ValidJson() => Wire.ToUtf8(ValidBid(), Wire.WriteBidSubmission);

    private static ProtocolError Fails(string json, int maxPayload = WireLimits.DefaultMaxPayloadBytes)
    {
        var r = Wire.ParseBidSubmission(Encoding.UTF8.GetBytes(json), new WireLimits(maxPayload));
        Assert.False(r.IsOk, $"expected failure for {json}");
        return r.Error!;
    }

    private static string Mutate(Action<JsonObject> change)
    {
        var node = JsonNode.Parse(ValidJson())!.AsObject();
        change(node);
        return node.ToJsonString();
    }

    [Fact]
    public void Round_trips_and_signature_recovers()
    {
        var bid = ValidBid();
        var r = Wire.ParseBidSubmission(ValidJson());
        Assert.True(r.IsOk, r.ToString());
        Assert.Equal(bid.Header, r.Value.Header);
        Assert.Equal(bid.Signature, r.Value.Signature);
        Assert.Equal(bid.Payload, r.Value.Payload);
        Assert.True(SignatureRecovery.Verify(Eip712.Digest(Domain, r.Value.Header), r.Value.Signature, Builder.Address));
        Assert.Equal(ValidJson(), Wire.ToUtf8(r.Value, Wire.WriteBidSubmission));
    }

    [Fact]
    public void Addresses_and_hex_accept_any_case_and_print_lowercase()
    {
        var json = Mutate(o =>
        {
            o["header"]!["builder"] = Builder.Address.ToChecksumString();
            o["header"]!["parent_hash"] = "0x" + o["header"]!["parent_hash"]!.GetValue<string>()[2..].ToUpperInvariant();
        });
        var r = Wire.ParseBidSubmission(Encoding.UTF8.GetBytes(json));
        Assert.True(r.IsOk, r.ToString());
        Assert.Equal(ValidBid().Header, r.Value.Header);
        Assert.Equal("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", Builder.Address.ToChecksumString());
    }

    [Theory]
    [InlineData("value", "-1", "header.value: \"-1\" is not a non-negative decimal integer")]
    [InlineData("value", "+1", "header.value: \"+1\" is not a non-negative decimal integer")]
    [InlineData("value", " 1", "header.value: \" 1\" is not a non-negative decimal integer")]
    [InlineData("value", "1 ", "header.value: \"1 \" is not a non-negative decimal integer")]
    [InlineData("value", "01", "leading zeros are not allowed")]
    [InlineData("value", "", "header.value: \"\" is not a non-negative decimal integer")]
    [InlineData("value", "1e3", "header.value: \"1e3\" is not a non-negative decimal integer")]
    [InlineData("value", "0x10", "header.value: \"0x10\" is not a non-negative decimal integer")]
    [InlineData("value", "115792089237316195423570985008687907853269984665640564039457584007913129639936", "header.value: \"115792089237316195423570985008687907853269984665640564039457584007913129639936\" exceeds uint256")]
    [InlineData("slot", "18446744073709551616", "header.slot: \"18446744073709551616\" exceeds uint64")]
    [InlineData("slot", "-0", "is not a non-negative decimal integer")]
    [InlineData("gas_used", "１", "is not a non-negative decimal integer")]
    [InlineData("parent_hash", "0x00", "header.parent_hash: expected 32 bytes, got 1")]
    [InlineData("parent_hash", "0x00000000000000000000000000000000000000000000000000000000000000", "header.parent_hash: expected 32 bytes, got 31")]
    [InlineData("parent_hash", "0000000000000000000000000000000000000000000000000000000000000000", "header.parent_hash: missing 0x prefix")]
    [InlineData("parent_hash", "0x000000000000000000000000000000000000000000000000000000000000000", "header.parent_hash: odd-length hex")]
    [InlineData("payload_hash", "0xzz00000000000000000000000000000000000000000000000000000000000000", "header.payload_hash: invalid hex character at offset 2")]
    [InlineData("builder", "0x1234", "header.builder: expected 20 bytes, got 2")]
    [InlineData("proposer", "0X70997970c51812dc3a010c7d01b50e0d17dc79c8", "header.proposer: missing 0x prefix")]
    public void Malformed_header_fields(string field, string value, string message)
    {
        var e = Fails(Mutate(o => o["header"]![field] = value));
        Assert.Equal(ErrorCodes.Malformed, e.Code);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Accepts_max_values_and_zero()
    {
        var json = Mutate(o =>
        {
            o["header"]!["slot"] = "18446744073709551615";
            o["header"]!["value"] = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
            o["header"]!["gas_used"] = "0";
        });
        var r = Wire.ParseBidSubmission(Encoding.UTF8.GetBytes(json));
        Assert.True(r.IsOk, r.ToString());
        Assert.Equal(ulong.MaxValue, r.Value.Header.Slot);
    }

    [Theory]
    [InlineData("slot", "5", "header.slot: expected a decimal string, got a JSON number")]
    [InlineData("value", "1000", "header.value: expected a decimal string, got a JSON number")]
    [InlineData("slot", "null", "header.slot: expected a string, got null")]
    [InlineData("builder", "true", "header.builder: expected a string, got a boolean")]
    [InlineData("parent_hash", "[]", "header.parent_hash: expected a string, got an array")]
    [InlineData("parent_hash", "{}", "header.parent_hash: expected a string, got an object")]
    public void Wrong_json_types(string field, string rawJson, string message)
    {
        var e = Fails(Mutate(o => o["header"]![field] = JsonNode.Parse(rawJson)));
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void Missing_unknown_and_duplicate_fields()
    {
        Assert.Equal("missing field header.slot", Fails(Mutate(o => o["header"]!.AsObject().Remove("slot"))).Message);
        Assert.Equal("missing field signature", Fails(Mutate(o => o.Remove("signature"))).Message);
        Assert.Equal("unknown field \"foo\"", Fails(Mutate(o => o["foo"] = "1")).Message);
        Assert.Equal("unknown field \"header.Slot\"", Fails(Mutate(o => o["header"]!["Slot"] = "1")).Message);
        var json = Encoding.UTF8.GetString(ValidJson()).Replace("\"slot\":\"5\"", "\"slot\":\"5\",\"slot\":\"6\"");
        Assert.Equal("duplicate field \"header.slot\"", Fails(json).Message);
        Assert.Equal("header: expected an object, got a string", Fails(Mutate(o => o["header"] = "x")).Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData("{")]
    [InlineData("[]")]
    [InlineData("null")]
    [InlineData("{\"header\":1,}")]
    [InlineData("{} {}")]
    [InlineData("\"just a string\"")]
    public void Not_a_json_object(string json)
    {
        var e = Fails(json);
        Assert.Equal(ErrorCodes.Malformed, e.Code);
        Assert.True(e.Message.StartsWith("invalid JSON", StringComparison.Ordinal) || e.Message.StartsWith("body: expected a JSON object", StringComparison.Ordinal), e.Message);
    }

    [Fact]
    public void Deep_nesting_does_not_throw()
    {
        var json = new string('[', 10_000) + new string(']', 10_000);
        Assert.Equal(ErrorCodes.Malformed, Fails(json).Code);
    }

    [Fact]
    public void Payload_rules()
    {
        Assert.Equal("payload: odd-length hex", Fails(Mutate(o => o["payload"] = "0xc")).Message);
        Assert.Equal("payload: missing 0x prefix", Fails(Mutate(o => o["payload"] = "c0")).Message);
        var big = Fails(Mutate(o => o["payload"] = "0x" + new string('0', 2 * 101)), maxPayload: 100);
        Assert.Equal(ErrorCodes.PayloadTooLarge, big.Code);
        Assert.Equal("payload: 101 bytes exceeds the limit of 100", big.Message);
        Assert.True(Wire.ParseBidSubmission(Encoding.UTF8.GetBytes(Mutate(o => o["payload"] = "0x" + new string('0', 200))), new WireLimits(100)).IsOk);
    }

    [Theory]
    [InlineData("0x00", "signature: expected 65 bytes, got 1")]
    [InlineData("0x", "signature: expected 65 bytes, got 0")]
    public void Signature_lengths(string sig, string message) => Assert.Equal(message, Fails(Mutate(o => o["signature"] = sig)).Message);

    [Fact]
    public void Signature_v_r_s_rules()
    {
        var good = ValidBid().Signature.ToArray();
        string With(Action<byte[]> change) { var b = good.ToArray(); change(b); return Hex.Encode(b); }

        foreach (var v in new byte[] { 2, 26, 29, 35, 255 })
            Assert.Equal($"signature: v must be 27, 28, 0 or 1, got {v}", Fails(Mutate(o => o["signature"] = With(b => b[64] = v))).Message);

        // v in {0, 1} normalises to {27, 28}.
        var zeroOne = Wire.ParseBidSubmission(Encoding.UTF8.GetBytes(Mutate(o => o["signature"] = With(b => b[64] -= 27))));
        Assert.True(zeroOne.IsOk);
        Assert.Equal(ValidBid().Signature, zeroOne.Value.Signature);

        // High s: s' = n - s is the same signature mirrored; OpenZeppelin rejects it, so do we.
        var s = new BigInteger(good.AsSpan(32, 32), isUnsigned: true, isBigEndian: true);
        var highS = (Signature.CurveOrder - s).ToByteArray(isUnsigned: true, isBigEndian: true);
        var e = Fails(Mutate(o => o["signature"] = With(b => { highS.CopyTo(b, 32 + 32 - highS.Length); b[64] = (byte)(b[64] == 27 ? 28 : 27); })));
        Assert.Contains("high-s", e.Message);

        Assert.Contains("r is zero", Fails(Mutate(o => o["signature"] = With(b => Array.Clear(b, 0, 32)))).Message);
        Assert.Contains("s is zero", Fails(Mutate(o => o["signature"] = With(b => Array.Clear(b, 32, 32)))).Message);
        var n = Signature.CurveOrder.ToByteArray(isUnsigned: true, isBigEndian: true);
        Assert.Contains("r is zero or not below", Fails(Mutate(o => o["signature"] = With(b => n.CopyTo(b, 0)))).Message);
        Assert.Contains("s is zero or not below", Fails(Mutate(o => o["signature"] = With(b => n.CopyTo(b, 32)))).Message);
    }

    [Fact]
    public void Proposal_submission()
    {
        var p = new ProposalSubmission(7, Keccak.Hash("h"u8), ValidBid().Signature);
        var json = Wire.ToUtf8(p, Wire.WriteProposalSubmission);
        var r = Wire.ParseProposalSubmission(json);
        Assert.True(r.IsOk, r.ToString());
        Assert.Equal(p, r.Value);
        Assert.Equal("missing field header_hash", Wire.ParseProposalSubmission("{\"slot\":\"1\",\"signature\":\"0x\"}"u8).Message);
        Assert.Equal("slot: expected a decimal string, got a JSON number",
            Wire.ParseProposalSubmission(Encoding.UTF8.GetBytes($"{{\"slot\":1,\"header_hash\":\"{p.HeaderHash}\",\"signature\":\"{p.Signature}\"}}")).Message);
    }

    [Fact]
    public void Head_announcement_and_receipt()
    {
        var bid = ValidBid();
        var a = new HeadAnnouncement(bid.Header, bid.Signature, bid.Signature, bid.Payload);
        var r = Wire.ParseHeadAnnouncement(Wire.ToUtf8(a, Wire.WriteHeadAnnouncement));
        Assert.True(r.IsOk, r.ToString());
        Assert.Equal(a.Header, r.Value.Header);
        Assert.Equal(a.Payload, r.Value.Payload);
        var renamed = Encoding.UTF8.GetString(Wire.ToUtf8(a, Wire.WriteHeadAnnouncement)).Replace("\"proposal_signature\"", "\"x\"");
        Assert.Equal("unknown field \"x\"", Wire.ParseHeadAnnouncement(Encoding.UTF8.GetBytes(renamed)).Message);
        var receipt = new BidReceiptResponse(bid.Header.Hash(), 123, bid.Signature);
        Assert.Equal(receipt, Wire.ParseBidReceiptResponse(Wire.ToUtf8(receipt, Wire.WriteBidReceiptResponse)).Value);
    }

    [Fact]
    public void Primitive_parsers()
    {
        Assert.False(Hash32.TryParse(null, out _));
        Assert.False(Hash32.TryParse("0x" + new string('0', 66), out _));
        Assert.Equal("0x" + new string('0', 64), Hash32.Zero.ToString());
        Assert.Equal("0x" + new string('0', 40), Address.Zero.ToString());
        Assert.True(Address.TryParse("0xABCDEFabcdef0000000000000000000000000000", out var a));
        Assert.Equal("0xabcdefabcdef0000000000000000000000000000", a.ToString());
        Assert.False(Signature.TryParse(null, out _, out var err));
        Assert.NotEmpty(err);
        Assert.True(Wire.TryParseUInt64("0", out var z, out _) && z == 0);
        Assert.False(Wire.TryParseUInt64("00", out _, out _));
        Assert.DoesNotContain("0x", Builder.ToString().Replace(Builder.Address.ToString(), ""));
    }
}
