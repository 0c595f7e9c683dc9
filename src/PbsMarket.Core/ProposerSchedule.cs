using System.Buffers.Binary;
using System.Numerics;

namespace PbsMarket.Core;

/// <summary>
/// The proposer rotation (protocol version 2), identical in the relay, the proposer client and the L1 registry:
/// <c>set_e[uint256(keccak256(abi.encode(seed_e, uint256(slot)))) % |set_e|]</c> with <c>e = slot / SLOTS_PER_EPOCH</c>,
/// <c>seed_e = keccak256(abi.encode(R, e))</c>, <c>R</c> the L1 randomness (prevrandao) of the latest seed record at
/// an epoch &lt;= e, and <c>set_e</c> the set L1 reports for the epoch, in L1's order. A slot whose drawn proposer is
/// slashed is empty (L1 answers address(0)); that check is the caller's, against L1's slashed status.
/// The seed record for epoch e can be made only in the first half of epoch e - 1 (see <see cref="SeedRecordEpoch"/>).
/// </summary>
public static class ProposerSchedule
{
    public const ulong DefaultSlotsPerEpoch = 32;

    /// <summary>seed_e = keccak256(abi.encode(randomness, uint256(epoch))).</summary>
    public static Hash32 Seed(Hash32 randomness, ulong epoch)
    {
        Span<byte> buf = stackalloc byte[64];
        randomness.Span.CopyTo(buf);
        buf[32..56].Clear();
        BinaryPrimitives.WriteUInt64BigEndian(buf[56..], epoch);
        return Keccak.Hash(buf);
    }

    public static Address ProposerFor(ulong slot, Hash32 seed, IReadOnlyList<Address> activeSet)
    {
        ArgumentNullException.ThrowIfNull(activeSet);
        if (activeSet.Count == 0) throw new ArgumentException("the active proposer set is empty", nameof(activeSet));
        return activeSet[IndexFor(slot, seed, activeSet.Count)];
    }

    /// <summary>The index into an active set of <paramref name="count"/> proposers: keccak256(abi.encode(seed, uint256(slot))) % count.</summary>
    public static int IndexFor(ulong slot, Hash32 seed, int count)
    {
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count));
        Span<byte> buf = stackalloc byte[64];
        seed.Span.CopyTo(buf);
        buf[32..56].Clear();
        BinaryPrimitives.WriteUInt64BigEndian(buf[56..], slot);
        Span<byte> h = stackalloc byte[32];
        Keccak.Hash(buf, h);
        var n = new BigInteger(h, isUnsigned: true, isBigEndian: true);
        return (int)(n % count);
    }

    public static ulong EpochOf(ulong slot, ulong slotsPerEpoch = DefaultSlotsPerEpoch)
    {
        if (slotsPerEpoch == 0) throw new ArgumentOutOfRangeException(nameof(slotsPerEpoch));
        return slot / slotsPerEpoch;
    }

    public static ulong FirstSlotOfEpoch(ulong epoch, ulong slotsPerEpoch = DefaultSlotsPerEpoch) => checked(epoch * slotsPerEpoch);

    /// <summary>
    /// The epoch whose seed may be recorded during <paramref name="slot"/>: e + 1 while the slot is in the first half of
    /// its epoch e, null in the second half (the record window of epoch e + 1 is the first half of epoch e).
    /// </summary>
    public static ulong? SeedRecordEpoch(ulong slot, ulong slotsPerEpoch = DefaultSlotsPerEpoch)
    {
        if (slotsPerEpoch == 0) throw new ArgumentOutOfRangeException(nameof(slotsPerEpoch));
        var epoch = slot / slotsPerEpoch;
        return slot % slotsPerEpoch < (slotsPerEpoch + 1) / 2 ? epoch + 1 : null;
    }
}
