using PbsMarket.Core;

namespace PbsMarket.L2;

/// <summary>
/// The rules of the L2 chain that L1 does not check and every derivation must apply the same way (docs/l2.md):
/// block N of the L2 chain is the posted (or proposed) header with <c>number</c> N; its coinbase is the header's builder;
/// its EVM timestamp follows <see cref="EvmTimestamp"/>; a transaction that cannot execute at its place is skipped and the
/// block stands.
/// </summary>
public static class L2Rules
{
    /// <summary>The genesis block's EVM timestamp: 0, so that every engine that starts from the genesis agrees.</summary>
    public const ulong GenesisTimestamp = 0;

    /// <summary>
    /// Whole seconds, strictly increasing: the slot's start in seconds (rounded down), or one second after the parent when
    /// that is not later (slots shorter than a second, or a parent already ahead). An L2 clock may so run ahead of the
    /// wall clock while slots are shorter than a second; it never runs backwards.
    /// </summary>
    public static ulong EvmTimestamp(ulong parentTimestamp, ulong timestampMs) => Math.Max(timestampMs / 1000, parentTimestamp + 1);

    /// <summary>The builder earns the block's fees (the L2 has no base fee: every fee is a tip).</summary>
    public static Address Coinbase(Header header) => header.Builder;
}
