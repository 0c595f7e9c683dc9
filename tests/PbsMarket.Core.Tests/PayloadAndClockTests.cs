using System.Numerics;

namespace PbsMarket.Core.Tests;

public class PayloadCodecTests
{
    private static readonly BigInteger ChainId = 42069;
    private static List<byte[]> Raws() => Vectors.Root.GetProperty("payloads").GetProperty("transactions").EnumerateArray()
        .Select(t => Hex.Decode(t.Str("raw"))).ToList();

    private static ProtocolError Fails(byte[] payload, PayloadLimits? limits = null)
    {
        var c = PayloadCodec.Decode(payload, ChainId, limits ?? PayloadLimits.Default);
        Assert.False(c.IsOk, "expected failure");
        return c.Error!;
    }

    [Fact]
    public void Empty_block()
    {
        var c = PayloadCodec.Decode(PayloadCodec.Empty, ChainId);
        Assert.True(c.IsOk);
        Assert.Empty(c.Transactions);
        Assert.Equal(PayloadCodec.Empty, PayloadCodec.Encode([]));
    }

    [Theory]
    [InlineData("0x", "payload: empty (the empty block is 0xc0)")]
    [InlineData("0xff", "payload:")]
    [InlineData("0x80", "payload: not an RLP list")]
    [InlineData("0xc000", "payload: 1 trailing bytes after the transaction list")]
    [InlineData("0xc1", "payload: item at offset 0 runs past the end of its container")]
    [InlineData("0xc20102", "transaction 0: unexpected end of data")]
    [InlineData("0xc3820304", "transaction 0: unsupported transaction type 0x03")]
    [InlineData("0xc2817f", "non-canonical single byte")]
    [InlineData("0xc3c20102", "transaction 0: type 0 has 9 fields, got 2")]
    [InlineData("0xf800", "non-canonical")]
    public void Garbage_is_invalid_payload(string hex, string message)
    {
        var e = Fails(Hex.Decode(hex));
        Assert.Equal(ErrorCodes.InvalidPayload, e.Code);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Trailing_bytes_inside_a_typed_transaction()
    {
        var raw = Raws()[2];
        var e = Fails(PayloadCodec.Encode([[.. raw, 0x00]]));
        Assert.Contains("trailing bytes after the type 2 body", e.Message);
    }

    [Fact]
    public void Legacy_transaction_wrapped_in_a_string_is_refused()
    {
        var legacy = Raws()[0];
        var wrapped = Rlp.WrapList(Rlp.EncodeString(legacy));
        Assert.Contains("must be embedded as an RLP list", Fails(wrapped).Message);
    }

    [Fact]
    public void Wrong_chain_id()
    {
        var all = PayloadCodec.Encode(Raws());
        var c = PayloadCodec.Decode(all, 1);
        Assert.Equal(ErrorCodes.WrongChainId, c.Error?.Code);
        Assert.Equal("transaction 0: chain id 42069, expected 1", c.Error!.Message);
    }

    [Fact]
    public void Limits_on_count_and_size()
    {
        var all = PayloadCodec.Encode(Raws());
        var many = Fails(all, new PayloadLimits(MaxBytes: 1 << 20, MaxTxs: 3));
        Assert.Equal(ErrorCodes.PayloadTooLarge, many.Code);
        Assert.Equal("payload: more than 3 transactions", many.Message);
        Assert.True(PayloadCodec.Decode(all, ChainId, new PayloadLimits(1 << 20, 4)).IsOk);
        var big = Fails(all, new PayloadLimits(MaxBytes: all.Length - 1, MaxTxs: 100));
        Assert.Equal(ErrorCodes.PayloadTooLarge, big.Code);
        Assert.True(PayloadCodec.Decode(all, ChainId, new PayloadLimits(all.Length, 100)).IsOk);
    }

    [Fact]
    public void High_s_transaction_signature_is_refused()
    {
        var raw = Raws()[2];
        Assert.True(Rlp.TryRead(raw, 1, raw.Length, out var body, out _));
        var fields = new List<RlpItem>();
        Assert.True(Rlp.TryReadList(raw, body, fields, out _));
        var sItem = fields[^1];
        var s = new BigInteger(raw.AsSpan(sItem.PayloadStart, sItem.PayloadLength), isUnsigned: true, isBigEndian: true);
        using var ms = new MemoryStream();
        for (var i = 0; i < fields.Count - 1; i++) ms.Write(raw, fields[i].Start, fields[i].EncodedLength);
        ms.Write(Rlp.EncodeUInt(Signature.CurveOrder - s));
        byte[] mutated = [2, .. Rlp.WrapList(ms.ToArray())];
        var e = Fails(PayloadCodec.Encode([mutated]));
        Assert.Equal(ErrorCodes.InvalidPayload, e.Code);
        Assert.Contains("high-s", e.Message);
    }

    [Fact]
    public void Gas_rules()
    {
        var txs = PayloadCodec.Decode(PayloadCodec.Encode(Raws()), ChainId).Transactions;
        Assert.Null(GasCheck.CheckLimits(100, 100, 100));
        Assert.Equal(ErrorCodes.GasLimitExceeded, GasCheck.CheckLimits(101, 100, 200)?.Code);
        Assert.Equal(ErrorCodes.GasLimitExceeded, GasCheck.CheckLimits(1, 201, 200)?.Code);
        Assert.Null(GasCheck.CheckAgainstTransactions(4 * 21_000, txs));
        Assert.Equal(ErrorCodes.InvalidGas, GasCheck.CheckAgainstTransactions(4 * 21_000 - 1, txs)?.Code);
        var sum = txs.Aggregate(0UL, (a, t) => a + t.GasLimit);
        Assert.Null(GasCheck.CheckAgainstTransactions(sum, txs));
        Assert.Equal(ErrorCodes.InvalidGas, GasCheck.CheckAgainstTransactions(sum + 1, txs)?.Code);
        Assert.Null(GasCheck.CheckAgainstTransactions(0, []));
    }

    [Fact]
    public void Random_bytes_never_throw()
    {
        var rng = new Random(42);
        var raws = Raws();
        var all = PayloadCodec.Encode(raws);
        for (var i = 0; i < 2000; i++)
        {
            // Mutate a real payload at random positions: decoding must answer, never throw.
            var b = all.ToArray();
            for (var k = 0; k < 1 + rng.Next(3); k++) b[rng.Next(b.Length)] = (byte)rng.Next(256);
            var len = rng.Next(2) == 0 ? b.Length : rng.Next(b.Length);
            _ = PayloadCodec.Decode(b.AsSpan(0, len), ChainId);
        }
    }
}

public class SlotClockTests
{
    private sealed class FakeTime(long ms) : TimeProvider
    {
        public long Ms { get; set; } = ms;
        public override DateTimeOffset GetUtcNow() => DateTimeOffset.FromUnixTimeMilliseconds(Ms);
    }

    private const ulong Genesis = 1_700_000_000_000;

    [Fact]
    public void Slot_arithmetic()
    {
        var t = new FakeTime((long)Genesis + 4_100);
        var c = new SlotClock(t, Genesis);
        Assert.Equal(Genesis + 4_100, c.NowMs);
        Assert.Equal(2UL, c.CurrentSlot);
        Assert.Equal(Genesis + 6_000, c.StartMs(3));
        Assert.Equal(0UL, c.SlotAt(Genesis - 1));
        Assert.Equal(0UL, c.SlotAt(Genesis + 1_999));
        Assert.Equal(1UL, c.SlotAt(Genesis + 2_000));
    }

    [Fact]
    public void Auction_window_is_half_open()
    {
        var c = new SlotClock(new FakeTime(0), Genesis);
        Assert.Equal(Genesis + 2_000, c.AuctionOpensMs(2));
        Assert.Equal(Genesis + 3_750, c.AuctionClosesMs(2));
        Assert.False(c.IsAuctionOpen(2, Genesis + 1_999));
        Assert.True(c.IsAuctionOpen(2, Genesis + 2_000));
        Assert.True(c.IsAuctionOpen(2, Genesis + 3_749));
        Assert.False(c.IsAuctionOpen(2, Genesis + 3_750));
        Assert.Equal(2UL, c.OpenAuctionSlot(Genesis + 2_000));
        Assert.Equal(2UL, c.OpenAuctionSlot(Genesis + 3_749));
        Assert.Null(c.OpenAuctionSlot(Genesis + 3_750));
        Assert.Null(c.OpenAuctionSlot(Genesis + 3_999));
        Assert.Equal(3UL, c.OpenAuctionSlot(Genesis + 4_000));
    }

    [Fact]
    public void Slot_zero_opens_one_slot_before_genesis()
    {
        var c = new SlotClock(new FakeTime(0), Genesis);
        Assert.Equal(Genesis - 2_000, c.AuctionOpensMs(0));
        Assert.Equal(0UL, c.OpenAuctionSlot(Genesis - 2_000));
        Assert.Null(c.OpenAuctionSlot(Genesis - 2_001));
        Assert.Null(c.OpenAuctionSlot(Genesis - 100));
        Assert.Equal(1UL, c.OpenAuctionSlot(Genesis));
        Assert.Equal(0UL, new SlotClock(new FakeTime(0), 1_000).AuctionOpensMs(0));
    }

    [Fact]
    public void Follows_the_time_provider_and_custom_timing()
    {
        var t = new FakeTime((long)Genesis);
        var c = new SlotClock(t, Genesis, slotMs: 12_000, closeOffsetMs: 1_000);
        Assert.Equal(1UL, c.OpenAuctionSlot());
        t.Ms += 11_000;
        Assert.Null(c.OpenAuctionSlot());
        t.Ms += 1_000;
        Assert.Equal(2UL, c.OpenAuctionSlot());
        Assert.Equal(1UL, c.CurrentSlot);
        Assert.Throws<ArgumentOutOfRangeException>(() => new SlotClock(t, 0, 1000, 1000));
        Assert.Throws<ArgumentOutOfRangeException>(() => new SlotClock(t, 0, 0, 0));
    }

    [Fact]
    public void Schedule_basics()
    {
        Assert.Equal(0UL, ProposerSchedule.EpochOf(31));
        Assert.Equal(1UL, ProposerSchedule.EpochOf(32));
        Assert.Throws<ArgumentException>(() => ProposerSchedule.ProposerFor(1, Hash32.Zero, []));
        var one = new[] { Address.Parse("0x" + new string('1', 40)) };
        Assert.Equal(one[0], ProposerSchedule.ProposerFor(ulong.MaxValue, Keccak.Hash("r"u8), one));
        // The seed of epoch e + 1 is recorded in the first half of epoch e only.
        Assert.Equal(1UL, ProposerSchedule.SeedRecordEpoch(0));
        Assert.Equal(1UL, ProposerSchedule.SeedRecordEpoch(15));
        Assert.Null(ProposerSchedule.SeedRecordEpoch(16));
        Assert.Null(ProposerSchedule.SeedRecordEpoch(31));
        Assert.Equal(2UL, ProposerSchedule.SeedRecordEpoch(32));
    }

    [Fact]
    public void Key_signs_and_recovers_on_both_backends()
    {
        var key = ProtocolKey.Generate();
        var digest = Keccak.Hash("message"u8);
        var sig = key.Sign(digest);
        Assert.Equal(CryptoBackend.Native, SignatureRecovery.ActiveBackend);
        Assert.True(SignatureRecovery.TryRecoverNative(digest, sig, out var a));
        Assert.True(SignatureRecovery.TryRecoverManaged(digest, sig, out var b));
        Assert.Equal(key.Address, a);
        Assert.Equal(key.Address, b);
        Assert.False(SignatureRecovery.Verify(Keccak.Hash("other"u8), sig, key.Address));
        Assert.StartsWith("ProtocolKey(0x", key.ToString());
    }
}
