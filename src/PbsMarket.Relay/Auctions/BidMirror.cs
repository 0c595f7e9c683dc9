using System.Collections.Concurrent;
using PbsMarket.Core;

namespace PbsMarket.Relay.Auctions;

/// <summary>
/// The bids this instance accepted, by slot and sequence number, as it stored them: the close takes them from here
/// instead of reading back and parsing its own records (AuctionStore.CloseAsync). Kept for the last few slots only; a
/// slot whose copy is gone is read from Redis, so the mirror only ever saves work, never decides anything.
/// </summary>
internal sealed class BidMirror
{
    /// <summary>Slots kept behind the newest one seen: a close may come a few slots late (HeadRules.LateSlots).</summary>
    const ulong Keep = HeadRules.LateSlots + 2;

    readonly ConcurrentDictionary<ulong, ConcurrentDictionary<long, StoredBid>> _slots = new();
    ulong _newest;

    public void Add(ulong slot, StoredBid bid)
    {
        if (slot + Keep < Volatile.Read(ref _newest)) return;
        if (!_slots.TryGetValue(slot, out var bids))
        {
            bids = _slots.GetOrAdd(slot, _ => new());
            if (slot > Volatile.Read(ref _newest))
            {
                Volatile.Write(ref _newest, slot);
                foreach (var old in _slots.Keys) if (old + Keep < slot) _slots.TryRemove(old, out _);
            }
        }
        bids[bid.Sequence] = bid;
    }

    public IReadOnlyDictionary<long, StoredBid>? Of(ulong slot) => _slots.TryGetValue(slot, out var bids) ? bids : null;
}
