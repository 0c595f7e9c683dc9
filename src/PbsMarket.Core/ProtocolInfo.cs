namespace PbsMarket.Core;

/// <summary>
/// Protocol version implemented by this library. Version 2 changed what proposers sign (<see cref="Proposal"/>) and
/// what L1 takes (docs/settlement.md); the builder-facing protocol (EIP-712 domain version "1") is unchanged.
/// </summary>
public static class ProtocolInfo
{
    public const int Version = 2;
}
