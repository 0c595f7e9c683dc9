using System.Text.Json;
using PbsMarket.Core;
using PbsMarket.Relay.Api;
using PbsMarket.Relay.Auctions;
using StackExchange.Redis;

namespace PbsMarket.Relay.Archive;

/// <summary>
/// The producer side of the durable archive queue: a Redis stream read by a consumer group, so a
/// record survives PostgreSQL being down and a relay dying mid-batch (another instance claims it).
/// </summary>
public sealed class ArchiveQueue(IConnectionMultiplexer redis, RedisKeys keys)
{
    IDatabase Db => redis.GetDatabase();

    public Task EnqueueResultAsync(SlotView view, IReadOnlyList<StoredBid> bids)
    {
        var record = new ResultRecord(view, bids.Select(b => new ArchivedBid(
            b.HeaderHash, StoredBid.RecordJson(b.Header, b.Signature, b.TxCount, b.Fees, b.Simulation, b.Optimistic), b.ReceivedAtMs, b.Sequence)).ToList());
        return AddAsync("result", JsonSerializer.Serialize(record, WireJson.Options));
    }

    public Task EnqueueProposalAsync(ProposalRecord p) => AddAsync("proposal", JsonSerializer.Serialize(p, WireJson.Options));

    public Task EnqueueEquivocationAsync(EquivocationRecord e) => AddAsync("equivocation", JsonSerializer.Serialize(e, WireJson.Options));

    public Task EnqueuePostedAsync(PostedRecord p) => AddAsync("posted", JsonSerializer.Serialize(p, WireJson.Options));

    Task AddAsync(string type, string json) =>
        Db.StreamAddAsync(keys.ArchiveStream, [new NameValueEntry("type", type), new NameValueEntry("data", json)]);

    public async Task<long> BacklogAsync()
    {
        try
        {
            var groups = await Db.StreamGroupInfoAsync(keys.ArchiveStream);
            var g = groups.FirstOrDefault(x => x.Name == RedisKeys.ArchiveGroup);
            return g.Name is null ? await Db.StreamLengthAsync(keys.ArchiveStream) : g.PendingMessageCount + (g.Lag ?? 0);
        }
        catch (RedisServerException)
        {
            return 0; // the stream does not exist yet
        }
    }
}

public sealed record ArchivedBid(Hash32 HeaderHash, string Record, ulong ReceivedAtMs, long Sequence);
public sealed record ResultRecord(SlotView Slot, IReadOnlyList<ArchivedBid> Bids);
public sealed record ProposalRecord(ulong Slot, Hash32 HeaderHash, string Signature, string Source, string HeaderJson, string BuilderSignature, string PayloadHex, ulong ReceivedAtMs);
/// <summary>Two differing Proposal signatures of one proposer for one slot (version 2: the terms are the settlement each signed).</summary>
public sealed record EquivocationRecord(ulong Slot, Address Proposer, Hash32 FirstHash, string FirstSignature, Hash32 SecondHash, string SecondSignature, ulong ReceivedAtMs,
    ProposalTerms? FirstTerms = null, ProposalTerms? SecondTerms = null)
{
    public Proposal FirstProposal => (FirstTerms ?? ProposalTerms.None).For(Slot, FirstHash);
    public Proposal SecondProposal => (SecondTerms ?? ProposalTerms.None).For(Slot, SecondHash);

    public static EquivocationRecord Of(Address proposer, Proposal first, Signature firstSig, Proposal second, Signature secondSig, ulong now) =>
        new(first.Slot, proposer, first.HeaderHash, firstSig.ToString(), second.HeaderHash, secondSig.ToString(), now, ProposalTerms.Of(first), ProposalTerms.Of(second));
}

/// <summary>The settlement part of a Proposal (v2): price, bids root, relay.</summary>
public sealed record ProposalTerms(BigInteger Price, Hash32 BidsRoot, Address Relay)
{
    public static readonly ProposalTerms None = new(BigInteger.Zero, Hash32.Zero, Address.Zero);
    public static ProposalTerms Of(Proposal p) => new(p.Price, p.BidsRoot, p.Relay);
    public Proposal For(ulong slot, Hash32 headerHash) => new(slot, headerHash, Price, BidsRoot, Relay);
}
public sealed record PostedRecord(ulong Slot, string L1TxHash, ulong BlockNumber, ulong PostedAtMs);
