using System.Text.Json;
using PbsMarket.Core;
using PbsMarket.L1;
using PbsMarket.Relay.Api;
using PbsMarket.Relay.Archive;
using PbsMarket.Relay.Auctions;
using PbsMarket.Relay.Infrastructure;
using StackExchange.Redis;

namespace PbsMarket.Relay.Chain;

/// <summary>
/// Posts proposed headers to the L1 inbox. One relay instance at a time holds the poster lease (a
/// Redis key with a TTL it keeps renewing); queue entries are acknowledged only once L1 holds the
/// slot or refuses it for good, and the in-flight transaction is journaled in Redis, so a restart or
/// a failover to another instance resumes it instead of sending a second one.
/// </summary>
public sealed class L1PosterService(
    IConnectionMultiplexer redis, RedisKeys keys, Market market, AuctionStore store, ArchiveQueue archive,
    EventHub events, RelayMetrics metrics, InstanceInfo instance, RelayKey relayKey, TimeProvider time, RedisRouting routing, ILogger<L1PosterService> log) : BackgroundService
{
    const string Group = "posters";
    TimeSpan LeaseTtl => TimeSpan.FromMilliseconds(market.Options.L1PosterLeaseMs);
    /// <summary>An item whose parent is not on L1 yet (e.g. announced elsewhere, posted by someone else) is retried this long.</summary>
    TimeSpan ParentWait => TimeSpan.FromMilliseconds(market.Options.L1PosterParentWaitMs);
    readonly Dictionary<string, DateTimeOffset> _firstRefusal = [];
    IDatabase Db => redis.GetDatabase();

    protected override async Task ExecuteAsync(CancellationToken ct)
    {
        var o = market.Options;
        // The relay's own key (Relay:SigningKey or its keystore) pays for the posts unless a separate sender is configured.
        var senderKey = o.L1SenderKey ?? relayKey.SecretHex;
        if (!o.RunL1 || string.IsNullOrEmpty(senderKey))
        {
            log.LogInformation("L1 poster disabled on this instance ({Reason})", o.RunL1 ? "no L1 sender key" : "Relay:RunL1=false");
            return;
        }
        var rpcTimeout = TimeSpan.FromMilliseconds(o.L1PosterRpcTimeoutMs);
        var inbox = new InboxClient(L1Rpc.Connect(o.L1Rpc, rpcTimeout), o.Inbox, o.Registry, o.Escrow);
        L1Poster? poster = null;
        InboxClient? reporter = null;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                try
                {
                    if (!await HoldLeaseAsync())
                    {
                        if (poster is not null)
                        {
                            await poster.DisposeAsync();
                            poster = null;
                        }
                        await Task.Delay(LeaseTtl / 3, time, ct);
                        continue;
                    }
                    poster ??= new L1Poster(inbox, senderKey, new RedisPosterJournal(redis, keys), new L1PosterOptions
                    {
                        ReplaceAfter = TimeSpan.FromMilliseconds(o.L1PosterReplaceAfterMs),
                        ReceiptTimeout = TimeSpan.FromMilliseconds(o.L1PosterReceiptTimeoutMs),
                    }, log);
                    reporter ??= new InboxClient(L1Rpc.Connect(o.L1Rpc, rpcTimeout,
                        new Nethereum.Web3.Accounts.Account(senderKey, o.L1ChainId)), o.Inbox, o.Registry, o.Escrow);
                    // The lease is renewed while a round waits on L1 (a post can wait up to a minute for its receipt);
                    // if it is lost, the round is cancelled so that two instances never post with one key. Every
                    // round, and so every L1 call in it (the equivocation report's receipt wait too), has a deadline.
                    using var round = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    round.CancelAfter(RoundTimeout);
                    var renewing = RenewWhileAsync(round);
                    bool worked;
                    try
                    {
                        worked = await PostRoundAsync(poster, round.Token);
                        await WatchHeaderPostedAsync(inbox, round.Token);
                        await ReportEvidenceAsync(reporter, round.Token);
                        await MaybeRecordSeedAsync(reporter, poster.Sender, round.Token);
                    }
                    finally
                    {
                        await round.CancelAsync();
                        await renewing;
                    }
                    if (!worked) await Task.Delay(o.L1PosterIdle, time, ct);
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    return;
                }
                catch (OperationCanceledException)
                {
                    log.LogWarning("L1 poster: round cancelled (deadline of {Timeout} passed, or the lease was lost); retrying", RoundTimeout);
                    metrics.L1Errors.Add(1);
                }
                catch (Exception e)
                {
                    // Whatever L1, Redis or a node's answer throws (an RPC timeout of a stalled node, too), the poster
                    // keeps its lease loop: an exception escaping a background service would stop the whole relay.
                    routing.Observe(e);
                    log.LogWarning("L1 poster: {Type}: {Error}; retrying", e.GetType().Name, e.Message);
                    metrics.L1Errors.Add(1);
                    await Task.Delay(TimeSpan.FromMilliseconds(o.L1PosterErrorBackoffMs), time, ct);
                }
            }
        }
        finally
        {
            if (poster is not null) await poster.DisposeAsync();
            await Db.ScriptEvaluateAsync("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
                [keys.L1Lease], [instance.Id]);
        }
    }

    /// <summary>Longest a posting round may take (longer than a post's receipt wait; the options check it).</summary>
    TimeSpan RoundTimeout => TimeSpan.FromMilliseconds(market.Options.L1PosterRoundTimeoutMs);

    /// <summary>Renews the lease every third of its TTL until <paramref name="round"/> ends; cancels the round if the lease is lost.</summary>
    async Task RenewWhileAsync(CancellationTokenSource round)
    {
        try
        {
            while (!round.IsCancellationRequested)
            {
                await Task.Delay(LeaseTtl / 3, time, round.Token);
                bool held;
                try { held = await HoldLeaseAsync(); }
                catch (RedisException e) { routing.Observe(e); held = false; }
                if (!held)
                {
                    log.LogWarning("L1 poster lease lost during a round; cancelling it");
                    await round.CancelAsync();
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    async Task<bool> HoldLeaseAsync()
    {
        var renewed = (long)await Db.ScriptEvaluateAsync("""
            local cur = redis.call('GET', KEYS[1])
            if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
            if not cur then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
            return 0
            """, [keys.L1Lease], [instance.Id, (long)LeaseTtl.TotalMilliseconds]);
        return renewed == 1;
    }

    async Task EnsureGroupAsync()
    {
        try
        {
            await Db.StreamCreateConsumerGroupAsync(keys.L1Queue, Group, "0-0", createStream: true);
        }
        catch (RedisServerException e) when (e.Message.Contains("BUSYGROUP", StringComparison.Ordinal))
        {
        }
    }

    /// <returns>True if it did some work (so the next round starts at once).</returns>
    async Task<bool> PostRoundAsync(L1Poster poster, CancellationToken ct)
    {
        await EnsureGroupAsync();
        // Everything still pending at any consumer (this lease holder's earlier rounds, or a dead instance's).
        var claimed = await Db.StreamAutoClaimAsync(keys.L1Queue, Group, instance.Id, 0, "0-0", 64);
        var fresh = await Db.StreamReadGroupAsync(keys.L1Queue, Group, instance.Id, ">", 64);
        var entries = claimed.ClaimedEntries.Concat(fresh).GroupBy(e => e.Id).Select(g => g.First()).ToList();
        if (entries.Count == 0) return false;

        var items = new List<(StreamEntry Entry, L1Item Item, PostItem Post)>();
        var now = market.Clock.NowMs;
        foreach (var e in entries)
        {
            var item = JsonSerializer.Deserialize<L1Item>((string)e["item"]!, WireJson.Options)!;
            if (item.NotBeforeMs > now) continue; // a header announced from elsewhere: its own relay posts first
            using var doc = JsonDocument.Parse(item.HeaderJson);
            var header = Wire.ParseHeader(doc.RootElement).Value;
            items.Add((e, item, new PostItem(header, Signature.Parse(item.BuilderSignature), Signature.Parse(item.ProposalSignature),
                Convert.FromHexString(item.PayloadHex.AsSpan(2)), item.ToSettlement())));
        }
        if (items.Count == 0) return false;
        // One header per slot: the first queued wins (a second one would be equivocation, refused earlier).
        var bySlot = items.OrderBy(i => i.Item.Slot).GroupBy(i => i.Item.Slot).ToList();
        var outcomes = await poster.PostAsync([.. bySlot.Select(g => g.First().Post)], ct);
        var done = new List<RedisValue>();
        foreach (var outcome in outcomes)
        {
            var group = bySlot.First(g => g.Key == outcome.Slot).ToList();
            var first = group[0];
            switch (outcome.Status)
            {
                case PostStatus.Posted or PostStatus.AlreadyPosted:
                    await MarkPostedAsync(first.Item, outcome);
                    done.AddRange(group.Select(g => g.Entry.Id));
                    break;
                case PostStatus.Rejected when outcome.Error?.Name is "NotOnHead" or "SlotNotStarted" && !WaitedTooLong(first.Entry.Id!):
                    break; // its parent may still arrive on L1: retry
                case PostStatus.Rejected:
                    log.LogError("L1 refused slot {Slot} ({Source}): {Error}", outcome.Slot, first.Item.Source, outcome.Error);
                    metrics.L1Rejected.Add(1);
                    await events.PublishAsync(JsonSerializer.Serialize(new { type = "l1_rejected", slot = outcome.Slot.ToString(), error = outcome.Error?.ToString() }));
                    done.AddRange(group.Select(g => g.Entry.Id));
                    break;
                default:
                    log.LogInformation("L1 post of slot {Slot} deferred: {Reason}", outcome.Slot, outcome.Reason);
                    break;
            }
        }
        if (done.Count > 0)
        {
            await Db.StreamAcknowledgeAsync(keys.L1Queue, Group, [.. done]);
            await Db.StreamDeleteAsync(keys.L1Queue, [.. done]);
            foreach (var id in done) _firstRefusal.Remove(id!);
        }
        return done.Count > 0;
    }

    /// <summary>Reports equivocation evidence to L1, which burns the proposer's bond (once; later reports are refused).</summary>
    async Task ReportEvidenceAsync(InboxClient reporter, CancellationToken ct)
    {
        var entries = await Db.StreamRangeAsync(keys.L1Evidence, "-", "+", 16);
        foreach (var e in entries)
        {
            var ev = JsonSerializer.Deserialize<EquivocationRecord>((string)e["evidence"]!, WireJson.Options)!;
            try
            {
                var receipt = await reporter.ReportEquivocationAsync(ev.FirstProposal, Signature.Parse(ev.FirstSignature), ev.SecondProposal, Signature.Parse(ev.SecondSignature), ct);
                log.LogWarning("reported equivocation of {Proposer} in slot {Slot} to L1 (tx {Tx}): bond burned", ev.Proposer, ev.Slot, receipt.TransactionHash);
                metrics.L1EquivocationReports.Add(1);
            }
            catch (ContractRevertException r)
            {
                // Typically AlreadySlashed: someone reported this proposer first. Nothing more to do.
                log.LogInformation("equivocation report for {Proposer} slot {Slot} refused by L1: {Error}", ev.Proposer, ev.Slot, r.Error);
            }
            await Db.StreamDeleteAsync(keys.L1Evidence, [e.Id]);
        }
    }

    ulong? _watchedTo;
    readonly HashSet<ulong> _conflictsReported = [];
    ulong? _seedDoneFor;

    /// <summary>
    /// Compares every HeaderPosted on L1 with the proposal this relay holds for the slot: a proposer that signed one
    /// Proposal here and a different one on L1 (an unbundled block, another relay's settlement) has equivocated, and
    /// the pair (ours, and the log's fields with its proposal signature) is queued as evidence for L1.
    /// </summary>
    async Task WatchHeaderPostedAsync(InboxClient inbox, CancellationToken ct)
    {
        var latest = (ulong)(await inbox.Web3.Eth.Blocks.GetBlockNumber.SendRequestAsync()).Value;
        var from = _watchedTo is { } w ? w + 1 : latest > 256 ? latest - 256 : 0;
        if (from > latest) return;
        foreach (var posted in await inbox.GetHeaderPostedAsync(from, latest, ct))
        {
            if (posted.ProposalSignature is not { } theirs || _conflictsReported.Contains(posted.Slot)) continue;
            var held = await store.GetProposalAsync(posted.Slot);
            if (held is null || held.Proposal == posted.Proposal) continue;
            _conflictsReported.Add(posted.Slot);
            var evidence = EquivocationRecord.Of(posted.Proposer, held.Proposal, held.Signature, posted.Proposal, theirs, market.Clock.NowMs);
            await archive.EnqueueEquivocationAsync(evidence);
            await Db.StreamAddAsync(keys.L1Evidence, "evidence", JsonSerializer.Serialize(evidence, WireJson.Options));
            metrics.Equivocations.Add(1);
            log.LogWarning("L1 holds a header for slot {Slot} ({Theirs}) that its proposer {Proposer} signed besides the proposal it gave this relay ({Ours}): equivocation, reporting",
                posted.Slot, posted.HeaderHash, posted.Proposer, held.HeaderHash);
        }
        _watchedTo = latest;
    }

    /// <summary>Records the next epoch's schedule seed (recordSeed) in the first half of each epoch, once.</summary>
    async Task MaybeRecordSeedAsync(InboxClient reporter, string sender, CancellationToken ct)
    {
        if (ProposerSchedule.SeedRecordEpoch(market.Clock.CurrentSlot, (ulong)market.Options.SlotsPerEpoch) is not { } epoch || _seedDoneFor == epoch) return;
        var refusal = await reporter.SimulateRecordSeedAsync(sender, ct);
        if (refusal is null)
        {
            var receipt = await reporter.RecordSeedAsync(ct);
            log.LogInformation("recorded the schedule seed of epoch {Epoch} (tx {Tx})", epoch, receipt.TransactionHash);
            _seedDoneFor = epoch;
        }
        else if (refusal.Name == "SeedAlreadyRecorded") _seedDoneFor = epoch;
    }

    bool WaitedTooLong(string entryId)
    {
        var now = time.GetUtcNow();
        if (!_firstRefusal.TryGetValue(entryId, out var since)) _firstRefusal[entryId] = since = now;
        return now - since > ParentWait;
    }

    async Task MarkPostedAsync(L1Item item, PostOutcome outcome)
    {
        var tx = outcome.TxHash ?? "";
        await store.MarkPostedAsync(item.Slot, outcome.Status == PostStatus.Posted ? tx : "(posted by another party)");
        // The winner's debt is released by the DebtLedger once the L1 view sees the inbox at or past this slot.
        if (outcome.Status == PostStatus.Posted)
            await archive.EnqueuePostedAsync(new PostedRecord(item.Slot, tx, outcome.BlockNumber ?? 0, market.Clock.NowMs));
        metrics.L1Posted.Add(1, RelayMetrics.Tag("by", outcome.Status == PostStatus.Posted ? "us" : "other"));
        await events.PublishAsync(JsonSerializer.Serialize(new { type = "posted", slot = item.Slot.ToString(), l1_tx_hash = outcome.TxHash, header_hash = item.HeaderHash.ToString() }));
        log.LogInformation("slot {Slot} {Status} on L1 {Tx}", item.Slot, outcome.Status == PostStatus.Posted ? "posted" : "already posted", tx);
    }
}

/// <summary>The poster's in-flight transaction, kept in Redis so any instance can resume it.</summary>
public sealed class RedisPosterJournal(IConnectionMultiplexer redis, RedisKeys keys) : IPosterJournal
{
    RedisKey Key => keys.L1Lease.ToString() + ":journal";

    public async Task<PosterJournalEntry?> LoadAsync()
    {
        var v = await redis.GetDatabase().StringGetAsync(Key);
        return v.IsNull ? null : JsonSerializer.Deserialize<PosterJournalEntry>((string)v!, FilePosterJournal.Json);
    }

    public Task SaveAsync(PosterJournalEntry entry) => redis.GetDatabase().StringSetAsync(Key, JsonSerializer.Serialize(entry, FilePosterJournal.Json));

    public Task ClearAsync() => redis.GetDatabase().KeyDeleteAsync(Key);
}
