using System.Globalization;
using Microsoft.Extensions.Configuration;
using PbsMarket.Core;
using PbsMarket.L1;

namespace PbsMarket.Proposer;

/// <summary>
/// Configuration of the proposer client (section <c>Proposer</c>; environment variables <c>PBS_Proposer__…</c>).
/// The market parameters come either from <see cref="DeploymentFile"/> (the JSON written by the deployer) or from the
/// individual fields; a field set explicitly wins over the file. See docs/proposer.md.
/// </summary>
public sealed class ProposerOptions
{
    public const string Section = "Proposer";

    // ---- the market ----
    /// <summary>Deployment JSON (<see cref="DeployedMarket"/>): fills the chain ids, contract addresses, genesis and slot length.</summary>
    public string? DeploymentFile { get; set; }
    public string L1Rpc { get; set; } = "http://127.0.0.1:8545";
    public long L1ChainId { get; set; }
    public long L2ChainId { get; set; }
    /// <summary>The inbox contract (also the EIP-712 verifying contract).</summary>
    public string Inbox { get; set; } = "";
    public string Registry { get; set; } = "";
    public string Escrow { get; set; } = "";
    public long GenesisMs { get; set; }
    public long SlotMs { get; set; }
    /// <summary>The auctions' close offset (the relays' <c>CloseOffsetMs</c>; default 250).</summary>
    public long CloseOffsetMs { get; set; } = 250;
    public int SlotsPerEpoch { get; set; }

    // ---- keys and relays ----
    /// <summary>The proposer keys this client runs (one or more).</summary>
    public List<ProposerKeyOptions> Keys { get; set; } = [];
    /// <summary>The relays asked for headers and told about every signed header.</summary>
    public List<RelayEndpointOptions> Relays { get; set; } = [];
    /// <summary>Signing journals (<c>signing/&lt;address&gt;.json</c>) and the fallback poster's journal live here.</summary>
    public string DataDir { get; set; } = "./proposer-data";

    // ---- timing (all HTTP and RPC calls have deadlines) ----
    /// <summary>How long after the close the client waits for relays' headers (425 answers are retried until then).
    /// Default: 40% of the close offset, at least 100 ms.</summary>
    public long? HeaderTimeoutMs { get; set; }
    /// <summary>Pause between retries of a 425 too_early / 503 answer.</summary>
    public long TooEarlyRetryMs { get; set; } = 25;
    /// <summary>How long the client keeps asking the winning relay for the payload after signing. Default: half a slot.</summary>
    public long? PayloadTimeoutMs { get; set; }
    /// <summary>Timeout of each head announcement.</summary>
    public long AnnounceTimeoutMs { get; set; } = 1000;
    /// <summary>Timeout of each L1 read (schedule, head, header of slot).</summary>
    public long L1TimeoutMs { get; set; } = 2000;
    /// <summary>Retries of a failed L1 call (each within <see cref="L1TimeoutMs"/>).</summary>
    public int L1RpcRetries { get; set; } = 1;
    /// <summary>How long the client's own L1 post waits for its receipt.</summary>
    public long L1ReceiptTimeoutMs { get; set; } = 30_000;
    /// <summary>Pause between attempts of a failed L1 post of the client's own. Default: one slot.</summary>
    public long? L1PostRetryMs { get; set; }
    /// <summary>Pause between retries of the signed proposal while the winning relay has no payload yet.</summary>
    public long PayloadRetryMs { get; set; } = 50;
    /// <summary>TCP connect timeout to a relay.</summary>
    public long RelayConnectTimeoutMs { get; set; } = 1000;

    // ---- checks and fallback ----
    /// <summary>Highest gas limit of a header the client signs (and the gas limit of its own blocks).</summary>
    public long MaxGasLimit { get; set; } = 30_000_000;
    /// <summary>Build and propose an empty block of its own when no relay delivers a valid header.</summary>
    public bool FallbackEnabled { get; set; } = true;
    /// <summary>After start(slot) + this, a header the client proposed that L1 still lacks is posted by the client itself
    /// (its own blocks always; relay blocks when <see cref="PostRelayBlocks"/>). Default: 4 slots.</summary>
    public long? PostGraceMs { get; set; }
    /// <summary>Also post relay-won blocks the relays failed to post (with the relay's price and bids root).</summary>
    public bool PostRelayBlocks { get; set; } = true;
    /// <summary>Development only: hex key paying for the client's L1 posts. Default: the first proposer key.</summary>
    public string? L1SenderKeyEnv { get; set; }

    // ---- metrics ----
    /// <summary>Serve Prometheus text on http://MetricsHost:MetricsPort/metrics (off when null).</summary>
    public int? MetricsPort { get; set; }
    public string MetricsHost { get; set; } = "127.0.0.1";

    public TimeSpan HeaderTimeout => TimeSpan.FromMilliseconds(HeaderTimeoutMs ?? Math.Max(100, CloseOffsetMs * 4 / 10));
    public TimeSpan PayloadTimeout => TimeSpan.FromMilliseconds(PayloadTimeoutMs ?? Math.Max(200, SlotMs / 2));
    public TimeSpan PostGrace => TimeSpan.FromMilliseconds(PostGraceMs ?? 4 * SlotMs);
    public TimeSpan L1PostRetry => TimeSpan.FromMilliseconds(L1PostRetryMs ?? SlotMs);

    /// <summary>Binds the <c>Proposer</c> section (keys and relays as arrays: <c>Proposer:Keys:0:KeystorePath</c>, …).</summary>
    public static ProposerOptions FromConfiguration(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var o = new ProposerOptions();
        configuration.GetSection(Section).Bind(o);
        return o;
    }

    /// <summary>Fills unset market fields from <see cref="DeploymentFile"/> and checks everything; throws with a precise message.</summary>
    public ProposerOptions Resolve()
    {
        if (!string.IsNullOrEmpty(DeploymentFile))
        {
            var d = DeployedMarket.Load(DeploymentFile);
            if (L1ChainId == 0) L1ChainId = d.L1ChainId;
            if (L2ChainId == 0) L2ChainId = d.L2ChainId;
            if (string.IsNullOrEmpty(Inbox)) Inbox = d.Inbox;
            if (string.IsNullOrEmpty(Registry)) Registry = d.Registry;
            if (string.IsNullOrEmpty(Escrow)) Escrow = d.Escrow;
            if (GenesisMs == 0) GenesisMs = d.GenesisMs;
            if (SlotMs == 0) SlotMs = d.SlotMs;
            if (SlotsPerEpoch == 0) SlotsPerEpoch = (int)d.SlotsPerEpoch;
        }
        if (SlotMs == 0) SlotMs = 2000;
        if (SlotsPerEpoch == 0) SlotsPerEpoch = 32;
        var errors = new List<string>();
        if (L1ChainId <= 0) errors.Add("Proposer:L1ChainId must be set (or Proposer:DeploymentFile)");
        if (L2ChainId <= 0) errors.Add("Proposer:L2ChainId must be set (or Proposer:DeploymentFile)");
        if (!Address.TryParse(Inbox, out _)) errors.Add("Proposer:Inbox must be the inbox contract address");
        if (!Address.TryParse(Registry, out _)) errors.Add("Proposer:Registry must be the registry contract address");
        if (GenesisMs <= 0) errors.Add("Proposer:GenesisMs must be set");
        if (CloseOffsetMs < 0 || CloseOffsetMs >= SlotMs) errors.Add("Proposer:CloseOffsetMs must be in [0, SlotMs)");
        if (Keys.Count == 0) errors.Add("Proposer:Keys: at least one key (KeystorePath + PasswordFile/PasswordEnv, or PrivateKeyEnv for devnets)");
        for (var i = 0; i < Relays.Count; i++)
        {
            var r = Relays[i];
            if (!Uri.TryCreate(r.Url, UriKind.Absolute, out _)) errors.Add($"Proposer:Relays:{i}:Url is not an absolute URL");
            if (!Address.TryParse(r.Address, out _)) errors.Add($"Proposer:Relays:{i}:Address must be the relay's signing address");
        }
        if (MaxGasLimit < 21_000) errors.Add("Proposer:MaxGasLimit must be at least 21000");
        void Positive(long? value, string name, long max = 3_600_000)
        {
            if (value is { } v && (v <= 0 || v > max)) errors.Add($"Proposer:{name} = {v}: must be between 1 and {max} (ms)");
        }
        Positive(HeaderTimeoutMs, nameof(HeaderTimeoutMs));
        Positive(TooEarlyRetryMs, nameof(TooEarlyRetryMs));
        Positive(PayloadTimeoutMs, nameof(PayloadTimeoutMs));
        Positive(AnnounceTimeoutMs, nameof(AnnounceTimeoutMs));
        Positive(L1TimeoutMs, nameof(L1TimeoutMs));
        Positive(L1ReceiptTimeoutMs, nameof(L1ReceiptTimeoutMs));
        Positive(L1PostRetryMs, nameof(L1PostRetryMs));
        Positive(PostGraceMs, nameof(PostGraceMs), long.MaxValue);
        Positive(PayloadRetryMs, nameof(PayloadRetryMs));
        Positive(RelayConnectTimeoutMs, nameof(RelayConnectTimeoutMs));
        if (L1RpcRetries is < 0 or > 10) errors.Add($"Proposer:L1RpcRetries = {L1RpcRetries}: must be between 0 and 10");
        if (MetricsPort is < 0 or > 65535) errors.Add($"Proposer:MetricsPort = {MetricsPort}: must be a TCP port (0-65535)");
        if (errors.Count > 0) throw new InvalidOperationException("invalid proposer configuration: " + string.Join("; ", errors));
        return this;
    }

    internal Eip712Domain Domain => Eip712Domain.PbsMarket(L1ChainId, Address.Parse(Inbox));
    internal SlotClock Clock(TimeProvider time) => new(time, (ulong)GenesisMs, (ulong)SlotMs, (ulong)CloseOffsetMs);
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"ProposerOptions(inbox {Inbox}, l2 {L2ChainId}, {Keys.Count} key(s), {Relays.Count} relay(s), data {DataDir})");
}

/// <summary>One proposer key. Production: an encrypted keystore (Web3 Secret Storage) and its password from a file or an
/// environment variable. Development only: <see cref="PrivateKeyEnv"/> names an environment variable holding the raw hex key.</summary>
public sealed class ProposerKeyOptions
{
    public string? KeystorePath { get; set; }
    public string? PasswordFile { get; set; }
    public string? PasswordEnv { get; set; }
    /// <summary>DEVELOPMENT ONLY: the name of an environment variable holding a raw 0x hex private key.</summary>
    public string? PrivateKeyEnv { get; set; }
}

/// <summary>A relay: its base URL and the address whose AuctionResult signatures the client accepts from it.</summary>
public sealed class RelayEndpointOptions
{
    /// <summary>Name in logs and metrics (default: the URL's host:port).</summary>
    public string? Name { get; set; }
    public string Url { get; set; } = "";
    /// <summary>The relay's signing address (its AuctionResult signatures must recover to it).</summary>
    public string Address { get; set; } = "";

    internal string DisplayName => !string.IsNullOrEmpty(Name) ? Name : Uri.TryCreate(Url, UriKind.Absolute, out var u) ? u.Authority : Url;
}
