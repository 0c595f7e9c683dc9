using PbsMarket.Relay.Infrastructure;
using System.Globalization;
using PbsMarket.Core;
using StackExchange.Redis;

namespace PbsMarket.Relay.Auctions;

/// <summary>The auction state in Redis, changed only through the atomic scripts in <see cref="Scripts"/>.</summary>
public sealed class AuctionStore(IConnectionMultiplexer redis, RedisKeys keys, RelayOptions options, ReplicaConfirmer confirmer, ILogger<AuctionStore> log)
{
    IDatabase Db => redis.GetDatabase();

    /// <summary>Bid payloads are needed until the slot is proposed or missed (two slots); kept 16 slots, at least a minute.
    /// A proposed block's payload is kept with its proposal, for the slot's full TTL.</summary>
    public int PayloadTtlSeconds => (int)Math.Min(options.SlotTtlSeconds, Math.Max(60, 16 * options.SlotMs / 1000));
    public RedisKeys Keys => keys;

    public sealed record AuctionState(ulong Slot, string Status, Hash32 Parent, ulong Number, Address Proposer, ulong ClosesAtMs, ulong TimestampMs)
    {
        public bool IsOpen => Status == "open";
    }

    public sealed record Head(Hash32 Hash, ulong Number, ulong Slot)
    {
        public static readonly Head Genesis = new(Hash32.Zero, 0, 0);
        public ChainHead ToChainHead() => new(Hash, Number, Slot);
    }

    public async Task<Head> GetHeadAsync()
    {
        var v = await Db.HashGetAsync(keys.Head, ["hash", "number", "slot"]);
        if (v[0].IsNull) return Head.Genesis;
        return new Head(Hash32.Parse((string)v[0]!), ulong.Parse((string)v[1]!, CultureInfo.InvariantCulture), ulong.Parse((string)v[2]!, CultureInfo.InvariantCulture));
    }

    /// <summary>Moves the global head forward (by number) and carries it into the open auctions of <paramref name="slots"/>.</summary>
    public async Task<bool> AdvanceHeadAsync(Head head, params IEnumerable<ulong> slots)
    {
        var moved = (long)await Db.ScriptEvaluateAsync(Scripts.AdvanceHead, new
        {
            head = keys.Head,
            hash = head.Hash.ToString(),
            number = head.Number.ToString(CultureInfo.InvariantCulture),
            slot = head.Slot.ToString(CultureInfo.InvariantCulture),
        }) == 1;
        var current = await GetHeadAsync();
        foreach (var s in slots.Distinct()) await MoveAuctionHeadAsync(s, current);
        return moved;
    }

    async Task MoveAuctionHeadAsync(ulong slot, Head head) =>
        await Db.ScriptEvaluateAsync(Scripts.MoveHead, new
        {
            auction = keys.Auction(slot),
            parent = head.Hash.ToString(),
            number = (head.Number + 1).ToString(CultureInfo.InvariantCulture),
        });

    /// <summary>Creates the slot's auction on the current head if no instance has yet.</summary>
    /// <returns>True for the one caller that created it.</returns>
    public async Task<bool> EnsureAuctionAsync(ulong slot, Address proposer, ulong closesAtMs, ulong timestampMs)
    {
        var head = await GetHeadAsync();
        var created = (long)await Db.ScriptEvaluateAsync(Scripts.Create, new
        {
            auction = keys.Auction(slot),
            parent = head.Hash.ToString(),
            number = (head.Number + 1).ToString(CultureInfo.InvariantCulture),
            proposer = proposer.ToString(),
            closesAt = closesAtMs.ToString(CultureInfo.InvariantCulture),
            timestampMs = timestampMs.ToString(CultureInfo.InvariantCulture),
            ttl = options.SlotTtlSeconds,
        });
        // The head may have moved between reading it and creating the auction: carry it over.
        var now = await GetHeadAsync();
        if (now.Number > head.Number) await MoveAuctionHeadAsync(slot, now);
        return created == 1;
    }

    public async Task<AuctionState?> GetAuctionAsync(ulong slot)
    {
        var v = await Db.HashGetAsync(keys.Auction(slot), ["status", "parent", "number", "proposer", "closes_at", "timestamp_ms"]);
        if (v[0].IsNull) return null;
        return new AuctionState(slot, (string)v[0]!, Hash32.Parse((string)v[1]!), ulong.Parse((string)v[2]!, CultureInfo.InvariantCulture),
            Address.Parse((string)v[3]!), ulong.Parse((string)v[4]!, CultureInfo.InvariantCulture), ulong.Parse((string)v[5]!, CultureInfo.InvariantCulture));
    }

    /// <summary>A bid (its slot's shard) is on the replicas the durability setting asks for; false if they did not confirm in time.</summary>
    /// <param name="fence">This instance did not write it now (a resent bid): see <see cref="ReplicaConfirmer.ConfirmAsync"/>.</param>
    public Task<bool> ConfirmBidAsync(ulong slot, bool fence = false) => confirmer.ConfirmAsync(keys.Bids(slot), fence);

    /// <summary>A proposal (its slot's shard) and what it queued and moved (the head, the L1 queue: the market's shard) are on
    /// the replicas the durability setting asks for.</summary>
    public async Task<bool> ConfirmProposalAsync(ulong slot, bool fence = false)
    {
        var onSlot = confirmer.ConfirmAsync(keys.Proposal(slot), fence);
        var onMarket = confirmer.ConfirmAsync(keys.L1Queue, fence);
        return await onSlot & await onMarket;
    }

    public abstract record AcceptOutcome;
    public sealed record Accepted(ulong ReceivedAtMs, long Sequence) : AcceptOutcome;
    public sealed record Duplicate(ulong ReceivedAtMs) : AcceptOutcome;
    public sealed record Refused(string Code, string Detail) : AcceptOutcome;

    /// <param name="optimistic">Accepted before its simulation: the close must have its verdict before it can win or set a price.</param>
    public async Task<AcceptOutcome> AcceptAsync(Header header, Hash32 headerHash, Signature signature, int txCount, byte[] payload, BigInteger? fees = null,
        bool optimistic = false)
    {
        var r = (RedisResult[])(await Db.ScriptEvaluateAsync(Scripts.Accept, new
        {
            bids = keys.Bids(header.Slot),
            order = keys.BidOrder(header.Slot),
            auction = keys.Auction(header.Slot),
            counts = keys.Counts(header.Slot),
            payloads = keys.Payloads(header.Slot),
            hash = headerHash.ToString(),
            proposer = header.Proposer.ToString(),
            parent = header.ParentHash.ToString(),
            number = header.Number.ToString(CultureInfo.InvariantCulture),
            builder = header.Builder.ToString(),
            maxBids = options.MaxBidsPerBuilderPerSlot,
            maxBytes = options.MaxStoredBytesPerBuilderPerSlot,
            payloadTtl = PayloadTtlSeconds,
            record = StoredBid.RecordJson(header, signature, txCount, fees, optimistic: optimistic),
            flags = ChecksumFlags(fees is not null, optimistic),
            payload,
            ttl = options.SlotTtlSeconds,
        }))!;
        if ((string)r[0]! == "ok")
        {
            var accepted = new Accepted((ulong)(long)r[1], (long)r[2]);
            // The same fields the record holds, as FromRecord would read them back.
            _mirror.Add(header.Slot, new StoredBid(header, headerHash, signature, txCount, accepted.ReceivedAtMs, accepted.Sequence) { Fees = fees, Optimistic = optimistic });
            return accepted;
        }
        return (string)r[0]! switch
        {
            "dup" => new Duplicate(StoredBid.ReceivedAtOf((string)r[1]!)),
            _ => new Refused((string)r[1]!, (string)r[2]!),
        };
    }

    public abstract record CloseOutcome;
    public sealed record NotYet(long MsLeft) : CloseOutcome;
    public sealed record NoAuction : CloseOutcome;
    public sealed record ClosedAuction(Hash32 Parent, ulong Number, Address Proposer, ulong ClosedAtMs, IReadOnlyList<StoredBid> Bids) : CloseOutcome;

    /// <summary>
    /// Closes the auction if its time has come (on Redis's clock) and returns its final bids, in sequence order. The close
    /// script returns only how many bids the frozen auction holds; the bids this instance accepted itself come from its
    /// mirror, and only the others' (or all, after a restart) are read: their hashes from the order list, their records
    /// from the bids hash. If the order list does not account for every sequence number (bids stored by an instance
    /// that kept none), every record is read instead.
    /// </summary>
    public async Task<CloseOutcome> CloseAsync(ulong slot)
    {
        var r = (RedisResult[])(await Db.ScriptEvaluateAsync(Scripts.Close, new { auction = keys.Auction(slot) }))!;
        switch ((string)r[0]!)
        {
            case "early": return new NotYet((long)r[1]);
            case "none": return new NoAuction();
        }
        var count = long.Parse((string)r[5]!, CultureInfo.InvariantCulture);
        var (bids, readAll) = await FrozenBidsAsync(slot, count);
        // A copy that is not what Redis holds (a failover lost bids it kept and gave their sequence numbers to others):
        // the close goes by Redis alone, as every other instance does (unless it already read every record: once is enough).
        if (!readAll && Checksum(bids) != long.Parse((string)r[6]!, CultureInfo.InvariantCulture)) bids = await AllRecordsAsync(slot, count, "its checksum disagrees with the bids assembled");
        return new ClosedAuction(Hash32.Parse((string)r[1]!), ulong.Parse((string)r[2]!, CultureInfo.InvariantCulture),
            Address.Parse((string)r[3]!), ulong.Parse((string)r[4]!, CultureInfo.InvariantCulture), bids);
    }

    /// <summary>The frozen bids in sequence order, and whether they are every record read from Redis (the fallback).</summary>
    async Task<(IReadOnlyList<StoredBid> Bids, bool ReadAll)> FrozenBidsAsync(ulong slot, long count)
    {
        var bids = new StoredBid?[count];
        var mine = _mirror.Of(slot);
        var missing = new List<(long From, long To)>(); // sequence numbers, inclusive
        for (var seq = 1L; seq <= count; seq++)
        {
            if (mine is not null && mine.TryGetValue(seq, out var b)) { bids[seq - 1] = b; continue; }
            if (missing.Count > 0 && missing[^1].To == seq - 1) missing[^1] = (missing[^1].From, seq);
            else missing.Add((seq, seq));
        }
        if (missing.Count == 0) return (bids!, false);
        var db = Db;
        // Bids spread over instances leave many short gaps: past a few, one read of the whole span instead of one per gap.
        if (missing.Count > 8) missing = [(missing[0].From, missing[^1].To)];
        var ranges = missing.Select(m => db.ListRangeAsync(keys.BidOrder(slot), m.From - 1, m.To - 1)).ToArray();
        var hashes = new List<(long Seq, RedisValue Hash)>();
        for (var i = 0; i < missing.Count; i++)
        {
            var got = await ranges[i];
            if (got.Length != missing[i].To - missing[i].From + 1) return (await AllRecordsAsync(slot, count, "its order list is short"), true);
            for (var j = 0; j < got.Length; j++)
                if (bids[missing[i].From + j - 1] is null) hashes.Add((missing[i].From + j, got[j]));
        }
        var records = await db.HashGetAsync(keys.Bids(slot), [.. hashes.Select(h => h.Hash)]);
        for (var i = 0; i < records.Length; i++)
        {
            if (records[i].IsNull) return (await AllRecordsAsync(slot, count, "a bid in its order list has no record"), true);
            var bid = StoredBid.FromRecord(records[i]!);
            if (bid.Sequence != hashes[i].Seq) return (await AllRecordsAsync(slot, count, "its order list and records disagree"), true);
            bids[bid.Sequence - 1] = bid;
        }
        return (bids!, false);
    }

    /// <summary>The accept script's checksum: the sum over the bids of (first 3 bytes of the header hash + receipt time mod
    /// 2^24 + flags) * (sequence mod 4096 + 1). Any bid of a copy that differs from Redis's in hash, receipt time,
    /// simulation flags or position changes it (but for a 2^-24 chance per change).</summary>
    static long Checksum(IReadOnlyList<StoredBid> bids)
    {
        var sum = 0L;
        foreach (var b in bids)
        {
            var h = b.HeaderHash.Span;
            sum += ((h[0] << 16 | h[1] << 8 | h[2]) + (long)(b.ReceivedAtMs % 16777216) + ChecksumFlags(b.Fees is not null, b.Optimistic)) * (b.Sequence % 4096 + 1);
        }
        return sum;
    }

    static int ChecksumFlags(bool hasFees, bool optimistic) => (hasFees ? 2 : 0) + (optimistic ? 1 : 0);

    long _fullReads;

    /// <summary>Closes that read every record of their slot instead of only the bids this instance lacked.</summary>
    public long FullReads => Interlocked.Read(ref _fullReads);

    /// <summary>Every record of the slot, read and parsed (the close's fallback).</summary>
    async Task<IReadOnlyList<StoredBid>> AllRecordsAsync(ulong slot, long count, string why)
    {
        Interlocked.Increment(ref _fullReads);
        log.LogWarning("slot {Slot}: the close reads all {Count} bid records: {Why}", slot, count, why);
        var all = await Db.HashGetAllAsync(keys.Bids(slot));
        var bids = all.Select(e => StoredBid.FromRecord(e.Value!)).OrderBy(b => b.Sequence).ToList();
        // Records gone while the auction remains (evicted, expired apart): close over what is stored, as before, never stall.
        if (bids.Count != count) log.LogError("slot {Slot}: the frozen auction counts {Count} bids but {Stored} records are stored", slot, count, bids.Count);
        return bids;
    }

    readonly BidMirror _mirror = new();

    public async Task<byte[]?> GetPayloadAsync(ulong slot, Hash32 headerHash)
    {
        var v = await Db.HashGetAsync(keys.Payloads(slot), headerHash.ToString());
        return v.IsNull ? null : (byte[])v!;
    }

    public async Task<StoredBid?> GetBidAsync(ulong slot, Hash32 headerHash)
    {
        var v = await Db.HashGetAsync(keys.Bids(slot), headerHash.ToString());
        return v.IsNull ? null : StoredBid.FromRecord(v!);
    }

    public async Task<string?> GetResultJsonAsync(ulong slot)
    {
        var v = await Db.StringGetAsync(keys.Result(slot));
        return v.IsNull ? null : (string)v!;
    }

    public async Task<string?> GetBidListJsonAsync(ulong slot)
    {
        var v = await Db.StringGetAsync(keys.ResultBids(slot));
        return v.IsNull ? null : (string)v!;
    }

    /// <summary>Stores the closed slot's bid list once (a second writer's is the same list, from the same frozen bids).</summary>
    public Task<bool> TryStoreBidListAsync(ulong slot, string json) =>
        Db.StringSetAsync(keys.ResultBids(slot), json, TimeSpan.FromSeconds(options.SlotTtlSeconds), When.NotExists);

    /// <summary>Stores the slot's result once; returns true for the instance that stored it.</summary>
    public Task<bool> TryStoreResultAsync(ulong slot, string json) =>
        Db.StringSetAsync(keys.Result(slot), json, TimeSpan.FromSeconds(options.SlotTtlSeconds), When.NotExists);

    public abstract record ProposeOutcome;
    public sealed record NewProposal : ProposeOutcome;
    public sealed record SameProposal : ProposeOutcome;
    /// <summary>The slot already has a different signed Proposal (v2: any field differs): equivocation.</summary>
    public sealed record Conflict(Proposal First, Signature FirstSignature) : ProposeOutcome
    {
        public Hash32 FirstHash => First.HeaderHash;
    }

    /// <summary>Records the slot's signed proposal once; a second, differing one (any field) is a conflict.</summary>
    public async Task<ProposeOutcome> ProposeAsync(Proposal proposal, Signature signature, ulong nowMs, string source)
    {
        var slot = proposal.Slot;
        var r = (RedisResult[])(await Db.ScriptEvaluateAsync(Scripts.Propose, new
        {
            proposal = keys.Proposal(slot),
            evidence = keys.Evidence(slot),
            phash = Eip712.HashStruct(proposal).ToString(),
            hash = proposal.HeaderHash.ToString(),
            price = proposal.Price.ToString(CultureInfo.InvariantCulture),
            root = proposal.BidsRoot.ToString(),
            relay = proposal.Relay.ToString(),
            signature = signature.ToString(),
            now = nowMs.ToString(CultureInfo.InvariantCulture),
            source,
            ttl = options.SlotTtlSeconds,
        }))!;
        return (string)r[0]! switch
        {
            "new" => new NewProposal(),
            "same" => new SameProposal(),
            _ => new Conflict(ProposalOf(slot, (string)r[1]!, (string?)r[3], (string?)r[4], (string?)r[5]), Signature.Parse((string)r[2]!)),
        };
    }

    static Proposal ProposalOf(ulong slot, string hash, string? price, string? root, string? relay) =>
        new(slot, Hash32.Parse(hash), price is null ? BigInteger.Zero : BigInteger.Parse(price, CultureInfo.InvariantCulture),
            root is null ? Hash32.Zero : Hash32.Parse(root), relay is null ? Address.Zero : Address.Parse(relay));

    public sealed record ProposalRecord(Proposal Proposal, Signature Signature, ulong ReceivedMs, string Source, string? L1TxHash)
    {
        public Hash32 HeaderHash => Proposal.HeaderHash;
    }

    public async Task<ProposalRecord?> GetProposalAsync(ulong slot)
    {
        var v = await Db.HashGetAsync(keys.Proposal(slot), ["header_hash", "signature", "received_ms", "source", "l1_tx", "price", "bids_root", "relay"]);
        if (v[0].IsNull) return null;
        return new ProposalRecord(ProposalOf(slot, (string)v[0]!, (string?)v[5], (string?)v[6], (string?)v[7]), Signature.Parse((string)v[1]!),
            ulong.Parse((string)v[2]!, CultureInfo.InvariantCulture), (string)v[3]!, v[4].IsNull ? null : (string)v[4]!);
    }

    /// <summary>Keeps the proposed block itself with its proposal, so that the head can be served whole.</summary>
    public async Task StoreProposedBlockAsync(ulong slot, Hash32 headerHash, string headerJson, Signature builderSignature, byte[] payload, string settlementJson)
    {
        await Db.HashSetAsync(keys.Proposal(slot), [new("header", headerJson), new("builder_signature", builderSignature.ToString()), new("payload", payload), new("settlement", settlementJson)]);
    }

    /// <summary>A proposed block whole: header, signatures, payload, and (JSON object) the settlement fields L1 needs.</summary>
    public sealed record ProposedBlock(string HeaderJson, Signature BuilderSignature, Signature ProposalSignature, byte[] Payload, string SettlementJson);

    public async Task<ProposedBlock?> GetProposedBlockAsync(ulong slot, Hash32 headerHash)
    {
        var v = await Db.HashGetAsync(keys.Proposal(slot), ["header_hash", "header", "builder_signature", "signature", "payload", "settlement"]);
        if (v[0].IsNull || v[1].IsNull || v[4].IsNull || (string)v[0]! != headerHash.ToString()) return null;
        return new ProposedBlock((string)v[1]!, Signature.Parse((string)v[2]!), Signature.Parse((string)v[3]!), (byte[])v[4]!,
            v[5].IsNull ? "{}" : (string)v[5]!);
    }

    public Task MarkPostedAsync(ulong slot, string txHash) => Db.HashSetAsync(keys.Proposal(slot), "l1_tx", txHash);

    public async Task<long> RedisTimeMsAsync()
    {
        var t = (RedisResult[])(await Db.ExecuteAsync("TIME"))!;
        return (long)t[0] * 1000 + (long)t[1] / 1000;
    }
}
