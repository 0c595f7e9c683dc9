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

    /// <summary>
    /// The L2 node's relay port (`pbs l2node`, docs/l2.md): when set, every bid's block is executed there on its parent
    /// before it is accepted (codes invalid_nonce, insufficient_funds, simulation_failed, wrong_gas_used). Empty: bids
    /// are not simulated.
    /// </summary>
    public string L2Rpc { get; set; } = "";

    /// <summary>How long a bid's simulation may take before the bid is answered 503 unavailable.</summary>
    [Range(50, 60_000)] public int L2SimulationTimeoutMs { get; set; } = 2000;

    /// <summary>
    /// With <see cref="L2Rpc"/> set: <c>pessimistic</c> simulates every bid before its receipt; <c>optimistic</c> accepts a
    /// bid of a builder in good standing (its value already within its free collateral) before simulating it, simulates
    /// the leading bids during the auction and always the winner (and the second-price runner-up) before the result
    /// exists; a builder whose block fails is demoted to pessimistic for <see cref="DemotionSlots"/> slots (docs/l2.md,
    /// "Optimistic simulation").
    /// </summary>
    [RegularExpression("^(pessimistic|optimistic)$")] public string Simulation { get; set; } = "pessimistic";

    /// <summary>The heaviest block (its <c>gas_used</c>) taken optimistically; a heavier one is simulated before its receipt,
    /// so that the close never has to simulate a block too slow for the slot.</summary>
    [Range(0, long.MaxValue)] public long OptimisticMaxGasUsed { get; set; } = 5_000_000;

    /// <summary>Optimistic mode: a bid that arrives less than this long before its auction closes is simulated before its
    /// receipt, so that the close finds every optimistic bid already simulated and need not simulate while the proposer
    /// waits (a last-moment bid would otherwise always be simulated then). If the node cannot answer before the close, the
    /// bid is taken optimistically after all (never refused for the node's sake: docs/l2.md).</summary>
    [Range(0, 60_000)] public int OptimisticCutoffMs { get; set; } = 200;

    /// <summary>Slots a builder whose optimistic bid failed execution stays demoted (its bids simulated before their receipt).</summary>
    [Range(1, 1_000_000)] public int DemotionSlots { get; set; } = 64;
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

    // ---- timings, timeouts, retries and budgets of the background loops (today's values as defaults; docs/relay.md) ----

    /// <summary>Redis connect, sync and async timeouts (a tighter one in the connection string wins).</summary>
    [Range(100, 60_000)] public int RedisTimeoutMs { get; set; } = 2000;
    /// <summary>Redis Cluster: the least time between two full reconfigurations of the client (roles and map re-read) after
    /// writes were refused for a node's role (Infrastructure/RedisRouting.cs).</summary>
    [Range(50, 60_000)] public int RedisRemapMinIntervalMs { get; set; } = 1000;
    /// <summary>How often the Redis client re-reads each node's role (StackExchange.Redis's ConfigCheckSeconds, 60 by
    /// default; a tighter one in the connection string wins): after a failover, the longest a wrong role can last when no
    /// write shows it.</summary>
    [Range(1, 3600)] public int RedisConfigCheckSeconds { get; set; } = 5;
    /// <summary>PostgreSQL connect timeout (a tighter one in the connection string wins).</summary>
    [Range(1, 300)] public int PostgresTimeoutSeconds { get; set; } = 5;
    /// <summary>Each /readyz check's deadline.</summary>
    [Range(50, 60_000)] public int ReadinessCheckTimeoutMs { get; set; } = 1000;
    /// <summary>Kestrel: idle keep-alive connections close after this; a body's first bytes get this grace before <see cref="MinBodyBytesPerSecond"/> applies.</summary>
    [Range(1, 3600)] public int KeepAliveTimeoutSeconds { get; set; } = 30;
    [Range(0, 300)] public int MinBodyRateGraceSeconds { get; set; } = 2;
    /// <summary>A comment line on idle event streams, so that proxies keep them open.</summary>
    [Range(1, 3600)] public int StreamHeartbeatSeconds { get; set; } = 15;

    /// <summary>L1 view: each JSON-RPC call's timeout; retries of a failed read (with exponential backoff from the delay) within an overall deadline.</summary>
    [Range(100, 300_000)] public int L1RpcTimeoutMs { get; set; } = 3000;
    [Range(0, 10)] public int L1ReadRetries { get; set; } = 2;
    [Range(1, 60_000)] public int L1ReadRetryDelayMs { get; set; } = 100;
    [Range(100, 600_000)] public int L1ReadTimeoutMs { get; set; } = 8000;
    /// <summary>L1 view refresh period (proposer sets, seeds, balances, the inbox head); default half a slot, at least 500 ms.</summary>
    [Range(50, 600_000)] public int? L1RefreshMs { get; set; }
    /// <summary>Blocks per query when scanning the escrow's deposit events.</summary>
    [Range(1, 1_000_000)] public int DepositScanBlocks { get; set; } = 10_000;
    /// <summary>L1 balance reads for keys not seen depositing: per second and at once (a flood of fresh keys costs no more).</summary>
    [Range(1, 10_000)] public int UnknownKeyReadsPerSecond { get; set; } = 10;
    [Range(1, 1000)] public int UnknownKeyConcurrentReads { get; set; } = 2;

    /// <summary>L1 poster: the posting lease's lifetime (renewed every third of it); the longest posting round; how long an
    /// item whose parent is not on L1 yet is retried; a transaction's fee replacement interval and receipt wait; each
    /// JSON-RPC call's timeout; the pause after an idle round (default a quarter slot, at least 200 ms) and after a failed one.</summary>
    [Range(1000, 600_000)] public int L1PosterLeaseMs { get; set; } = 10_000;
    [Range(1000, 3_600_000)] public int L1PosterRoundTimeoutMs { get; set; } = 90_000;
    [Range(1000, 3_600_000)] public int L1PosterParentWaitMs { get; set; } = 60_000;
    [Range(100, 600_000)] public int L1PosterReplaceAfterMs { get; set; } = 6000;
    [Range(1000, 3_600_000)] public int L1PosterReceiptTimeoutMs { get; set; } = 60_000;
    [Range(100, 300_000)] public int L1PosterRpcTimeoutMs { get; set; } = 10_000;
    [Range(10, 600_000)] public int? L1PosterIdleMs { get; set; }
    [Range(10, 600_000)] public int L1PosterErrorBackoffMs { get; set; } = 1000;

    /// <summary>Archiver: stream entries per batch; entries idle this long at another instance are claimed (checked at most
    /// every <see cref="ArchiveClaimEveryMs"/>); retry backoff from min to max while PostgreSQL fails.</summary>
    [Range(1, 10_000)] public int ArchiveBatch { get; set; } = 50;
    [Range(100, 3_600_000)] public int ArchiveClaimIdleMs { get; set; } = 10_000;
    [Range(100, 3_600_000)] public int ArchiveClaimEveryMs { get; set; } = 5000;
    [Range(1, 600_000)] public int ArchiveRetryMinMs { get; set; } = 200;
    [Range(1, 600_000)] public int ArchiveRetryMaxMs { get; set; } = 5000;

    public TimeSpan L1Refresh => TimeSpan.FromMilliseconds(L1RefreshMs ?? Math.Max(500, SlotMs / 2));
    public TimeSpan L1PosterIdle => TimeSpan.FromMilliseconds(L1PosterIdleMs ?? Math.Max(200, SlotMs / 4));

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

/// <summary>
/// Checks every <see cref="RelayOptions"/> setting at start (the host's ValidateOnStart): the ranges and patterns on the
/// properties, then the rules between settings. One message per bad setting, naming it: <c>Relay:SlotMs = 50: …</c>.
/// </summary>
public sealed class RelayOptionsValidation : Microsoft.Extensions.Options.IValidateOptions<RelayOptions>
{
    public Microsoft.Extensions.Options.ValidateOptionsResult Validate(string? name, RelayOptions o)
    {
        var errors = new List<string>();
        var results = new List<ValidationResult>();
        Validator.TryValidateObject(o, new ValidationContext(o), results, validateAllProperties: true);
        foreach (var r in results)
            foreach (var member in r.MemberNames.DefaultIfEmpty("?"))
                errors.Add($"{Setting(member)} = {Show(member, typeof(RelayOptions).GetProperty(member)?.GetValue(o))}: {r.ErrorMessage}");
        void Check(bool ok, string member, string rule)
        {
            if (!ok) errors.Add($"{Setting(member)} = {Show(member, typeof(RelayOptions).GetProperty(member)?.GetValue(o))}: {rule}");
        }
        var durability = new List<ValidationResult>();
        Validator.TryValidateObject(o.Durability, new ValidationContext(o.Durability), durability, validateAllProperties: true);
        foreach (var r in durability)
            foreach (var member in r.MemberNames.DefaultIfEmpty("?"))
                errors.Add($"{RelayOptions.Section}:Durability:{member} = {Convert.ToString(typeof(DurabilityOptions).GetProperty(member)?.GetValue(o.Durability), System.Globalization.CultureInfo.InvariantCulture)}: {r.ErrorMessage}");
        Check(o.CloseOffsetMs < o.SlotMs, nameof(o.CloseOffsetMs), "must be shorter than Relay:SlotMs");
        Check(string.IsNullOrEmpty(o.L2Rpc) || (Uri.TryCreate(o.L2Rpc, UriKind.Absolute, out var l2) && l2.Scheme is "http" or "https"), nameof(o.L2Rpc), "must be an http(s) URL (the L2 node's relay port)");
        Check(BigInteger.TryParse(o.ReservePrice, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out _),
            nameof(o.ReservePrice), "must be a whole number of wei (decimal digits)");
        foreach (var (member, value) in new[] { (nameof(o.Inbox), o.Inbox), (nameof(o.Registry), o.Registry), (nameof(o.Escrow), o.Escrow) })
            Check(string.IsNullOrEmpty(value) || Address.TryParse(value, out _), member, "must be a 0x-prefixed 20-byte contract address");
        if (!string.IsNullOrEmpty(o.SigningKey)) Check(Hex.TryDecodeFixed(WithPrefix(o.SigningKey), 32, out _, out _), nameof(o.SigningKey), "must be a 32-byte hex key");
        if (!string.IsNullOrEmpty(o.L1SenderKey)) Check(Hex.TryDecodeFixed(WithPrefix(o.L1SenderKey), 32, out _, out _), nameof(o.L1SenderKey), "must be a 32-byte hex key");
        Check(o.L1PosterRoundTimeoutMs > o.L1PosterReceiptTimeoutMs, nameof(o.L1PosterRoundTimeoutMs), "must be longer than Relay:L1PosterReceiptTimeoutMs (a round waits for a receipt)");
        Check(o.ArchiveRetryMinMs <= o.ArchiveRetryMaxMs, nameof(o.ArchiveRetryMinMs), "must not exceed Relay:ArchiveRetryMaxMs");
        return errors.Count == 0 ? Microsoft.Extensions.Options.ValidateOptionsResult.Success : Microsoft.Extensions.Options.ValidateOptionsResult.Fail(errors);
    }

    static string Setting(string member) => $"{RelayOptions.Section}:{member}";

    static string Show(string member, object? value) => member is nameof(RelayOptions.SigningKey) or nameof(RelayOptions.L1SenderKey)
        ? "(secret, not shown)" // secrets are never echoed
        : value switch { null => "(unset)", string s => $"\"{s}\"", _ => Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? "" };

    static string WithPrefix(string hex) => hex.Trim().StartsWith("0x", StringComparison.Ordinal) ? hex.Trim() : "0x" + hex.Trim();
}
