using System.Buffers.Binary;
using System.Numerics;

namespace PbsMarket.Core;

/// <summary>
/// The proposer rotation, identical in the relay, the proposer client and the L1 inbox:
/// <c>activeSet[uint256(keccak256(abi.encode(uint256(slot)))) % activeSet.length]</c>,
/// where the active set is the one L1 reports for the slot's epoch, in L1's order.
/// </summary>
public static class ProposerSchedule
{
    public const ulong DefaultSlotsPerEpoch = 32;

    public static Address ProposerFor(ulong slot, IReadOnlyList<Address> activeSet)
    {
        ArgumentNullException.ThrowIfNull(activeSet);
        if (activeSet.Count == 0) throw new ArgumentException("the active proposer set is empty", nameof(activeSet));
        return activeSet[IndexFor(slot, activeSet.Count)];
    }

    /// <summary>The index into an active set of <paramref name="count"/> proposers.</summary>
    public static int IndexFor(ulong slot, int count)
    {
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count));
        Span<byte> word = stackalloc byte[32];
        word.Clear();
        BinaryPrimitives.WriteUInt64BigEndian(word[24..], slot);
        Span<byte> h = stackalloc byte[32];
        Keccak.Hash(word, h);
        var n = new BigInteger(h, isUnsigned: true, isBigEndian: true);
        return (int)(n % count);
    }

    public static ulong EpochOf(ulong slot, ulong slotsPerEpoch = DefaultSlotsPerEpoch)
    {
        if (slotsPerEpoch == 0) throw new ArgumentOutOfRangeException(nameof(slotsPerEpoch));
        return slot / slotsPerEpoch;
    }

    public static ulong FirstSlotOfEpoch(ulong epoch, ulong slotsPerEpoch = DefaultSlotsPerEpoch) => checked(epoch * slotsPerEpoch);
}
