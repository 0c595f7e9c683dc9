using StackExchange.Redis;

namespace PbsMarket.Relay.Auctions;

/// <summary>
/// Every Redis key the relay uses, built in one place. A slot's keys share the hash tag
/// <c>{net:s:N}</c> so that the atomic scripts touching them work on Redis Cluster too.
/// </summary>
public sealed class RedisKeys(string network)
{
    string Tag(ulong slot) => $"{{{network}:s:{slot}}}";

    public RedisKey Auction(ulong slot) => $"pbs:{Tag(slot)}:auction";
    public RedisKey Bids(ulong slot) => $"pbs:{Tag(slot)}:bids";
    /// <summary>The accepted bids' header hashes in receipt order: element i is the bid of sequence number i + 1.</summary>
    public RedisKey BidOrder(ulong slot) => $"pbs:{Tag(slot)}:order";
    public RedisKey Payloads(ulong slot) => $"pbs:{Tag(slot)}:payloads";
    public RedisKey Counts(ulong slot) => $"pbs:{Tag(slot)}:counts";
    public RedisKey Result(ulong slot) => $"pbs:{Tag(slot)}:result";
    /// <summary>The closed slot's bid list (JSON array of bid views), stored after its result (ResultService).</summary>
    public RedisKey ResultBids(ulong slot) => $"pbs:{Tag(slot)}:result-bids";
    public RedisKey Proposal(ulong slot) => $"pbs:{Tag(slot)}:proposal";
    public RedisKey Evidence(ulong slot) => $"pbs:{Tag(slot)}:evidence";
    /// <summary>Simulation verdicts of optimistically accepted bids, by header hash, each stored once (SimulationVerdicts).</summary>
    public RedisKey Verdicts(ulong slot) => $"pbs:{Tag(slot)}:verdicts";
    /// <summary>Which relay instance's close is simulating a bid's block now, so that instances sharing the L2 node do not
    /// simulate it twice; short-lived (SimulationVerdicts).</summary>
    public RedisKey VerdictClaim(ulong slot, string headerHash) => $"pbs:{Tag(slot)}:close-claim:{headerHash}";
    /// <summary>Builders demoted after a failed optimistic bid: builder -> JSON record (SimulationVerdicts).</summary>
    public RedisKey Demotions => $"pbs:{{{network}}}:demotions";

    /// <summary>The latest proposed header: hash, number, slot (global; slot copies are authoritative for bids).</summary>
    public RedisKey Head => $"pbs:{{{network}}}:head";
    /// <summary>Wei each builder owes for won auctions L1 has not decided yet, and the slot through which it has (DebtLedger).</summary>
    /// <remarks>Named apart from the pre-ledger <c>owed</c> hash, whose totals no per-slot entry backs: an upgraded relay
    /// on an old Redis starts from an empty ledger rather than from debts it could never release.</remarks>
    public RedisKey Owed => $"pbs:{{{network}}}:ledger:owed";
    /// <summary>Each open debt by slot: builder|price (DebtLedger).</summary>
    public RedisKey Debts => $"pbs:{{{network}}}:ledger:debts";
    /// <summary>The slots of open debts, scored by slot, for the release sweep (DebtLedger).</summary>
    public RedisKey DebtSlots => $"pbs:{{{network}}}:ledger:slots";
    /// <summary>Durable queue of archive records (results, proposals, evidence, L1 postings).</summary>
    public RedisKey ArchiveStream => $"pbs:{{{network}}}:archive";
    /// <summary>Queue of proposed headers for the L1 poster.</summary>
    public RedisKey L1Queue => $"pbs:{{{network}}}:l1queue";
    public RedisKey L1Lease => $"pbs:{{{network}}}:l1lease";
    /// <summary>Equivocation evidence waiting to be reported to L1 (which slashes the proposer's bond).</summary>
    public RedisKey L1Evidence => $"pbs:{{{network}}}:l1evidence";
    public RedisChannel Events => RedisChannel.Literal($"pbs:{network}:events");

    public const string ArchiveGroup = "archivers";
}
