using System.ComponentModel.DataAnnotations;
using PbsMarket.Core;

namespace PbsMarket.Relay;

/// <summary>Everything an operator sets for one relay instance (section "Relay", env PBS_Relay__X).</summary>
public sealed class RelayOptions
{
    public const string Section = "Relay";

    [Required] public string Redis { get; set; } = "127.0.0.1:6379";
    [Required] public string Postgres { get; set; } = "Host=127.0.0.1;Username=postgres;Database=pbs";

    /// <summary>L1 JSON-RPC endpoint (anvil in development).</summary>
    [Required] public string L1Rpc { get; set; } = "http://127.0.0.1:8545";

    /// <summary>Network name, prefixed to every Redis key so that markets can share a Redis.</summary>
    [Required, RegularExpression("^[a-z0-9-]{1,32}$")] public string Network { get; set; } = "devnet";

    [Range(1, long.MaxValue)] public long L1ChainId { get; set; } = 31337;
    [Range(1, long.MaxValue)] public long L2ChainId { get; set; } = 901;

    /// <summary>The L1 inbox contract: the EIP-712 verifying contract.</summary>
    [Required] public string Inbox { get; set; } = "";
    public string Registry { get; set; } = "";
    public string Escrow { get; set; } = "";

    [Range(0, long.MaxValue)] public long GenesisMs { get; set; }
    [Range(100, 600_000)] public long SlotMs { get; set; } = 2000;
    [Range(0, 60_000)] public long CloseOffsetMs { get; set; } = 250;
    [Range(1, 1024)] public int SlotsPerEpoch { get; set; } = 32;

    /// <summary>Minimum bid, in wei, as a decimal string.</summary>
    public string ReservePrice { get; set; } = "0";
    public PriceRule PriceRule { get; set; } = PriceRule.SecondPrice;

    [Range(21_000, long.MaxValue)] public long MaxGasLimit { get; set; } = 30_000_000;
    [Range(1, 64 * 1024 * 1024)] public int MaxPayloadBytes { get; set; } = 1024 * 1024;
    [Range(1, 100_000)] public int MaxTxsPerBlock { get; set; } = 5_000;
    [Range(1, 100_000)] public int MaxBidsPerBuilderPerSlot { get; set; } = 500;

    /// <summary>The relay's signing key, hex; or <see cref="KeystorePath"/> with a password.</summary>
    public string? SigningKey { get; set; }
    public string? KeystorePath { get; set; }
    public string? KeystorePasswordFile { get; set; }

    /// <summary>How many recent slots the data API serves from Redis before PostgreSQL.</summary>
    [Range(4, 100_000)] public int RecentSlots { get; set; } = 256;
    /// <summary>How long a slot's keys live in Redis (seconds).</summary>
    [Range(60, 7 * 24 * 3600)] public int SlotTtlSeconds { get; set; } = 3600;

    /// <summary>A name for this instance in logs and archive claims; defaults to host and pid.</summary>
    public string? InstanceId { get; set; }

    /// <summary>Run the L1 sync and poster loops (one instance holds the lease at a time).</summary>
    public bool RunL1 { get; set; } = true;
    /// <summary>Key that pays for L1 transactions; defaults to the signing key.</summary>
    public string? L1SenderKey { get; set; }

    public BigInteger Reserve => BigInteger.Parse(ReservePrice, System.Globalization.CultureInfo.InvariantCulture);
}
