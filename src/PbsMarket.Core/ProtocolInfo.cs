namespace PbsMarket.Core;

/// <summary>Protocol version implemented by this library.</summary>
public static class ProtocolInfo
{
    public const int Version = 1;
}
