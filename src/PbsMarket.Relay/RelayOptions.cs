using System.ComponentModel.DataAnnotations;
using PbsMarket.Core;

namespace PbsMarket.Relay;

/// <summary>Everything an operator sets for one relay instance (section "Relay", env PBS_Relay__X).</summary>
public sealed class RelayOptions
{
    public const string Section = "Relay";

    [Required] public string Redis { get; set; } = "127.0.0.1:6379";

    /// <summary>What an acknowledgement waits for in Redis (docs/relay.md, "What 202 promises").</summary>
    public DurabilityOptions Durability { get; set; } = new();
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
    /// <summary>The L1 block the contracts were deployed at (`pbs deploy` writes it): where the escrow's deposit events begin.</summary>
    [Range(0, long.MaxValue)] public long DeployedAtBlock { get; set; }
    public string Escrow { get; set; } = "";

    [Range(0, long.MaxValue)] public long GenesisMs { get; set; }
    [Range(100, 600_000)] public long SlotMs { get; set; } = 2000;
    [Range(0, 60_000)] public long CloseOffsetMs { get; set; } = 250;
    [Range(1, 1024)] public int SlotsPerEpoch { get; set; } = 32;

    /// <summary>Minimum bid, in wei, as a decimal string.</summary>
    public string ReservePrice { get; set; } = "0";
    public PriceRule PriceRule { get; set; } = PriceRule.SecondPrice;

    /// <summary>
    /// Free collateral (escrow balance less what the builder owes), in wei as a decimal string, that a builder
    /// needs to bid at all (code <c>collateral_required</c>): without it, any fresh key could fill Redis for free.
    /// Default 0.01 ether; it must be at least 1.
    /// </summary>
    [RegularExpression("^[1-9][0-9]{0,76}$")] public string MinFreeCollateral { get; set; } = "10000000000000000";

    /// <summary>Bytes of payload one builder may keep stored per slot, over all its bids (code <c>storage_budget</c>).
    /// Only each builder's latest payload is kept, so this bounds one payload plus a re-sent one.</summary>
    [Range(1024, 256 * 1024 * 1024)] public int MaxStoredBytesPerBuilderPerSlot { get; set; } = 4 * 1024 * 1024;

    [Range(21_000, long.MaxValue)] public long MaxGasLimit { get; set; } = 30_000_000;
    [Range(1, 64 * 1024 * 1024)] public int MaxPayloadBytes { get; set; } = 1024 * 1024;
    [Range(1, 100_000)] public int MaxTxsPerBlock { get; set; } = 5_000;
    [Range(1, 100_000)] public int MaxBidsPerBuilderPerSlot { get; set; } = 500;

    /// <summary>Kestrel: open connections at once; a body must arrive at least this fast (after a 2 s grace);
    /// request headers within this many seconds.</summary>
    [Range(1, 1_000_000)] public int MaxConnections { get; set; } = 2048;
    [Range(1, int.MaxValue)] public int MinBodyBytesPerSecond { get; set; } = 16 * 1024;
    [Range(1, 300)] public int RequestHeadersTimeoutSeconds { get; set; } = 5;

    /// <summary>Rate limits (token buckets, refilled every second; refusals are 429 rate_limited with Retry-After):
    /// bids per builder (counted once the signature is verified), and requests per client address
    /// (bids included, with a budget <see cref="BidRequestsPerSecondPerAddress"/> of their own).</summary>
    [Range(1, 1_000_000)] public int BidsPerSecondPerBuilder { get; set; } = 200;
    [Range(1, 1_000_000)] public int RequestsPerSecondPerAddress { get; set; } = 200;
    [Range(1, 1_000_000)] public int BidRequestsPerSecondPerAddress { get; set; } = 2000;
    /// <summary>Data API reads (slots, builders, proposers, proofs) running at once across all clients; the event stream is apart.</summary>
    [Range(1, 1024)] public int MaxConcurrentDataRequests { get; set; } = 4;
    /// <summary>A page of GET /relay/v1/data/slots stops adding slots once it holds this many bids (it then has a next cursor).</summary>
    [Range(1, 10_000_000)] public int MaxBidsPerDataPage { get; set; } = 2_000;

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

    public BigInteger MinFreeCollateralWei => BigInteger.Parse(MinFreeCollateral, System.Globalization.CultureInfo.InvariantCulture);

    public BigInteger Reserve => BigInteger.Parse(ReservePrice, System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>Section Relay:Durability: a replica's confirmation before a bid's 202 and a proposal's 200.</summary>
public sealed class DurabilityOptions
{
    /// <summary>Replicas of the Redis master that must confirm a write (Redis <c>WAIT</c>) before it is acknowledged; 0 = none.</summary>
    [Range(0, 16)] public int WaitReplicas { get; set; }

    /// <summary>How long to wait for them (ms); past it the write is answered 503 <c>unavailable</c>, not acknowledged.</summary>
    [Range(1, 60_000)] public int WaitTimeoutMs { get; set; } = 500;
}
