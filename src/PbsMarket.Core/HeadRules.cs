namespace PbsMarket.Core;

/// <summary>A chain head as the relay and the proposer client know it: the header hash, its number and its slot.</summary>
public readonly record struct ChainHead(Hash32 Hash, ulong Number, ulong Slot)
{
    public static readonly ChainHead Genesis = new(Hash32.Zero, 0, 0);
}

/// <summary>
/// When a signed header for slot s may become the head (docs/protocol.md, "Head rules"). One set of pure
/// checks, used by the relay for its own proposals and for announced heads, and by the proposer client for the
/// heads relays report:
/// <list type="number">
/// <item>s is a slot the market can have (<see cref="SlotClock.MaxSlot"/>): <c>out_of_range</c>;</item>
/// <item>s &lt;= current slot + 1 (nobody can know a later block): <c>future_slot</c>;</item>
/// <item>s's auction has closed (a header before its close is not a proposal yet): <c>too_early</c>;</item>
/// <item>it arrives before the auction of slot s + <see cref="LateSlots"/> closes: <c>too_late</c>. Later than that, L1 holds
/// it (the proposer client posts its own blocks four slots on) and the relay takes it from L1's head instead. A late block
/// that extends the head is still taken: refusing it would leave the relay behind every proposer that built on it;</item>
/// <item>s is after the head's slot: <c>not_after_head</c>;</item>
/// <item>its parent is the head and its number the head's + 1: <c>stale_parent</c>.</item>
/// </list>
/// Timing first (it needs no state), then the head.
/// </summary>
public static class HeadRules
{
    /// <summary>How many slots after its own a header may still arrive and become the head.</summary>
    public const ulong LateSlots = 4;

    public static ProtocolError? CheckTiming(SlotClock clock, ulong slot, ulong nowMs)
    {
        ArgumentNullException.ThrowIfNull(clock);
        if (clock.CheckSlot(slot) is { } range) return range;
        var current = clock.SlotAt(nowMs);
        if (slot > current + 1)
            return new(ErrorCodes.FutureSlot, $"slot {slot} is more than one slot after the current slot {current}");
        var closes = clock.AuctionClosesMs(slot);
        if (nowMs < closes)
            return new(ErrorCodes.TooEarly, $"slot {slot}'s auction closes at {closes} (now {nowMs}); no header for it can be proposed yet");
        var last = clock.AuctionClosesMs(slot + LateSlots);
        if (nowMs >= last)
            return new(ErrorCodes.TooLate, $"slot {slot + LateSlots}'s auction closed at {last} (now {nowMs}); a head for slot {slot} comes too late (L1's head is taken instead)");
        return null;
    }

    public static ProtocolError? CheckExtends(ChainHead head, ulong slot, ulong number, Hash32 parentHash)
    {
        if (head.Number > 0 && slot <= head.Slot)
            return new(ErrorCodes.NotAfterHead, $"slot {slot} is not after the head's slot {head.Slot}");
        return CheckParent(head.Hash, head.Number, number, parentHash);
    }

    /// <summary>The parent part alone (for a head whose slot is not known, such as an auction's copy of it or a relay-reported head).</summary>
    public static ProtocolError? CheckParent(Hash32 headHash, ulong headNumber, ulong number, Hash32 parentHash)
    {
        if (parentHash != headHash) return new(ErrorCodes.StaleParent, $"parent_hash {parentHash} is not the head {headHash}");
        if (number != headNumber + 1) return new(ErrorCodes.StaleParent, $"number {number} does not extend the head (expected {headNumber + 1})");
        return null;
    }

    /// <summary>Every rule: the header may become the head now.</summary>
    public static ProtocolError? CheckAdoption(SlotClock clock, ChainHead head, Header header, ulong nowMs)
    {
        ArgumentNullException.ThrowIfNull(header);
        return CheckTiming(clock, header.Slot, nowMs) ?? CheckExtends(head, header.Slot, header.Number, header.ParentHash);
    }
}
