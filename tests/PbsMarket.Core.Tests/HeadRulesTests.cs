namespace PbsMarket.Core.Tests;

/// <summary>The head rules and the L1 transaction limits: pure checks, every branch with its code.</summary>
public class HeadRulesTests
{
    const ulong Genesis = 1_000_000, SlotMs = 2000, Offset = 250;
    static readonly SlotClock Clock = new(TimeProvider.System, Genesis, SlotMs, Offset);
    static ulong Close(ulong s) => Clock.AuctionClosesMs(s);

    static Header H(ulong slot, ulong number, Hash32 parent) =>
        new(901, slot, number, parent, Clock.StartMs(slot), 30_000_000, 0, Keccak.Hash(PayloadCodec.Empty), Address.Zero, Address.Zero, 0);

    [Fact]
    public void Timing_rules_in_order()
    {
        var now = Clock.StartMs(10) + 100; // in slot 10; slot 10's auction closed, slot 11's open
        Assert.Null(HeadRules.CheckTiming(Clock, 10, now));
        Assert.Equal(ErrorCodes.TooEarly, HeadRules.CheckTiming(Clock, 11, now)!.Code);
        Assert.Equal(ErrorCodes.FutureSlot, HeadRules.CheckTiming(Clock, 12, now)!.Code);
        Assert.Equal(ErrorCodes.FutureSlot, HeadRules.CheckTiming(Clock, 24, now)!.Code);
        Assert.Equal(ErrorCodes.OutOfRange, HeadRules.CheckTiming(Clock, ulong.MaxValue, now)!.Code);
        Assert.Equal(ErrorCodes.OutOfRange, HeadRules.CheckTiming(Clock, Clock.MaxSlot + 1, now)!.Code);
        Assert.Equal(ErrorCodes.FutureSlot, HeadRules.CheckTiming(Clock, Clock.MaxSlot, now)!.Code);
        // Slot s is in time until slot s + 4's auction closes.
        Assert.Null(HeadRules.CheckTiming(Clock, 9, now));
        Assert.Null(HeadRules.CheckTiming(Clock, 7, now));
        Assert.Equal(ErrorCodes.TooLate, HeadRules.CheckTiming(Clock, 6, now)!.Code);
        Assert.Equal(ErrorCodes.TooLate, HeadRules.CheckTiming(Clock, 2, now)!.Code);
        Assert.Null(HeadRules.CheckTiming(Clock, 9, Close(13) - 1));
        Assert.Null(HeadRules.CheckTiming(Clock, 10, Close(10)));
        Assert.Equal(ErrorCodes.TooLate, HeadRules.CheckTiming(Clock, 10, Close(14))!.Code);
        // Slot 11 at the very end of slot 10, after its close: adoptable.
        Assert.Null(HeadRules.CheckTiming(Clock, 11, Close(11)));
    }

    [Fact]
    public void Extends_rules()
    {
        var a = Keccak.Hash("a"u8);
        var head = new ChainHead(a, 5, 10);
        Assert.Null(HeadRules.CheckExtends(head, 11, 6, a));
        Assert.Null(HeadRules.CheckExtends(head, 14, 6, a)); // missed slots in between are fine
        Assert.Equal(ErrorCodes.NotAfterHead, HeadRules.CheckExtends(head, 10, 6, a)!.Code);
        Assert.Equal(ErrorCodes.NotAfterHead, HeadRules.CheckExtends(head, 3, 6, a)!.Code);
        Assert.Equal(ErrorCodes.StaleParent, HeadRules.CheckExtends(head, 11, 7, a)!.Code);
        Assert.Equal(ErrorCodes.StaleParent, HeadRules.CheckExtends(head, 11, ulong.MaxValue, a)!.Code);
        Assert.Equal(ErrorCodes.StaleParent, HeadRules.CheckExtends(head, 11, 6, Hash32.Zero)!.Code);
        Assert.Null(HeadRules.CheckExtends(ChainHead.Genesis, 0, 1, Hash32.Zero));
        Assert.Null(HeadRules.CheckAdoption(Clock, head, H(11, 6, a), Close(11)));
        Assert.Equal(ErrorCodes.FutureSlot, HeadRules.CheckAdoption(Clock, head, H(30, 6, a), Close(11))!.Code);
    }

    [Fact]
    public void Slot_range_leaves_room_for_the_next_slot()
    {
        var c = new SlotClock(TimeProvider.System, Genesis, SlotMs, Offset);
        Assert.True(c.StartMs(c.MaxSlot + 1) <= long.MaxValue);
        Assert.Null(c.CheckSlot(c.MaxSlot));
        Assert.Contains("beyond the last slot", c.CheckSlot(c.MaxSlot + 1, "header.slot")!.Message);
    }

    [Fact]
    public void L1_limits_refuse_what_no_transaction_carries_and_pack_batches_that_fit()
    {
        var max = L1Limits.MaxPostablePayloadBytes(30_000_000);
        Assert.InRange(max, 120_000, L1Limits.MaxTxBytes);
        Assert.Null(L1Limits.CheckPostable(max));
        Assert.Equal(ErrorCodes.Unpostable, L1Limits.CheckPostable(max + 1)!.Code);
        Assert.Equal(ErrorCodes.Unpostable, L1Limits.CheckPostable(1 << 20)!.Code);
        // A small block gas limit makes gas, not bytes, the bound.
        Assert.True(L1Limits.MaxPostablePayloadBytes(2_000_000) < max);

        var sizes = new[] { 100_000, 100_000, 10, 10, 60_000, 60_000, 60_000 };
        var batches = L1Limits.Pack(sizes, n => n, 32, 30_000_000);
        Assert.Equal(sizes, batches.SelectMany(b => b));
        foreach (var b in batches)
        {
            Assert.True(L1Limits.TxOverheadBytes + b.Sum(L1Limits.ItemBytes) <= L1Limits.MaxTxBytes);
            Assert.True(L1Limits.TxBaseGas + (ulong)b.Sum(n => (long)L1Limits.ItemGas(n)) <= L1Limits.MaxTxGas);
        }
        Assert.Equal(4, batches.Count);
        Assert.Equal(3, L1Limits.Pack(Enumerable.Repeat(0, 70), n => n, 32, 30_000_000).Count);
    }
}
