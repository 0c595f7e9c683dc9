namespace PbsMarket.Core;

/// <summary>
/// Slot arithmetic. Slot s starts at genesis + s * slotMs. The auction for slot s is open on the
/// half-open interval [start(s-1), start(s) - closeOffset): a bid received exactly at the close is refused.
/// Times before genesis belong to slot 0 (<see cref="SlotAt"/>); slot 0's auction opens at
/// genesis - slotMs, or at 0 if genesis is earlier than one slot after the epoch.
/// </summary>
public sealed class SlotClock
{
    private readonly TimeProvider _time;

    public SlotClock(TimeProvider time, ulong genesisMs, ulong slotMs = 2000, ulong closeOffsetMs = 250)
    {
        ArgumentNullException.ThrowIfNull(time);
        if (slotMs == 0) throw new ArgumentOutOfRangeException(nameof(slotMs), "slot length must be positive");
        if (closeOffsetMs >= slotMs) throw new ArgumentOutOfRangeException(nameof(closeOffsetMs), "close offset must be shorter than a slot");
        _time = time;
        GenesisMs = genesisMs;
        SlotMs = slotMs;
        CloseOffsetMs = closeOffsetMs;
    }

    public ulong GenesisMs { get; }
    public ulong SlotMs { get; }
    public ulong CloseOffsetMs { get; }

    /// <summary>Unix milliseconds now (clamped at 0).</summary>
    public ulong NowMs
    {
        get
        {
            var ms = _time.GetUtcNow().ToUnixTimeMilliseconds();
            return ms < 0 ? 0 : (ulong)ms;
        }
    }

    public ulong StartMs(ulong slot) => checked(GenesisMs + slot * SlotMs);

    /// <summary>
    /// The highest slot the market can have: one whose next slot still starts within a signed 64-bit
    /// millisecond time (what PostgreSQL, JSON clients and <see cref="StartMs"/> of slot + 1 can hold).
    /// Any slot above it is refused with <c>out_of_range</c> before any arithmetic is done on it.
    /// </summary>
    public ulong MaxSlot => ((ulong)long.MaxValue - GenesisMs) / SlotMs - 1;

    /// <summary>Null when <paramref name="slot"/> is within <see cref="MaxSlot"/>; else an <c>out_of_range</c> error naming <paramref name="field"/>.</summary>
    public ProtocolError? CheckSlot(ulong slot, string field = "slot") =>
        slot <= MaxSlot ? null : new(ErrorCodes.OutOfRange, $"{field} {slot} is beyond the last slot this market can have ({MaxSlot})");

    /// <summary>The slot containing <paramref name="ms"/> (0 before genesis).</summary>
    public ulong SlotAt(ulong ms) => ms < GenesisMs ? 0 : (ms - GenesisMs) / SlotMs;

    public ulong CurrentSlot => SlotAt(NowMs);

    /// <summary>= start(slot - 1); for slot 0, genesis - slotMs (saturating at 0).</summary>
    public ulong AuctionOpensMs(ulong slot) =>
        slot > 0 ? StartMs(slot - 1) : (GenesisMs >= SlotMs ? GenesisMs - SlotMs : 0);

    /// <summary>= start(slot) - closeOffset (exclusive: the auction is closed at this instant).</summary>
    public ulong AuctionClosesMs(ulong slot) => StartMs(slot) - CloseOffsetMs;

    public bool IsAuctionOpen(ulong slot, ulong nowMs) => nowMs >= AuctionOpensMs(slot) && nowMs < AuctionClosesMs(slot);

    public bool IsAuctionOpen(ulong slot) => IsAuctionOpen(slot, NowMs);

    /// <summary>The slot whose auction is open at <paramref name="nowMs"/>, or null in the gap between a close and the next slot start.</summary>
    public ulong? OpenAuctionSlot(ulong nowMs)
    {
        ulong candidate = nowMs < GenesisMs ? 0 : SlotAt(nowMs) + 1;
        return IsAuctionOpen(candidate, nowMs) ? candidate : null;
    }

    public ulong? OpenAuctionSlot() => OpenAuctionSlot(NowMs);
}
